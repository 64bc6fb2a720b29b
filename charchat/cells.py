"""Looking for single LSTM cells that track something: inside quotes, position in a line...

A cell's activation here is tanh(c), the cell state as it enters the output gate, in -1..1,
after reading each character. /cells find correlates every cell's activation with a feature
of the text and ranks the cells by how well they track it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from charchat.errors import CharchatError

FEATURES = {
    "quote": 'inside "…"',
    "line": "position in the line",
    "paren": "inside (…)",
    "word": "position in the word",
}
STRIP_CHARS = 72  # characters of text shown with each cell found
CELLS_SHOWN = 5


def feature_values(feature: str, text: str) -> np.ndarray:
    """The feature's value at each character of text (after reading it)."""
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
            pattern = re.compile(feature)
        except re.error as e:
            raise CharchatError(
                f"{feature!r} is neither a feature ({', '.join(FEATURES)}) nor a regular "
                f"expression ({e})"
            ) from None
        for match in pattern.finditer(text):
            values[match.start() : match.end()] = 1.0
    return values


def activations(engine, ids) -> np.ndarray:
    """tanh(c) of every cell after each character, read from the model's starting state:
    shape (characters, layers, hidden). The engine is left as it was."""
    start = engine.snapshot()
    out = np.empty((len(ids), engine.layers, engine.hidden), dtype=np.float32)
    try:
        engine.reset()
        for t, i in enumerate(ids):
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
