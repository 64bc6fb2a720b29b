"""Decoding controls beyond one draw at a time: stop strings, no repeated n-grams, beam search.

Pure of the terminal; the session applies them while it generates.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

ESCAPES = {"n": "\n", "t": "\t", "s": " ", "\\": "\\"}


def unescape(text: str) -> str:
    r"""`\n`, `\t`, `\s` (a space) and `\\` in a typed stop string."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ESCAPES:
            out.append(ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def stop_hit(tail: str, stops: tuple[str, ...]) -> str | None:
    """The stop string `tail` ends with, if any."""
    return next((s for s in stops if tail.endswith(s)), None)


class NGramIndex:
    """Every n-gram of a text, as "which characters have followed these n-1 characters"."""

    def __init__(self, n: int, text: str = ""):
        self.n = n
        self.followers: dict[str, Counter] = defaultdict(Counter)
        self.tail = ""
        self.extend(text)

    def extend(self, text: str) -> None:
        keep = self.n - 1
        tail = self.tail
        for char in text:
            if len(tail) == keep:
                self.followers[tail][char] += 1
            tail = (tail + char)[-keep:] if keep else ""
        self.tail = tail

    def repeats(self) -> Counter:
        """Characters that would repeat an n-gram if written next, with how often it occurs."""
        if len(self.tail) < self.n - 1:
            return Counter()
        return self.followers.get(self.tail, Counter())


def banned_ids(index: NGramIndex, vocab_index: dict[str, int], vocab_size: int):
    """(ids not to write next, True when every character repeats and the least repeated were
    let through instead)."""
    repeats = index.repeats()
    ids = {vocab_index[c]: count for c, count in repeats.items() if c in vocab_index}
    if len(ids) < vocab_size:
        return np.fromiter(ids, dtype=np.int64), False
    least = min(ids.values())
    return np.array([i for i, count in ids.items() if count > least], dtype=np.int64), True


# ---------------------------------------------------------------- beam search


def beam_search(engine, width: int, length: int, tail: str, stops: tuple[str, ...]):
    """beam_search_steps run to its end: (ids, log-probability)."""
    steps = beam_search_steps(engine, width, length, tail, stops)
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return end.value


def beam_search_steps(engine, width: int, length: int, tail: str, stops: tuple[str, ...]):
    """The continuation of up to `length` characters with the highest total log-probability
    (T = 1) that `width` beams find from the engine's current state. The greedy path is kept
    among the beams all the way, so the result is never less likely than greedy's. A beam
    that writes a stop string ends there. Yields the characters searched after each step (a
    caller shows progress, or stops); returns (ids, log-probability). The engine's state is
    left as it was."""
    chars = engine.vocab.chars
    keep = max((len(s) for s in stops), default=0)
    states = engine.snapshot()[None]
    logits = engine.logits()[None].astype(np.float64)
    beams = [([], 0.0, tail[-keep:] if keep else "")]  # (ids, log-probability, text tail)
    greedy = 0  # which beam is the greedy path, None once it has ended
    finished = []
    for step in range(length):
        top = logits.max(axis=1, keepdims=True)
        scores = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
        totals = scores + np.array([b[1] for b in beams])[:, None]
        chosen = list(np.argsort(-totals, axis=None, kind="stable")[:width])
        if greedy is not None:
            greedy_child = greedy * totals.shape[1] + int(np.argmax(logits[greedy]))
            if greedy_child not in chosen:
                chosen[-1] = greedy_child
        alive, parents, next_ids, next_greedy = [], [], [], None
        for flat in chosen:
            row, i = divmod(int(flat), totals.shape[1])
            text = (beams[row][2] + chars[i])[-keep:] if keep else ""
            beam = (beams[row][0] + [i], float(totals[row, i]), text)
            if keep and stop_hit(text, stops):
                finished.append(beam)
                continue
            if greedy is not None and flat == greedy_child:
                next_greedy = len(alive)
            alive.append(beam)
            parents.append(row)
            next_ids.append(i)
        if not alive:
            beams = []
            break
        rows = sorted(set(parents))  # the beams that have children: their states only
        where = {row: n for n, row in enumerate(rows)}
        parents = np.array([where[row] for row in parents])
        states, logits = engine.feed_batch(states[rows], np.array(next_ids), parents)
        beams, greedy = alive, next_greedy
        yield step + 1
    best = max(beams + finished, key=lambda b: b[1])
    return best[0], best[1]
