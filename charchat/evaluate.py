"""`charchat eval`: bits per character over a whole text, in order, with the state carried."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charchat.errors import CharchatError
from charchat.modelfile import load_model, resolve_model
from charchat.vocab import read_corpus


@dataclass(frozen=True)
class EvalResult:
    nats_per_char: float
    characters: int  # in the text scored
    scored: int  # predictions made: every known character after the first
    skipped: int  # characters outside the vocabulary, left out

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)


def evaluate_text(model_file, text: str) -> EvalResult:
    import torch

    from charchat.model import CharLSTM
    from charchat.train import sequential_nats

    known = [model_file.vocab.index[c] for c in text if c in model_file.vocab.index]
    skipped = len(text) - len(known)
    if len(known) < 2:
        raise CharchatError("the text has fewer than two characters the model knows")
    module = CharLSTM.from_file(model_file)
    total = sequential_nats(module, np.array(known, dtype=np.int64), torch.device("cpu"))
    return EvalResult(total / (len(known) - 1), len(text), len(known) - 1, skipped)


def evaluate_file(
    model: str, text_path: Path, tail: float | None = None, threads: int | None = None
) -> EvalResult:
    if tail is not None and not 0 < tail <= 1:
        raise CharchatError("--tail must be above 0 and at most 1")
    if threads is not None:
        if threads < 1:
            raise CharchatError("--threads must be above 0")
        import torch

        torch.set_num_threads(threads)
    model_file = load_model(resolve_model(model))
    text = read_corpus(text_path)
    if tail is not None:
        text = text[len(text) - int(len(text) * tail) :]
    return evaluate_text(model_file, text)
