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
    """Mean nats/char over ids[1:], read after ids[0] (sequential_nats scores ids[0] too)."""
    from charchat.corpus import Segment

    return held_out_nats_per_char(module, [Segment(np.asarray(ids), 1)], device)


@torch.no_grad()
def held_out_nats_per_char(module: CharLSTM, segments, device) -> float:
    """Mean nats/char over every segment's scored ids, in parallel stretches.

    Each segment is cut into stretches scored side by side; a stretch starts from the state
    of having read the BURN_IN characters before it (as far as its segment's context goes),
    so the result matches the fully sequential figure to about three decimals.
    """
    module.eval()
    total_scored = sum(len(s.ids) - s.start for s in segments)
    if total_scored == 0:
        return math.nan
    length = max(4 * BURN_IN, -(-total_scored // PARALLEL_STREAMS))
    stretches = []  # (ids, first scored position, end)
    for seg in segments:
        for a in range(seg.start, len(seg.ids), length):
            stretches.append((seg.ids, a, min(a + length, len(seg.ids))))
    total = 0.0
    h0, c0 = module.initial_state(1)
    states, inputs, targets = [], [], []
    by_context: dict[int, list] = {}
    for ids, a, b in stretches:
        by_context.setdefault(min(BURN_IN, a), []).append((ids, a, b))
    for context, group in by_context.items():
        if context == 0:  # the first character of a document: predicted from the start state
            firsts = torch.as_tensor(np.array([ids[a] for ids, a, _ in group], dtype=np.int64))
            logits = module.first_logits()[None].expand(len(group), -1).float()
            total += F.cross_entropy(logits, firsts.to(device), reduction="sum").item()
            for ids, a, b in group:
                states.append((h0, c0))
                inputs.append(ids[a : b - 1])
                targets.append(ids[a + 1 : b])
            continue
        if context > 1:
            burn = np.stack([ids[a - context : a - 1] for ids, a, _ in group]).astype(np.int64)
            _, (h, c) = module(torch.as_tensor(burn, device=device))
        else:
            h, c = (s.expand(-1, len(group), -1) for s in (h0, c0))
        for i, (ids, a, b) in enumerate(group):
            states.append((h[:, i : i + 1], c[:, i : i + 1]))
            inputs.append(ids[a - 1 : b - 1])
            targets.append(ids[a:b])
    longest = max(len(x) for x in inputs)
    x = torch.zeros(len(inputs), longest, dtype=torch.long)
    y = torch.full((len(inputs), longest), -100, dtype=torch.long)
    for i, (inp, tgt) in enumerate(zip(inputs, targets, strict=True)):
        x[i, : len(inp)] = torch.as_tensor(inp.astype(np.int64))
        y[i, : len(tgt)] = torch.as_tensor(tgt.astype(np.int64))
    x, y = x.to(device), y.to(device)
    state = tuple(torch.cat([s[k] for s in states], dim=1).contiguous() for k in (0, 1))
    for a in range(0, longest, 2048):
        logits, state = module(x[:, a : a + 2048], state)
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            y[:, a : a + 2048].reshape(-1),
            reduction="sum",
            ignore_index=-100,
        ).item()
    return total / total_scored


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
