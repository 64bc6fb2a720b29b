"""Fine-tuning: a new model that starts from a bundled or saved one (`train TEXT --from MODEL`).

The parent keeps its architecture and every character it knows; characters of the new text
that it never saw join the vocabulary with fresh rows. The text is read with the merged
vocabulary, and the run starts from the parent's weights and learned starting state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from charchat.errors import CharchatError
from charchat.files import file_sha256
from charchat.modelfile import Model, ModelConfig, load_model
from charchat.vocab import Vocab

SIZE_FLAGS = ("layers", "hidden", "embedding")
ROW_TENSORS = ("embedding.weight", "head.weight", "head.bias")  # one row per character
NEW_ROW_SCALE = 0.5  # new head rows: this share of the parent's row spread


@dataclass(frozen=True)
class Parent:
    model: Model
    path: Path
    sha256: str

    @property
    def lineage(self) -> dict:
        """What the child's card says of where it started."""
        return {
            "name": self.model.name,
            "sha256": self.sha256,
            "headline": headline(self.model.card),
            "architecture": f"{self.model.config.layers}x{self.model.config.hidden} LSTM",
        }

    def start_for(self, vocab: Vocab, seed: int) -> tuple[dict[str, np.ndarray], dict]:
        """The weights a run on a text of this vocabulary starts from, and its lineage."""
        added = added_characters(self.model.vocab, vocab)
        return extended_tensors(self.model, vocab, seed), self.lineage | {"added": added}


def load_parent(name_or_path: str) -> Parent:
    from charchat.finding import resolve_model

    path = resolve_model(name_or_path)
    return Parent(load_model(path), path, file_sha256(path))


def headline(card: dict) -> str | None:
    """A model card's one figure: its tuning run's held-out score, else its validation."""
    if isinstance(card.get("tuning_held_out"), str):
        return card["tuning_held_out"]
    bits = card.get("best_val_bits_per_char")
    if isinstance(bits, (int, float)) and not isinstance(bits, bool):
        return f"{bits:.4f} bits/char on its validation text"
    return None


def child_config(parent: ModelConfig, overrides: dict, preset_given: bool) -> ModelConfig:
    """The parent's architecture, with its regularisation changed where flags say so; a flag
    that would change its shape is refused."""
    if preset_given:
        raise CharchatError(
            f"--preset chooses a size, and a fine-tuned model keeps its parent's "
            f"({parent.layers}x{parent.hidden}); leave --preset out"
        )
    for name in SIZE_FLAGS:
        value = overrides.get(name)
        if value is not None and value != getattr(parent, name):
            raise CharchatError(
                f"--{name} {value} contradicts the parent model's {name} "
                f"({getattr(parent, name)}); a fine-tuned model keeps its parent's architecture"
            )
    given = {k: v for k, v in overrides.items() if v is not None and k not in SIZE_FLAGS}
    config = replace(parent, **given)
    config.check()
    return config


def merged_vocab(parent: Vocab, text: Vocab) -> Vocab:
    """Every character of the parent and of the text, by code point."""
    return Vocab(sorted(set(parent.chars) | set(text.chars)))


def read_with(encoded, vocab: Vocab):
    """The encoded text re-read with a larger vocabulary (its ids renumbered)."""
    from charchat.train.textfiles import EncodedText

    table = np.array([vocab.index[c] for c in encoded.vocab.chars], dtype=np.int64)
    dtype = np.uint8 if len(vocab) <= 256 else np.uint16
    ids = table[encoded.ids].astype(dtype) if len(encoded.ids) else np.zeros(0, dtype)
    return EncodedText(vocab, ids, encoded.documents, encoded.sha256, encoded.name)


def extended_tensors(model: Model, vocab: Vocab, seed: int) -> dict[str, np.ndarray]:
    """The parent's tensors for a vocabulary that holds its own and more: every old
    character's rows exactly as they were, at its new position; each new character gets
    an embedding drawn like the parent's, an output row drawn at half the spread of the
    parent's, and the bias of the parent's rarest character (rare at first, learnable)."""
    old = model.vocab
    missing = [c for c in old.chars if c not in vocab]
    if missing:
        raise CharchatError(f"the new vocabulary lacks the parent's {missing[0]!r}")
    rng = np.random.default_rng(seed)
    at = np.array([vocab.index[c] for c in old.chars])
    new = np.array([i for i, c in enumerate(vocab.chars) if c not in old])
    tensors = {k: np.array(v, dtype=np.float32) for k, v in model.tensors.items()}
    for name in ROW_TENSORS:
        rows = tensors[name]
        grown = np.zeros((len(vocab), *rows.shape[1:]), dtype=np.float32)
        grown[at] = rows
        if len(new):
            if name == "head.bias":
                grown[new] = rows.min()
            else:
                scale = rows.std() * (1.0 if name == "embedding.weight" else NEW_ROW_SCALE)
                grown[new] = rng.normal(0.0, scale, (len(new), *rows.shape[1:]))
        tensors[name] = grown
    return tensors


def added_characters(parent: Vocab, vocab: Vocab) -> list[str]:
    return [c for c in vocab.chars if c not in parent]
