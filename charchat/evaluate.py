"""Scoring a text: nats (and bits) per character, in order, with the state carried.

Used by `charchat eval` and by training's validation; torch is imported only here and in
training, never on the chat path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charchat.errors import CharchatError
from charchat.model import CharLSTM
from charchat.modelfile import Model, load_model, resolve_model

PARALLEL_STREAMS = 32  # validation scores this many stretches of the text side by side...
BURN_IN = 256  # ...each warmed up on the text before it, so the figure matches `eval`


@dataclass(frozen=True)
class EvalResult:
    nats_per_char: float
    characters: int  # in the text scored
    scored: int  # predictions made: every known character, the first from the starting state
    skipped: int  # characters outside the vocabulary, left out

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)


@torch.no_grad()
def sequential_nats(module: CharLSTM, ids: np.ndarray, device, chunk: int = 4096) -> float:
    """Total nats of predicting every id from what precedes it, in order, state carried; the
    first from the model's starting state."""
    module.eval()
    state = None
    ids_t = torch.as_tensor(ids, dtype=torch.long, device=device)
    total = F.cross_entropy(module.first_logits()[None].float(), ids_t[:1], reduction="sum").item()
    for start in range(0, len(ids) - 1, chunk):
        x = ids_t[start : start + chunk][None]
        y = ids_t[start + 1 : start + chunk + 1][None]
        x = x[:, : y.shape[1]]
        logits, state = module(x, state)
        total += F.cross_entropy(logits[0].float(), y[0], reduction="sum").item()
    return total


@torch.no_grad()
def parallel_nats_per_char(module: CharLSTM, ids: np.ndarray, device) -> float:
    """Mean nats/char over ids[1:], in parallel stretches (sequential_nats scores ids[0] too).

    Stretch k > 0 starts from the state of having read the BURN_IN characters before it, so
    the result matches the fully sequential figure to about three decimals.
    """
    n = len(ids)
    k = min(PARALLEL_STREAMS, max(1, (n - 1) // (4 * BURN_IN)))
    if k == 1:
        first = F.cross_entropy(module.first_logits()[None], torch.as_tensor(ids[:1])).item()
        return (sequential_nats(module, ids, device) - first) / (n - 1)
    module.eval()
    length = (n - 1) // k
    t = torch.as_tensor(ids, dtype=torch.long, device=device)
    starts = [1 + i * length for i in range(k)]  # first predicted position of each stretch
    burn = torch.stack([t[s - 1 - BURN_IN : s - 1] for s in starts[1:]])
    _, (h, c) = module(burn)
    first_h, first_c = module.initial_state(1)
    state = (torch.cat([first_h, h], dim=1), torch.cat([first_c, c], dim=1))
    x = torch.stack([t[s - 1 : s - 1 + length] for s in starts])
    y = torch.stack([t[s : s + length] for s in starts])
    total = 0.0
    for a in range(0, length, 2048):
        logits, state = module(x[:, a : a + 2048], state)
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            y[:, a : a + 2048].reshape(-1),
            reduction="sum",
        ).item()
    tail_start = starts[-1] + length
    if tail_start < n:  # the few characters left over continue the last stretch
        last = (state[0][:, -1:].contiguous(), state[1][:, -1:].contiguous())
        logits, _ = module(t[tail_start - 1 : n - 1][None], last)
        total += F.cross_entropy(logits[0].float(), t[tail_start:n], reduction="sum").item()
    return total / (n - 1)


def evaluate_text(model: Model, text: str) -> EvalResult:
    known = [model.vocab.index[c] for c in text if c in model.vocab.index]
    skipped = len(text) - len(known)
    if not known:
        raise CharchatError("the text has no character the model knows")
    module = CharLSTM.from_file(model)
    total = sequential_nats(module, np.array(known, dtype=np.int64), torch.device("cpu"))
    return EvalResult(total / len(known), len(text), len(known), skipped)


def evaluate_file(
    model: str, text_path: Path, tail: float | None = None, threads: int | None = None
) -> EvalResult:
    from charchat.corpus import read_text

    if tail is not None and not 0 < tail <= 1:
        raise CharchatError("--tail must be above 0 and at most 1")
    if threads is not None:
        if threads < 1:
            raise CharchatError("--threads must be above 0")
        torch.set_num_threads(threads)
    loaded = load_model(resolve_model(model))
    text = read_text(text_path, purpose="scoring")
    if tail is not None:
        text = text[len(text) - int(len(text) * tail) :]
    return evaluate_text(loaded, text)
