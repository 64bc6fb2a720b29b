"""A conversation: settings + engine + transcript, and the turns that write it.

The invariant: the engine's state is always the state of having read the transcript from
the model's starting state. Reading and writing feed the model before they yield, so a
consumer that stops iterating at any point leaves state and transcript agreeing on what was
shown; the edges stop long actions through request_stop(), never by raising inside them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from charchat import settings as spec
from charchat.chat import adapting
from charchat.chat.decoding import NGramIndex, banned_ids, beam_search_steps, stop_hit
from charchat.chat.engine import PRIME_CHUNK, Engine
from charchat.chat.sampling import LOG2E, log_softmax, next_char
from charchat.chat.transcript import Transcript, Turn
from charchat.errors import CharchatError, CommandError
from charchat.events import Generated, Info, PromptRead, Reading, Searching, TurnDone
from charchat.modelfile import Model
from charchat.settings import Settings

SEARCH_SHOWN_EVERY = 8  # beam-search steps between progress events (and chances to stop)


@dataclass
class Conversation:
    model: Model
    settings: Settings = field(default_factory=Settings)
    length: float = spec.LENGTH.default  # characters per turn; math.inf: until stopped
    seed: int | None = None  # of the random generator
    surprise_colours: bool = False  # report how surprising each prompt character was
    stops: tuple[str, ...] = ()  # a turn ends right after the model writes one of these
    norepeat: int = 0  # never write an n-gram of this length already in the transcript
    speed: float = 0.0  # characters a second shown (the edges pace); 0: unpaced

    def __post_init__(self):
        self.settings.check()
        self.engine = Engine(self.model)
        self.rng = np.random.default_rng(self.seed)
        self._transcript = Transcript()
        self.turns: list[Turn] = []
        self.last_entropy: float | None = None
        self.engine_speed: float | None = None  # the engine's characters a second, unpaced
        self.busy_share: float | None = None  # of the last paced turn's time, spent computing
        self.stop_requested = False
        self._ngrams: NGramIndex | None = None  # of the transcript, while norepeat is on
        self.novelty = None  # a novelty.NoveltyWatch, while /novelty is on
        self.cell: tuple[int, int] | None = None  # (layer, cell) from 1, while /cells shows one
        self.make_learner = None  # given by the edge that starts the chat (adapting.py)
        self.adapt_settings = adapting.settings_for(self.model)  # lr, stretch for /adapt on
        self.adapting: adapting.Adapting | None = None  # once /adapt on: what was learnt

    @property
    def transcript(self) -> str:
        return self._transcript.text()

    @property
    def transcript_length(self) -> int:
        return len(self._transcript)

    def request_stop(self) -> None:
        """Stop the action under way at its next step (safe to call from a signal handler)."""
        self.stop_requested = True

    def turn(self, prompt: str, length: float | None = None) -> Iterator:
        """Read the prompt (may be empty), then generate; a new undo point."""
        if len(prompt) > spec.MAX_PROMPT_CHARS:
            raise CommandError(
                f"the prompt has {len(prompt):,} characters; at most "
                f"{spec.MAX_PROMPT_CHARS:,} are read (nothing was read)"
            )
        self.turns.append(Turn(self.engine.snapshot(), len(self._transcript), prompt))
        del self.turns[: -spec.UNDO_KEEP]
        return self._turn(prompt, self.length if length is None else length)

    def _turn(self, prompt: str, length: float) -> Iterator:
        if prompt:
            encoded = self.model.vocab.encode(prompt)
            read = self.model.vocab.decode(encoded.ids)
            surprisal = [] if self.surprise_colours else None
            cells = [] if self.cell else None
            done = 0
            for done in self._read(encoded.ids, read, surprisal, cells, self.turns[-1]):
                if done < len(read):
                    yield Reading(done, len(read))
                if self.stop_requested:
                    break
            yield PromptRead(read[:done], encoded.mapped, encoded.dropped, surprisal, cells)
            if done < len(read):
                yield Info(f"stopped after reading {done:,} of {len(read):,} characters")
                return
        if self.settings.mode == "beam":
            yield from self.generate_beam(length)
        else:
            yield from self.generate(length)

    def _read(self, ids: list[int], text: str, surprisal, cells, turn: Turn):
        """Feed the prompt a chunk at a time, the transcript keeping pace; yield the count.
        surprisal and cells, when given, get a value per character. While /adapt is on, each
        chunk is a stretch, learnt from once read (by the learner alone when nothing per
        character is shown: it reads the stretch anyway)."""
        learning = self.adapting if self.adapting is not None and self.adapting.on else None
        step = learning.stretch if learning else PRIME_CHUNK
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            before = self.engine.snapshot() if learning else None
            plain = surprisal is None and cells is None  # else the engine reads it, to see
            if plain and not learning:
                self.engine.feed_many(chunk)
            elif not plain:
                for i in chunk:
                    if surprisal is not None:
                        surprisal.append(float(-log_softmax(self.engine.logits())[i] * LOG2E))
                    self.engine.feed(i)
                    if cells is not None:
                        cells.append(self._cell_value())
            piece = text[start : start + len(chunk)]
            self._transcript.append(piece)
            if self._ngrams is not None:
                self._ngrams.extend(piece)
            if self.novelty is not None:
                self.novelty.follow(chunk)
            if learning:
                adapting.before_learning(self, turn)
                learning.learn(self.engine, chunk, before, read=not plain)
            yield start + len(chunk)

    def generate(self, length: float) -> Iterator:
        vocab = self.model.vocab
        done = forced = 0
        busy = 0.0  # seconds spent computing, not waiting for the consumer
        unpaced = [0, 0.0]  # characters and seconds computed while unpaced
        tail = self._stop_tail()
        ngrams = self._ngram_index()
        if self.novelty is not None:
            self.novelty.start_turn()
        turn_started = time.perf_counter()
        self.busy_share = None
        while done < length and not self.stop_requested:
            started = time.perf_counter()
            settings = self.settings  # read every step: it may change mid-stream
            banned = None
            if ngrams is not None:
                banned, all_repeat = banned_ids(ngrams, vocab.index, len(vocab))
                forced += all_repeat
            logits = self.engine.logits()
            index, logprob, self.last_entropy = next_char(logits, settings, self.rng, banned)
            char = vocab.chars[index]
            copied = self._wrote(index, char, ngrams)
            done += 1
            finished = time.perf_counter()
            busy += finished - started
            if self.speed:  # paced: the share of the turn the engine worked
                self.busy_share = busy / (finished - turn_started)
            else:
                unpaced[0] += 1
                unpaced[1] += finished - started
                if unpaced[0] % 16 == 0:
                    self.engine_speed = unpaced[0] / unpaced[1]
            yield Generated(char, math.exp(logprob), self.last_entropy, copied, self._cell_value())
            if self.stops:
                tail = (tail + char)[-max(map(len, self.stops)) :]
                if stop_hit(tail, self.stops):
                    break
        if unpaced[0] and unpaced[1] > 0:
            self.engine_speed = unpaced[0] / unpaced[1]
        yield TurnDone(done, busy)
        if self.novelty is not None:
            yield from self.novelty.turn_note()
        if forced:
            yield Info(
                f"norepeat: {forced} times every character would have repeated a "
                f"{self.norepeat}-character sequence; the least repeated one was written"
            )

    def generate_beam(self, length: float) -> Iterator:
        """The continuation the beams find likeliest, then shown as if written one by one."""
        started = time.perf_counter()
        length = int(min(length, spec.LENGTH.high))
        width = self.settings.beam_width
        search = beam_search_steps(self.engine, width, length, self._stop_tail(), self.stops)
        while True:
            try:
                done = next(search)
            except StopIteration as end:
                ids, _ = end.value
                break
            if done % SEARCH_SHOWN_EVERY:
                continue
            yield Searching(done, length)  # the state is untouched until the search ends
            if self.stop_requested:
                yield Info(f"beam search stopped after {done:,} of {length:,} characters")
                yield TurnDone(0, time.perf_counter() - started)
                return
        ngrams = self._ngram_index()
        seconds = time.perf_counter() - started
        done = 0
        if self.novelty is not None:
            self.novelty.start_turn()
        for index in ids:
            logprob = float(log_softmax(self.engine.logits())[index])
            char = self.model.vocab.chars[index]
            copied = self._wrote(index, char, ngrams)
            done += 1
            self.last_entropy = 0.0  # nothing was drawn: the choice was certain
            yield Generated(char, math.exp(logprob), 0.0, copied, self._cell_value())
            if self.stop_requested:
                break
        yield TurnDone(done, seconds)
        if self.novelty is not None:
            yield from self.novelty.turn_note()

    def _wrote(self, index: int, char: str, ngrams) -> bool:
        """Feed what the model wrote; whether it lies in a verbatim copy (/novelty on)."""
        self.engine.feed(index)
        self._transcript.append(char)
        if ngrams is not None:
            ngrams.extend(char)
        return self.novelty is not None and self.novelty.wrote(index)

    def _cell_value(self) -> float | None:
        """The watched cell's activation, tanh(c), in the state now (None: none watched)."""
        if self.cell is None:
            return None
        layer, cell = self.cell
        return math.tanh(float(self.engine.state[1, layer - 1, cell - 1]))

    def follow_transcript(self) -> None:
        """After the transcript was cut or replaced: novelty follows its new end."""
        if self.novelty is not None:
            from charchat.chat.novelty import FOLLOW_TAIL

            tail = self._transcript.tail(FOLLOW_TAIL)
            self.novelty.follow(self.model.vocab.encode(tail).ids)

    def _stop_tail(self) -> str:
        """The end of the transcript a stop string could begin in (one short of the longest)."""
        return self._transcript.tail(max((len(s) for s in self.stops), default=1) - 1)

    def _ngram_index(self) -> NGramIndex | None:
        if not self.norepeat:
            self._ngrams = None
        elif self._ngrams is None or self._ngrams.n != self.norepeat:
            self._ngrams = NGramIndex(self.norepeat, self.transcript)
        return self._ngrams

    def undo(self) -> int:
        turn = self.turns[-1]
        removed = len(self._transcript) - turn.transcript_length
        adapting.check_undo(turn)
        try:
            self._transcript.truncate(turn.transcript_length)
        except CharchatError as e:
            raise CommandError(f"/undo: {e}") from None
        self.turns.pop()
        adapting.undo_learning(self, turn)
        self.engine.restore(turn.snapshot)
        self._ngrams = None
        self.follow_transcript()
        return removed

    def reset(self) -> None:
        """An empty transcript and the model's starting state; no undo points."""
        self.engine.reset()
        self._transcript = Transcript()
        self._ngrams = None
        self.turns.clear()
        self.follow_transcript()

    def switch_model(self, model: Model) -> None:
        self.model = model
        self.engine = Engine(model)
        self._transcript = Transcript()
        self._ngrams = None
        self.novelty = None
        self.cell = None
        self.adapting = None  # what was learnt belongs to the other model
        self.turns.clear()

    # ---------------------------------------------------------- descriptions

    def describe_settings(self) -> str:
        s = self.settings
        greedy = " (greedy)" if s.is_greedy and s.mode not in ("greedy", "beam") else ""
        return f"temperature {s.temperature:g}{greedy}, mode {s.mode_text()}"
