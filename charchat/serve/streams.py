"""Many clients' generations at once: every stream of a model is stepped together, so one
matrix product per layer serves all of them at each step.

Pure of HTTP. A Generation reports through `deliver(item)` (a Read, then Chars, then one
Done), called from worker threads: reader threads read prompts (from the prefix cache's
state where one fits), the stepper thread writes. A stream alone is stepped exactly as the
chat steps one (`echo PROMPT | charchat -n N --seed S` writes the same text); streams stepped
together agree with it to float rounding.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from charchat.chat.decoding import NGramIndex, banned_ids, beam_search_steps
from charchat.chat.engine import Engine
from charchat.chat.sampling import log_softmax, next_char, next_chars
from charchat.modelfile import Model
from charchat.serve.generation import (
    Char,
    Generation,
    Read,
    alternatives,
    before_stop,
    score_prompt,
)
from charchat.serve.prefixcache import DEFAULT_BYTES, PrefixCache

BACKLOG_MOST = 8192  # characters delivered and not yet taken: the stream waits for its client
IDLE_WAIT = 0.002  # seconds the stepper sleeps while every stream waits for its client
TOGETHER_FROM = 8  # fewer streams are stepped one by one (a product for 4 is no faster)
READERS_MOST = 4  # prompts read at once per model (each reader has its own engine)
PART_LEAST = 8  # with several cores, the streams are cut in parts of at least this many,
# stepped at once on as many cores (feed_batch leaves the engine as it was)


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class ModelStreams:
    """The streams of one model: reader threads, a stepper thread (and helpers, one per
    further core), a beam-search thread, a prefix cache."""

    def __init__(self, model: Model, cache_bytes: int = DEFAULT_BYTES):
        self.model = model
        self.cache = PrefixCache(cache_bytes)
        self.stepper = Engine(model)
        self.cores = usable_cores()
        readers = max(2, min(READERS_MOST, self.cores))
        self._readers: queue.SimpleQueue[Engine] = queue.SimpleQueue()
        for _ in range(readers):
            self._readers.put(self.stepper.twin())
        self._reading = ThreadPoolExecutor(readers, thread_name_prefix=f"read-{model.name}")
        self._searching = ThreadPoolExecutor(1, thread_name_prefix=f"beam-{model.name}")
        self.searcher = self.stepper.twin()
        self._incoming: deque[Generation] = deque()
        self._wake = threading.Event()
        self._active: list[Generation] = []
        self._closing = False
        self._open: set[Generation] = set()  # started and not yet done
        self.stepped = 0  # characters written, all streams together
        helpers = self.cores - 1
        self._helper = ThreadPoolExecutor(helpers, f"step-{model.name}") if helpers else None
        self._thread = threading.Thread(target=self._loop, name=f"step-{model.name}", daemon=True)
        self._thread.start()

    def start(self, generation: Generation) -> None:
        generation.started = time.perf_counter()
        self._open.add(generation)
        self._reading.submit(self._read, generation)

    def cancel(self, g: Generation) -> None:
        """Its client went away: no more work. What it wrote stays in the prefix cache (the
        stepper puts it); a paced one's last states go in now, since its reader stopped a
        few characters behind the writing and may send that text back (the page's Continue)."""
        g.cancel()
        if not g.finished:
            for length, state in list(g.recent or ()):  # pairs the stepper made whole
                self.cache.put(g.text[:length], state)

    def _abandon(self, g: Generation) -> None:
        """Stopped before its end: dropped if its client went, else told of the shutdown."""
        if g.cancelled:
            self._open.discard(g)
        else:
            g.done("shutdown")

    @property
    def working(self) -> int:
        """Streams started and not yet done or cancelled."""
        return len(self._open)

    def close(self) -> None:
        """Every stream gets its last item ("shutdown"); the threads end."""
        self._closing = True
        self._wake.set()
        self._reading.shutdown(wait=True, cancel_futures=True)
        self._searching.shutdown(wait=True, cancel_futures=True)
        self._thread.join(timeout=5)
        if self._helper is not None:
            self._helper.shutdown(wait=True)
        for g in list(self._open):
            g.done("shutdown")

    # ------------------------------------------------------------ reading

    def _read(self, g: Generation) -> None:
        engine = self._readers.get()  # one of several: a long prompt holds up no other
        try:
            self._read_with(engine, g)
        finally:
            self._readers.put(engine)

    def _read_with(self, engine: Engine, g: Generation) -> None:
        if self._closing or g.cancelled:
            return self._abandon(g)
        started = time.perf_counter()
        vocab, ask = self.model.vocab, g.ask
        ids = vocab.encode(ask.prompt).ids
        read = vocab.decode(ids)
        scores = tops = None
        cached = 0
        if ask.prompt_scores:
            scored = score_prompt(
                engine, ids, ask, vocab.chars, lambda: g.cancelled or self._closing
            )
            if scored is None:
                return self._abandon(g)
            scores, tops = scored
        else:
            cached, state = self.cache.longest_prefix(read)
            engine.restore(engine.initial if state is None else state)
            for _ in engine.prime(ids[cached:]):
                if g.cancelled or self._closing:
                    return self._abandon(g)
            self.cache.put(read, engine.state)
        g.state, g.logits = engine.state.copy(), engine.logits().copy()
        g.text, g.read_chars = read, len(read)
        g.read_seconds = time.perf_counter() - started
        g.deliver(
            Read(read, cached, scores and tuple(scores), tops and tuple(tops), g.read_seconds)
        )
        if ask.length == 0:  # only the prompt's scores were wanted
            self._open.discard(g)
            return g.done("length")
        if ask.norepeat:
            g.ngrams = NGramIndex(ask.norepeat, read)
        if ask.settings.mode == "beam":
            self._searching.submit(self._beam, g)
            return None
        self._incoming.append(g)
        self._wake.set()

    def _beam(self, g: Generation) -> None:
        """Beam search needs the whole continuation before its first character; it runs on
        its own thread, so prompts go on being read, and stops when its client goes."""
        engine, ask = self.searcher, g.ask
        engine.restore(g.state)
        search = beam_search_steps(engine, g.settings.beam_width, ask.length, "", ask.stops)
        while True:
            if g.cancelled or self._closing:
                return self._abandon(g)
            try:
                next(search)
            except StopIteration as end:
                found = end.value[0]
                break
        kept, reason = before_stop(found, self.model.vocab.chars, ask.stops, ask.length)
        for i in kept:
            if g.cancelled:
                return self._open.discard(g)
            logits = engine.logits()
            top = self._named(alternatives(logits, g.settings, ask.top, ask.drawn))
            g.backlog += 1
            g.deliver(
                Char(
                    self.model.vocab.chars[i], float(log_softmax(logits)[i]), 0.0, 0.0, "beam", top
                )
            )
            g.written += 1
            engine.feed(i)
        g.done(reason)
        self._open.discard(g)

    def _named(self, pairs) -> tuple:
        return tuple((self.model.vocab.chars[i], score) for i, score in pairs)

    # ------------------------------------------------------------ writing

    def _loop(self) -> None:
        while True:
            while self._incoming:
                self._active.append(self._incoming.popleft())
            if self._closing:
                for g in self._active:
                    g.done("shutdown")
                return
            for g in self._active:
                if g.cancelled:
                    self._open.discard(g)
                    self.cache.put(g.text, g.state)
            self._active = [g for g in self._active if not g.cancelled]
            now = time.perf_counter()
            ready = [g for g in self._active if g.backlog < BACKLOG_MOST and g.next_at <= now]
            if not ready:
                due = [g.next_at - now for g in self._active if g.next_at > now]
                waiting = len(due) < len(self._active)  # some wait for their client
                wait = min([IDLE_WAIT] * waiting + due) if self._active else None
                self._wake.wait(wait)
                self._wake.clear()
                continue
            for g in ready:
                if g.ask.pace:
                    g.next_at = max(g.next_at, now - 1.0) + 1 / g.ask.pace
            self._step(ready)

    def _step(self, streams: list[Generation]) -> None:
        vocab = self.model.vocab
        self.stepped += len(streams)
        ids, finished = [], []
        for g, (index, logprob, entropy) in zip(streams, self._draw(streams), strict=True):
            char = vocab.chars[index]
            ids.append(index)
            g.text += char
            g.written += 1
            if g.ngrams is not None:
                g.ngrams.extend(char)
            top = self._named(alternatives(g.logits, g.settings, g.ask.top, g.ask.drawn))
            reason = g.emit(char, logprob, entropy, top)
            if reason:
                finished.append((g, reason))
        self._feed(streams, ids)
        for g, reason in finished:
            self._active.remove(g)
            self.cache.put(g.text, g.state)
            g.done(reason)
            self._open.discard(g)

    def _draw(self, streams: list[Generation]) -> list[tuple]:
        """(index, log-probability, entropy) for each stream's next character: those that
        sample plainly are drawn together (the same characters as one by one)."""
        vocab, drawn = self.model.vocab, [None] * len(streams)
        plain = [
            n
            for n, g in enumerate(streams)
            if g.ngrams is None and g.settings.mode == "sample" and not g.settings.is_greedy
        ]
        if len(plain) > 1:
            together = next_chars(
                np.stack([streams[n].logits for n in plain]),
                np.array([streams[n].settings.temperature for n in plain]),
                np.array([streams[n].rng.random() for n in plain]),
            )
            for n, index, logprob, entropy in zip(plain, *together, strict=True):
                drawn[n] = (int(index), float(logprob), float(entropy))
        for n, g in enumerate(streams):
            if drawn[n] is None:
                banned = banned_ids(g.ngrams, vocab.index, len(vocab))[0] if g.ngrams else None
                drawn[n] = next_char(g.logits, g.settings, g.rng, banned)
        return drawn

    def _feed(self, streams: list[Generation], ids: list[int]) -> None:
        if len(streams) < TOGETHER_FROM:  # one by one: as fast, and exactly as the chat steps
            engine = self.stepper
            for g, i in zip(streams, ids, strict=True):
                engine.state[...] = g.state
                engine.feed(i)
                g.stepped(engine.state.copy(), engine.logits().copy())
            return
        parts = min(self.cores, len(streams) // PART_LEAST)
        if parts < 2:
            return self._feed_together(streams, ids)
        cuts = [len(streams) * k // parts for k in range(parts + 1)]
        others = [
            self._helper.submit(self._feed_together, streams[a:b], ids[a:b])
            for a, b in zip(cuts[1:-1], cuts[2:], strict=True)
        ]
        self._feed_together(streams[: cuts[1]], ids[: cuts[1]])
        for other in others:
            other.result()

    def _feed_together(self, streams: list[Generation], ids: list[int]) -> None:
        states = np.stack([g.state for g in streams])
        states, logits = self.stepper.feed_batch(states, np.array(ids))
        for n, g in enumerate(streams):
            g.stepped(states[n], logits[n])
