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

from charchat.chat.adapting import settings_for
from charchat.errors import CharchatError
from charchat.finding import resolve_model
from charchat.modelfile import Model, load_model
from charchat.reading import check_regular, text_chunks
from charchat.train.adapt import AdaptSettings, Learner
from charchat.train.model import CharLSTM
from charchat.train.textfiles import code_points, id_table

PARALLEL_STREAMS = 32  # validation scores this many stretches of the text side by side...
BURN_IN = 256  # ...each warmed up on the text before it, so the figure matches `eval`
SCORED_AT_ONCE = 1 << 20  # characters turned into ids at a time by `eval`
LEARNT_AT_ONCE = 1 << 14  # ...and when it also learns as it reads (the progress bar moves)


@dataclass(frozen=True)
class EvalResult:
    nats_per_char: float
    characters: int  # in the text scored
    scored: int  # predictions made: every known character, the first from the starting state
    skipped: int  # characters outside the vocabulary, left out
    # nats/char with the logits divided by each of the temperatures asked for (calibrate.py)
    nats_at_temperatures: tuple[float, ...] = ()
    adaptive_nats_per_char: float | None = None  # learning while reading (adapt.py), if asked

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)


class Scorer:
    """Nats of predicting every id from what precedes it, fed a piece at a time: in order,
    state carried, the first id predicted from the model's starting state."""

    def __init__(self, module: CharLSTM, device, chunk: int = 4096, temperatures=()):
        module.eval()
        self.module, self.device, self.chunk = module, device, chunk
        self.state = None
        self.last: torch.Tensor | None = None  # the id read before the next piece
        self.total = 0.0
        self.count = 0
        # Also the total at each of these temperatures, for fitting one (calibrate.py).
        self.temperatures = torch.tensor(temperatures, dtype=torch.float32, device=device)
        self.totals_at = torch.zeros(len(temperatures), dtype=torch.float64, device=device)

    @torch.no_grad()
    def add(self, ids: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.device)
        if self.last is None:
            first = self.module.first_logits()[None].float()
            self.total += F.cross_entropy(first, ids_t[:1], reduction="sum").item()
            self._add_at_temperatures(first, ids_t[:1])
            inputs, targets = ids_t[:-1], ids_t[1:]
        else:
            inputs, targets = torch.cat([self.last, ids_t[:-1]]), ids_t
        for start in range(0, len(targets), self.chunk):
            x = inputs[start : start + self.chunk][None]
            logits, self.state = self.module(x, self.state)
            y = targets[start : start + self.chunk]
            self.total += F.cross_entropy(logits[0].float(), y, reduction="sum").item()
            self._add_at_temperatures(logits[0].float(), y)
        self.last = ids_t[-1:]
        self.count += len(ids)

    def _add_at_temperatures(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        if not len(self.temperatures):
            return
        inverse = (1 / self.temperatures)[:, None, None]
        for a in range(0, len(targets), 256):  # (temperatures, 256, vocab) floats at a time
            z = logits[a : a + 256][None] * inverse
            picked = z.gather(2, targets[a : a + 256][None, :, None].expand(len(z), -1, 1))
            self.totals_at += (z.logsumexp(2) - picked[..., 0]).sum(1).double()


def sequential_nats(module: CharLSTM, ids: np.ndarray, device, chunk: int = 4096) -> float:
    """Total nats of predicting every id from what precedes it, in order, state carried; the
    first from the model's starting state."""
    scorer = Scorer(module, device, chunk)
    scorer.add(ids)
    return scorer.total


@torch.no_grad()
def parallel_nats_per_char(module: CharLSTM, ids: np.ndarray, device) -> float:
    """Mean nats/char over ids[1:], read after ids[0] (sequential_nats scores ids[0] too)."""
    from charchat.train.corpus import Segment

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


def evaluate_text(model: Model, text: str, adapt=None) -> EvalResult:
    return _evaluate_pieces(model, [text], adapt=adapt)


def _evaluate_pieces(
    model: Model, pieces, on_progress=None, temperatures=(), adapt=None
) -> EvalResult:
    """Score text arriving in pieces; memory stays that of one piece. on_progress(characters)
    is told how many characters have been scored so far. With adapt (AdaptSettings), the
    text is also scored by a copy of the model that learns as it reads."""
    lookup = id_table(model.vocab, np.int32, missing=-1)
    cpu = torch.device("cpu")
    scorer = Scorer(CharLSTM.from_file(model), cpu, temperatures=temperatures)
    learner = Learner(CharLSTM.from_file(model), cpu, adapt) if adapt is not None else None
    characters = 0
    for piece in pieces:
        for start in range(0, len(piece), SCORED_AT_ONCE if learner is None else LEARNT_AT_ONCE):
            part = piece[start : start + (SCORED_AT_ONCE if learner is None else LEARNT_AT_ONCE)]
            ids = lookup[code_points(part)]
            scorer.add(ids[ids >= 0])
            if learner is not None:
                learner.add(ids[ids >= 0])
            characters += len(part)
            if on_progress:
                on_progress(characters)
    if scorer.count == 0:
        raise CharchatError("the text has no character the model knows")
    if learner is not None:
        learner.finish()
    return EvalResult(
        scorer.total / scorer.count,
        characters,
        scorer.count,
        characters - scorer.count,
        tuple((scorer.totals_at / scorer.count).tolist()),
        learner.total / learner.count if learner is not None else None,
    )


def evaluate_file(
    model: str | Model,
    text_path: Path,
    tail: float | None = None,
    threads: int | None = None,
    on_start=None,
    on_progress=None,
    temperatures=(),
    adapt=None,
) -> EvalResult:
    """Score a text file read in chunks (never whole in memory); with tail, only its last
    fraction, read after nothing, as a separate text would be. on_start(characters to score)
    and on_progress(characters scored) follow the work; the text is also scored at each of
    the temperatures given. adapt: AdaptSettings, or (lr, stretch) where None takes the
    model card's fitted value, else the default."""
    if tail is not None and not 0 < tail <= 1:
        raise CharchatError("--tail must be above 0 and at most 1")
    if threads is not None:
        if threads < 1:
            raise CharchatError("--threads must be above 0")
        torch.set_num_threads(threads)
    loaded = model if isinstance(model, Model) else load_model(resolve_model(model))
    check_regular(Path(text_path), "scoring")
    length = sum(len(piece) for piece in text_chunks(text_path))
    if length < 2:
        what = "empty" if not length else f"too short ({length} characters)"
        raise CharchatError(f"{text_path} is {what}; scoring needs at least 2 characters")
    skip = 0 if tail is None else length - int(length * tail)
    if on_start:
        on_start(length - skip)
    pieces = _after(text_chunks(text_path), skip)
    if adapt is not None and not isinstance(adapt, AdaptSettings):  # (lr, stretch), None: card's
        adapt = AdaptSettings(*settings_for(loaded, *adapt)).check()
    return _evaluate_pieces(loaded, pieces, on_progress, temperatures, adapt)


def _after(pieces, skip: int):
    """The pieces with their first `skip` characters left out."""
    for piece in pieces:
        if skip >= len(piece):
            skip -= len(piece)
            continue
        yield piece[skip:]
        skip = 0
