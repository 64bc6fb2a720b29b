"""Shared fixtures: tiny models and texts made on the spot (nothing downloaded, no ../shared)."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as charchat does, before numpy loads
# Tiny models gain nothing from a second thread, and on a busy machine torch's spinning
# OpenMP workers make them many times slower (here and in the subprocesses tests start).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from charchat.modelfile import Model, ModelConfig, save_model, tensor_shapes
from charchat.vocab import Vocab

TEXT = (
    "the will to power is the will to life. the will to truth is a will to power.\n"
    "what is good? all that heightens the feeling of power in man.\n"
) * 4


def random_model(
    chars: str = "abcdefghijklmnopqrstuvwxyz .,\n'",
    layers: int = 2,
    hidden: int = 16,
    embedding: int = 8,
    seed: int = 0,
    scale: float = 0.5,
    initial_state: bool = True,
) -> Model:
    vocab = Vocab(sorted(set(chars)))
    config = ModelConfig(layers=layers, hidden=hidden, embedding=embedding, dropout=0.0)
    rng = np.random.default_rng(seed)
    tensors = {
        name: (rng.standard_normal(shape) * scale).astype(np.float32)
        for name, shape in tensor_shapes(config, len(vocab), initial_state).items()
    }
    return Model(vocab, config, tensors, {"corpus": "random.txt"})


@pytest.fixture
def tiny_model():
    return random_model()


@pytest.fixture
def tiny_model_path(tmp_path):
    return save_model(random_model(), tmp_path / "tiny.safetensors")


@pytest.fixture
def one_line_model_path(tmp_path):
    """A model that never writes a newline, so piped blocks can be split on them."""
    return save_model(
        random_model(chars="abcdefghij klmnopqrstuvwxyz.,'"), tmp_path / "ol.safetensors"
    )


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Never touch the real user data dir (models, history)."""
    home = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.setenv("CHARCHAT_MODELS_DIR", str(home / "models"))
    monkeypatch.delenv("NO_COLOR", raising=False)
