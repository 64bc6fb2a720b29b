"""Looking for single LSTM cells that track something: inside quotes, position in a line...

A cell's activation here is tanh(c), the cell state as it enters the output gate, in -1..1,
after reading each character. /cells find correlates every cell's activation with a feature
of the text and ranks the cells by how well they track it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from charchat.apart import TookTooLong, run_apart
from charchat.errors import CharchatError, Stopped

FEATURES = {
    "quote": 'inside "…"',
    "line": "position in the line",
    "paren": "inside (…)",
    "word": "position in the word",
}
STRIP_CHARS = 72  # characters of text shown with each cell found
CELLS_SHOWN = 5
MATCH_SECONDS = 1.0  # a regular expression may search the text this long
# Python's matcher backtracks, and a pattern such as ([a-z]+\s?)*$ can take longer than the
# universe on a page of text, holding the interpreter all the while: it runs in a process of
# its own that can be ended.
MATCHER = (
    "import json, re, sys; pattern, text = json.load(sys.stdin); "
    "json.dump([m.span() for m in re.finditer(pattern, text)], sys.stdout)"
)


def _never() -> bool:
    return False


def feature_values(feature: str, text: str, should_stop: Callable[[], bool] = _never) -> np.ndarray:
    """The feature's value at each character of text (after reading it). A regular expression
    is searched for MATCH_SECONDS at most; should_stop() ends the search early (Stopped)."""
    values = np.zeros(len(text), dtype=np.float64)
    if feature == "quote":
        inside = False
        for i, ch in enumerate(text):
            if ch == '"':
                inside = not inside
            values[i] = inside
    elif feature == "line":
        position = 0
        for i, ch in enumerate(text):
            position = 0 if ch == "\n" else position + 1
            values[i] = position
    elif feature == "paren":
        depth = 0
        for i, ch in enumerate(text):
            depth = depth + 1 if ch == "(" else max(0, depth - 1) if ch == ")" else depth
            values[i] = depth > 0
    elif feature == "word":
        position = 0
        for i, ch in enumerate(text):
            position = position + 1 if ch.isalpha() else 0
            values[i] = position
    else:
        try:
            re.compile(feature)
        except (re.error, RecursionError, OverflowError) as e:
            raise CharchatError(
                f"{feature!r} is neither a feature ({', '.join(FEATURES)}) nor a regular "
                f"expression ({e})"
            ) from None
        for start, end in match_spans(feature, text, should_stop):
            values[start:end] = 1.0
    return values


def match_spans(pattern: str, text: str, should_stop: Callable[[], bool] = _never) -> list:
    """(start, end) of each match of pattern in text, found in a separate process that is
    ended after MATCH_SECONDS or as soon as should_stop() says so."""
    given = json.dumps([pattern, text]).encode()
    stopped = "the search for the pattern was stopped"
    try:
        _, out = run_apart(MATCHER, [], given, should_stop, stopped, MATCH_SECONDS)
    except TookTooLong:
        raise CharchatError(
            f"the pattern '{pattern}' took more than {MATCH_SECONDS:g} s to search "
            f"{len(text):,} characters (it backtracks too much); simplify it"
        ) from None
    try:
        return [(int(a), int(b)) for a, b in json.loads(out)]
    except (ValueError, TypeError):
        raise CharchatError(f"the pattern '{pattern}' could not be searched") from None


def activations(engine, ids, should_stop: Callable[[], bool] = _never) -> np.ndarray:
    """tanh(c) of every cell after each character, read from the model's starting state:
    shape (characters, layers, hidden). The engine is left as it was, also when should_stop()
    ends the reading early (Stopped)."""
    start = engine.snapshot()
    out = np.empty((len(ids), engine.layers, engine.hidden), dtype=np.float32)
    try:
        engine.reset()
        for t, i in enumerate(ids):
            if t % 64 == 0 and should_stop():
                raise Stopped(f"stopped after reading {t:,} of {len(ids):,} characters")
            engine.feed(int(i))
            np.tanh(engine.state[1], out=out[t])
    finally:
        engine.restore(start)
    return out


@dataclass(frozen=True)
class FoundCell:
    layer: int  # from 1
    cell: int  # from 1
    correlation: float
    values: np.ndarray  # tanh(c) at each character of the strip


def rank_cells(acts: np.ndarray, values: np.ndarray, top: int = CELLS_SHOWN) -> list:
    """(layer, cell, correlation) of the cells whose activation best tracks values, by
    the size of the correlation (a cell may track a feature by going negative)."""
    if values.std() == 0:
        raise CharchatError("the feature does not change over this text; nothing to track")
    flat = acts.reshape(len(acts), -1).astype(np.float64)
    centred = flat - flat.mean(axis=0)
    v = values - values.mean()
    spread = np.sqrt((centred**2).sum(axis=0) * (v**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(spread > 0, centred.T @ v / spread, 0.0)
    order = np.argsort(-np.abs(r), kind="stable")[:top]
    hidden = acts.shape[2]
    return [(int(k // hidden) + 1, int(k % hidden) + 1, float(r[k])) for k in order]


def strip_window(values: np.ndarray, size: int = STRIP_CHARS) -> slice:
    """The stretch of text where the feature changes most, to show beside each cell."""
    if len(values) <= size:
        return slice(0, len(values))
    changes = np.abs(np.diff(values, prepend=values[0])) > 0
    counts = np.convolve(changes, np.ones(size), mode="valid")
    start = int(np.argmax(counts))
    return slice(start, start + size)
