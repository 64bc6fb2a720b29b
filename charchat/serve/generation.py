"""One generation's request and what it reports: a Read, then Chars, then one Done, each
delivered through `deliver(item)` from the worker threads (streams.py)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from charchat.chat.decoding import NGramIndex, stop_hit
from charchat.chat.sampling import distribution, log_softmax
from charchat.settings import Settings

RECENT_STATES = 16


@dataclass(frozen=True)
class Ask:
    """One generation, its values already checked."""

    prompt: str
    length: int
    settings: Settings = field(default_factory=Settings)
    seed: int | None = None
    stops: tuple[str, ...] = ()  # the text ends before the first of these it writes
    top: int = 0  # alternatives reported per character (log-probabilities at T = 1)
    drawn: bool = False  # ...or the distribution each character was drawn from (the page)
    norepeat: int = 0
    prompt_scores: bool = False  # each prompt character's log-probability too (echo)
    pace: float = 0.0  # characters a second (the page: readable, so a slider acts at once)


@dataclass(frozen=True)
class Read:
    text: str  # the prompt as the model read it
    cached: int  # characters of it whose state came from the prefix cache
    scores: tuple[float, ...] | None = None  # with prompt_scores
    tops: tuple | None = None  # with prompt_scores and top: alternatives per character
    seconds: float = 0.0


@dataclass(frozen=True)
class Char:
    text: str
    logprob: float  # nats, under the model at T = 1
    entropy: float  # bits, of the distribution it was drawn from
    temperature: float  # and mode: the settings it was drawn with
    mode: str
    top: tuple[tuple[str, float], ...] = ()  # (character, log-probability), likeliest first


@dataclass(frozen=True)
class Done:
    reason: str  # "length", "stop", or "shutdown"
    written: int
    prompt_chars: int
    read_seconds: float
    write_seconds: float


class Generation:
    def __init__(self, ask: Ask, deliver):
        self.ask, self.deliver = ask, deliver
        self.settings = ask.settings  # the page may change them while it streams
        self.rng = np.random.default_rng(ask.seed)
        self.cancelled = False
        self.backlog = 0  # delivered characters the client has not taken yet
        self.state: np.ndarray | None = None
        self.logits: np.ndarray | None = None
        self.text = ""  # read and written so far (the prefix cache's key at the end)
        self.read_chars, self.written = 0, 0
        self.pending: list[Char] = []  # held back: they may begin a stop string
        self.read_seconds, self.started = 0.0, 0.0
        self.ngrams: NGramIndex | None = None
        self.finished = False
        self.next_at = 0.0  # paced: when the next character is due (time.perf_counter())
        # Paced (the page): the last few states, by text length. A reader stops at what it has
        # seen, a few characters behind the writing; its next request starts from there.
        self.recent: deque | None = deque(maxlen=RECENT_STATES) if ask.pace else None

    def cancel(self) -> None:
        """The client went away: no more work for it."""
        self.cancelled = True

    def stepped(self, state: np.ndarray, logits: np.ndarray) -> None:
        """The state of having read self.text, and the logits of what comes next."""
        self.state, self.logits = state, logits
        if self.recent is not None:
            self.recent.append((len(self.text), state))

    def emit(self, char: str, logprob: float, entropy: float, top: tuple) -> str | None:
        """Deliver the character, held back while it may begin a stop string (which the
        text never includes); the reason the stream ends here, if it does."""
        g, ask, settings = self, self.ask, self.settings
        item = Char(char, logprob, entropy, settings.temperature, settings.mode, top)
        if not ask.stops:
            g.backlog += 1
            g.deliver(item)
            return "length" if g.written >= ask.length else None
        g.pending.append(item)
        held = "".join(c.text for c in g.pending)
        hit = stop_hit(held, ask.stops)
        if hit:
            g.pending = g.pending[: len(held) - len(hit)]
        while g.pending and (hit or not any(s.startswith(held) for s in ask.stops)):
            g.backlog += 1
            g.deliver(g.pending.pop(0))
            held = held[1:]
        if hit:
            return "stop"
        if g.written >= ask.length:
            for item in g.pending:  # the length ran out before any stop string came
                g.deliver(item)
            return "length"
        return None

    def took(self, count: int) -> None:
        self.backlog -= count

    def done(self, reason: str) -> None:
        if self.finished:
            return
        self.finished = True
        seconds = time.perf_counter() - self.started
        self.deliver(Done(reason, self.written, self.read_chars, self.read_seconds, seconds))


def alternatives(logits, settings: Settings, count: int, drawn: bool) -> tuple:
    if not count:
        return ()
    scores = np.log(distribution(logits, settings) + 1e-300) if drawn else log_softmax(logits)
    order = np.argsort(-scores, kind="stable")[:count]
    return tuple((int(i), float(scores[i])) for i in order)


def before_stop(ids, chars, stops, length: int) -> tuple[list, str]:
    """A beam's ids up to its first stop string (left out), and why its text ends there."""
    text = ""
    for n, i in enumerate(ids):
        text += chars[i]
        hit = stop_hit(text, stops) if stops else None
        if hit:
            return list(ids[: n + 1 - len(hit)]), "stop"
    return list(ids), "length" if len(ids) >= length else "stop"  # every beam stopped


def score_prompt(engine, ids, ask: Ask, chars, stopped) -> tuple[list, list] | None:
    """Each prompt character's log-probability, the first from the model's starting state
    (as `charchat eval` scores it), and the top alternatives; None if stopped() came true."""
    engine.reset()
    scores, tops = [], []
    for n, i in enumerate(ids):
        if n % 1024 == 0 and stopped():
            return None
        logits = engine.logits()
        scores.append(float(log_softmax(logits)[i]))
        top = alternatives(logits, ask.settings, ask.top, False)
        tops.append(tuple((chars[c], score) for c, score in top))
        engine.feed(i)
    return scores, tops
