"""One model = one .safetensors file: float32 weights plus JSON metadata (vocab, config, card).

Loading treats every file as untrusted: the header is parsed and checked by hand, with
sizes bounded, before a single tensor byte is read; no pickle is ever involved.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from charchat.errors import CharchatError
from charchat.files import write_file
from charchat.vocab import Vocab

FORMAT = "charchat"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
DEFAULT_MODEL = "nietzsche"

MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_VOCAB = 65536
MAX_LAYERS = 8
MAX_WIDTH = 8192
MAX_PARAMETERS = 400_000_000


@dataclass(frozen=True)
class ModelConfig:
    layers: int = 2  # stacked LSTM layers
    hidden: int = 512  # units per LSTM layer
    embedding: int = 64  # size of the learned character embedding
    dropout: float = 0.3  # between layers and before the output head (training only)
    weight_drop: float = 0.0  # DropConnect on the recurrent weights (training only)
    input_dropout: float = 0.0  # dropout on the embedded characters (training only)
    # One dropout mask per window, shared by all its time steps (variational dropout), instead
    # of a fresh mask at every step (training only).
    locked_dropout: bool = False

    def check(self) -> None:
        for name, top in (("layers", MAX_LAYERS), ("hidden", MAX_WIDTH), ("embedding", MAX_WIDTH)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise CharchatError(f"{name} must be a whole number from 1 to {top}")
        for name in ("dropout", "weight_drop", "input_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
                raise CharchatError(f"{name.replace('_', ' ')} must be at least 0 and below 1")
        if not isinstance(self.locked_dropout, bool):
            raise CharchatError("locked dropout must be true or false")


# Older files leave out weight_drop, input_dropout and locked_dropout; they only matter
# during training.
REQUIRED_CONFIG_KEYS = {"layers", "hidden", "embedding", "dropout"}


INITIAL_STATE = ("initial_h", "initial_c")  # learned starting state; older files lack it


def tensor_shapes(
    config: ModelConfig, vocab_size: int, initial_state: bool = True
) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every tensor, exactly as the torch module's state_dict has them."""
    h, e = config.hidden, config.embedding
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (vocab_size, e)}
    for layer in range(config.layers):
        shapes[f"lstm.weight_ih_l{layer}"] = (4 * h, e if layer == 0 else h)
        shapes[f"lstm.weight_hh_l{layer}"] = (4 * h, h)
        shapes[f"lstm.bias_ih_l{layer}"] = (4 * h,)
        shapes[f"lstm.bias_hh_l{layer}"] = (4 * h,)
    shapes["head.weight"] = (vocab_size, h)
    shapes["head.bias"] = (vocab_size,)
    if initial_state:
        shapes |= {name: (config.layers, h) for name in INITIAL_STATE}
    return shapes


def parameter_count(config: ModelConfig, vocab_size: int) -> int:
    return sum(int(np.prod(s)) for s in tensor_shapes(config, vocab_size).values())


@dataclass
class Model:
    """A model in memory: vocabulary, architecture, weights and the training card."""

    vocab: Vocab
    config: ModelConfig
    tensors: dict[str, np.ndarray]
    card: dict = field(default_factory=dict)  # the training card: where the weights came from
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.path else "unsaved"

    @property
    def parameters(self) -> int:
        return sum(int(np.prod(np.shape(t))) for t in self.tensors.values())

    def metadata(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "vocab": self.vocab.chars,
            "config": asdict(self.config),
            "card": self.card,
        }


# ---------------------------------------------------------------- writing


def to_safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)


def save_model(model: Model, path: str | Path) -> Path:
    path = Path(path)
    expected = tensor_shapes(model.config, len(model.vocab), INITIAL_STATE[0] in model.tensors)
    if set(model.tensors) != set(expected):
        raise CharchatError("internal: tensors do not match the architecture")
    tensors = {k: np.asarray(v, dtype=np.float32) for k, v in model.tensors.items()}
    meta = {FORMAT: json.dumps(model.metadata(), ensure_ascii=False)}
    write_file(path, to_safetensors_bytes(tensors, meta))
    model.path = path
    return path


# ---------------------------------------------------------------- reading


def read_safetensors_header(path: Path) -> tuple[dict, int, int]:
    """(header, offset of the tensor data, file size), checked for sanity, nothing else read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if head == b"version " and f.read(30).startswith(b"https://git-lfs"):
                raise CharchatError(
                    f"{path} is a Git LFS pointer, not the model itself (run: git lfs pull)"
                )
            if len(head) < 8:
                raise CharchatError(f"{path} is not a model file (too short to be safetensors)")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
                raise CharchatError(f"{path} is not a model file (not safetensors, or truncated)")
            raw = f.read(n)
    except OSError as e:
        raise CharchatError(f"cannot read {path}: {e.strerror}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CharchatError(f"{path} is not a model file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CharchatError(f"{path} is not a model file (malformed header)")
    return header, 8 + n, size


def _parse_metadata(path: Path, header: dict) -> tuple[Vocab, ModelConfig, dict]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or not isinstance(meta.get(FORMAT), str):
        raise CharchatError(f"{path} is a safetensors file but not a charchat model (no metadata)")
    try:
        info = json.loads(meta[FORMAT])
    except json.JSONDecodeError:
        raise CharchatError(f"{path}: the model metadata is not valid JSON") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CharchatError(f"{path}: the model metadata is malformed")
    if info.get("format_version") != FORMAT_VERSION:
        raise CharchatError(
            f"{path}: model format version {info.get('format_version')!r} is not supported "
            f"(this charchat reads version {FORMAT_VERSION})"
        )
    chars = info.get("vocab")
    if not isinstance(chars, list) or not 1 <= len(chars) <= MAX_VOCAB:
        raise CharchatError(f"{path}: the vocabulary is missing or has an absurd size")
    vocab = Vocab(chars)
    raw_config = info.get("config")
    if not isinstance(raw_config, dict) or not (
        REQUIRED_CONFIG_KEYS <= set(raw_config) <= set(ModelConfig.__dataclass_fields__)
    ):
        raise CharchatError(f"{path}: the architecture in the metadata is malformed")
    config = ModelConfig(**raw_config)
    try:
        config.check()
    except CharchatError as e:
        raise CharchatError(f"{path}: bad architecture: {e}") from None
    if parameter_count(config, len(vocab)) > MAX_PARAMETERS:
        raise CharchatError(f"{path}: the metadata asks for an absurdly large model")
    card = info.get("card", {})
    if not isinstance(card, dict):
        raise CharchatError(f"{path}: the training card is malformed")
    return vocab, config, card


def check_tensor_entries(path: Path, header: dict, expected: dict, data_bytes: int) -> None:
    names = set(header) - {"__metadata__"}
    if names != set(expected):
        missing = sorted(set(expected) - names)
        extra = sorted(names - set(expected))
        detail = f"missing {missing[0]}" if missing else f"unexpected {extra[0]}"
        raise CharchatError(f"{path}: the tensors do not match the architecture ({detail})")
    for name, shape in expected.items():
        entry = header[name]
        if not isinstance(entry, dict) or entry.get("dtype") != "F32":
            raise CharchatError(f"{path}: tensor {name} is not float32")
        if tuple(entry.get("shape", ())) != shape:
            raise CharchatError(
                f"{path}: tensor {name} has shape {entry.get('shape')}, expected {list(shape)}"
            )
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= data_bytes
            or offsets[1] - offsets[0] != 4 * int(np.prod(shape))
        ):
            raise CharchatError(f"{path}: tensor {name} lies outside the file (truncated?)")


def load_model(path: str | Path) -> Model:
    path = Path(path)
    if path.is_dir():
        raise CharchatError(f"{path} is a directory, not a model file")
    if not path.exists():
        raise CharchatError(f"no such model file: {path}")
    header, data_start, size = read_safetensors_header(path)
    vocab, config, card = _parse_metadata(path, header)
    expected = tensor_shapes(config, len(vocab), INITIAL_STATE[0] in header)
    check_tensor_entries(path, header, expected, size - data_start)
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CharchatError(f"{path}: cannot read the tensors ({e})") from None
    for name, array in tensors.items():
        if not np.isfinite(array).all():
            raise CharchatError(f"{path}: tensor {name} holds NaN or infinite values")
    return Model(vocab, config, tensors, card, path)


# ---------------------------------------------------------------- finding models by name
