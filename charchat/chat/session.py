"""A conversation: settings + engine + transcript. handle(line) yields plain events.

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
from pathlib import Path

import numpy as np

from charchat import settings as spec
from charchat.chat import commands, looking
from charchat.chat.commands import CommandError
from charchat.chat.decoding import NGramIndex, banned_ids, beam_search_steps, escape, stop_hit
from charchat.chat.engine import PRIME_CHUNK, Engine
from charchat.chat.sampling import log_softmax, next_char
from charchat.chat.transcript import Transcript, Turn
from charchat.errors import CharchatError
from charchat.events import (
    Generated,
    Info,
    ModelCard,
    PromptRead,
    Quit,
    Reading,
    Searching,
    SurpriseColours,
    TurnDone,
)
from charchat.files import write_file
from charchat.modelfile import Model, load_model, resolve_model
from charchat.settings import Settings

LOG2E = 1 / math.log(2)
SEARCH_SHOWN_EVERY = 8  # beam-search steps between progress events (and chances to stop)


@dataclass
class Session:
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
        self.last_speed: float | None = None  # the engine's characters a second, unpaced
        self.busy_share: float | None = None  # of the last paced turn's time, spent computing
        self.stop_requested = False
        self._ngrams: NGramIndex | None = None  # of the transcript, while norepeat is on
        self.novelty = None  # a novelty.NoveltyWatch, while /novelty is on
        self.cell: tuple[int, int] | None = None  # (layer, cell) from 1, while /cells shows one

    @property
    def transcript(self) -> str:
        return self._transcript.text()

    @property
    def transcript_length(self) -> int:
        return len(self._transcript)

    def request_stop(self) -> None:
        """Stop the action under way at its next step (safe to call from a signal handler)."""
        self.stop_requested = True

    # ---------------------------------------------------------- entry point

    def handle(self, line: str) -> Iterator:
        """Events for one line typed or piped: a /command, or a prompt to continue."""
        self.stop_requested = False
        if commands.is_command(line) and "\n" not in line.strip():
            parsed = commands.parse(line)  # raises CommandError: nothing has changed
            return self._apply(parsed.command.name, parsed.value)
        return self.turn(commands.prompt_text(line))

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
            for done in self._read(encoded.ids, read, surprisal, cells):
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

    def _read(self, ids: list[int], text: str, surprisal: list | None, cells: list | None):
        """Feed the prompt a chunk at a time, the transcript keeping pace; yield the count.
        surprisal and cells, when given, get a value per character."""
        for start in range(0, len(ids), PRIME_CHUNK):
            chunk = ids[start : start + PRIME_CHUNK]
            if surprisal is None and cells is None:
                self.engine.feed_many(chunk)
            else:
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
                    self.last_speed = unpaced[0] / unpaced[1]
            yield Generated(char, math.exp(logprob), self.last_entropy, copied, self._cell_value())
            if self.stops:
                tail = (tail + char)[-max(map(len, self.stops)) :]
                if stop_hit(tail, self.stops):
                    break
        if unpaced[0] and unpaced[1] > 0:
            self.last_speed = unpaced[0] / unpaced[1]
        yield TurnDone(done, busy)
        yield from self._copy_note()
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
        yield from self._copy_note()

    def _copy_note(self) -> list:
        watch = self.novelty
        if watch is None or watch.turn_longest < watch.min_chars:
            return []
        return [
            Info(
                f"novelty: the longest copy this turn is {watch.turn_longest} characters "
                f"found verbatim in {watch.corpus}"
            )
        ]

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

    def _follow_transcript(self) -> None:
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

    # ---------------------------------------------------------- commands

    def _apply(self, name: str, value) -> Iterator:
        result = getattr(self, f"_cmd_{name}")(value)
        if isinstance(result, Iterator):
            return result
        return iter(result if isinstance(result, list) else [result] if result else [])

    def _set(self, **changes) -> Info:
        try:
            self.settings = self.settings.with_(**changes)
        except CharchatError as e:
            raise CommandError(str(e)) from None
        return Info(self.describe_settings())

    def _cmd_temp(self, value: float):
        return self._set(temperature=float(value))

    def _cmd_mode(self, value: str):
        return self._set(mode=value)

    def _cmd_topk(self, value: int):
        return self._set(top_k=int(value))

    def _cmd_topp(self, value: float):
        return self._set(top_p=float(value))

    def _cmd_minp(self, value: float):
        return self._set(min_p=float(value))

    def _cmd_beam(self, value: int):
        return self._set(beam_width=int(value))

    def _cmd_norepeat(self, value: int):
        self.norepeat = int(value)
        if not self.norepeat:
            return Info("norepeat off")
        return Info(f"never writing a {self.norepeat}-character sequence the text already has")

    def _cmd_stop(self, value):
        if value == "off":
            self.stops = ()
            return Info("no stop strings")
        if value is not None:
            if len(self.stops) >= spec.STOPS_MOST and value not in self.stops:
                raise CommandError(f"/stop: at most {spec.STOPS_MOST} stop strings")
            self.stops = (*[s for s in self.stops if s != value], value)
        if not self.stops:
            return Info("no stop strings (/stop TEXT adds one)")
        listed = ", ".join(f"'{escape(s)}'" for s in self.stops)
        return Info(f"a turn ends right after any of: {listed}")

    def _cmd_len(self, value: float):
        self.length = value
        if math.isinf(value):
            return Info("length endless: each turn writes until Ctrl+C or Esc")
        return Info(f"length {self.length}")

    def _cmd_speed(self, value: float):
        self.speed = float(value)
        if not self.speed:
            return Info("pace: as fast as the engine goes")
        return Info(f"pace: {self.speed:g} characters a second")

    def _cmd_seed(self, value: int):
        self.seed = int(value)
        self.rng = np.random.default_rng(self.seed)
        return Info(f"sampler reseeded with {self.seed}")

    def _cmd_reset(self, _):
        self.engine.reset()
        self._transcript = Transcript()
        self._ngrams = None
        self.turns.clear()
        self._follow_transcript()
        return Info("transcript cleared; back to the model's starting state")

    def _cmd_undo(self, _):
        if not self.turns:
            raise CommandError("/undo: nothing to undo")
        removed = self._undo()
        return Info(f"undone: {removed} characters removed")

    def _undo(self) -> int:
        turn = self.turns[-1]
        removed = len(self._transcript) - turn.transcript_length
        try:
            self._transcript.truncate(turn.transcript_length)
        except CharchatError as e:
            raise CommandError(f"/undo: {e}") from None
        self.turns.pop()
        self.engine.restore(turn.snapshot)
        self._ngrams = None
        self._follow_transcript()
        return removed

    def _cmd_regen(self, _):
        """The last turn again from the state before it, with fresh random numbers."""
        if not self.turns:
            raise CommandError("/regen: no turn to write again")
        prompt = self.turns[-1].prompt
        self._undo()
        events = self.turn(prompt)
        s = self.settings
        if s.is_greedy or s.mode == "beam":
            return iter([Info(f"/regen: {s.mode_text()} is deterministic: the same text"), *events])
        return events

    def _cmd_model(self, name: str):
        model = load_model(resolve_model(name))  # CharchatError leaves the session as it was
        if self.stop_requested:
            return Info("/model stopped; still on " + self.model.name)
        watching = self.novelty is not None
        self.switch_model(model)
        note = "; novelty off (it was for the other model's text)" if watching else ""
        return Info(f"switched to {self.model_summary()}; transcript restarted{note}")

    def switch_model(self, model: Model) -> None:
        self.model = model
        self.engine = Engine(model)
        self._transcript = Transcript()
        self._ngrams = None
        self.novelty = None
        self.cell = None
        self.turns.clear()

    def _cmd_info(self, _):
        return ModelCard(looking.card_rows(self))

    def _cmd_save(self, filename: str):
        path = Path(filename).expanduser()
        if path.is_dir():
            raise CommandError(f"/save: {path} is a directory")
        if path.exists():
            raise CommandError(f"/save: {path} exists; choose another name")
        picture = path.suffix.lower() in (".html", ".htm", ".svg")
        try:
            if picture:
                from charchat.chat.export import write_picture

                shown = write_picture(self, path)
            else:
                write_file(path, self.transcript.encode("utf-8"))
        except CharchatError as e:
            raise CommandError(f"/save: {e}") from None
        if picture:
            return Info(f"saved the session as shown ({shown:,} characters) to {path}")
        return Info(f"saved {len(self.transcript):,} characters to {path}")

    def _cmd_session(self, value):
        from charchat.chat import sessionfile

        action, filename, reread = value
        if action == "save":
            try:
                path = sessionfile.save_session(self, Path(filename))
            except CharchatError as e:
                raise CommandError(f"/session save: {e}") from None
            return Info(f"session saved to {path} ({len(self._transcript):,} characters)")
        data = sessionfile.read_session(Path(filename))
        if not sessionfile.restore(self, data, filename, reread, lambda: self.stop_requested):
            return Info(f"/session load stopped while rereading {filename}; nothing changed")
        self._follow_transcript()
        how = "its transcript read into this model" if reread else "continuing exactly"
        return Info(f"session loaded from {filename}: {len(self._transcript):,} characters, {how}")

    def _cmd_novelty(self, value):
        action, argument = value
        if action == "off":
            self.novelty = None
            return Info("novelty off")
        if action == "min":
            if self.novelty is None:
                raise CommandError("/novelty: turn it on first (/novelty on [CORPUS])")
            self.novelty.min_chars = argument
            return Info(f"novelty: copies of {argument} or more characters are underlined")
        return self._novelty_on(argument)

    def _novelty_on(self, corpus: str | None) -> Info:
        from charchat.chat.novelty import (
            MAX_INDEX_CHARS,
            NoveltyWatch,
            TextIndex,
            find_corpus,
            novelty_cache,
        )
        from charchat.errors import Stopped
        from charchat.train.corpus import read_text

        def should_stop() -> bool:
            return self.stop_requested

        try:
            if corpus:
                path = Path(corpus).expanduser()
            else:
                path = find_corpus(self.model.card, self.model.path, should_stop)
            text = read_text(path, 2, "novelty", MAX_INDEX_CHARS, should_stop)
            index = TextIndex.build(text, self.model.vocab, novelty_cache(), should_stop)
        except Stopped as e:
            return Info(f"/novelty on {e}; novelty is as it was")
        except CharchatError as e:
            raise CommandError(f"/novelty: {e}") from None
        min_chars = self.novelty.min_chars if self.novelty else None
        self.novelty = NoveltyWatch(index, path.name)
        if min_chars:
            self.novelty.min_chars = min_chars
        self._follow_transcript()
        return Info(
            f"novelty on: what the model writes is looked up in {path.name} "
            f"({len(index):,} characters); copies of {self.novelty.min_chars} or more "
            "characters are underlined"
        )

    def _cmd_cells(self, value):
        action, argument = value
        if action == "off":
            self.cell = None
            return Info("cells off")
        if action == "find":
            return looking.find_cells(self, argument)
        layer, cell = argument
        layers, hidden = self.model.config.layers, self.model.config.hidden
        if not (1 <= layer <= layers and 1 <= cell <= hidden):
            raise CommandError(
                f"/cells: this model has layers 1 to {layers} and cells 1 to {hidden} in each"
            )
        self.cell = (layer, cell)
        return looking.show_cell(self, layer, cell)

    def _cmd_help(self, name):
        return Info(commands.help_text(name))

    def _cmd_quit(self, _):
        return Quit()

    def _cmd_color(self, on: bool):
        self.surprise_colours = on
        return SurpriseColours(on)

    def _cmd_probs(self, n):
        return looking.probs(self, n or spec.PROBS_SHOWN.default)

    def _cmd_sweep(self, temperatures):
        return looking.sweep(self, temperatures or spec.SWEEP_TEMPERATURES)

    def _cmd_score(self, text: str):
        return looking.score(self, text)

    # ---------------------------------------------------------- looking without touching

    def probs(self, n: int = spec.PROBS_SHOWN.default):
        return looking.probs(self, n)

    def sweep(self, temperatures) -> list:
        return list(looking.sweep(self, temperatures))

    def score(self, text: str):
        return looking.score(self, text)[0]

    # ---------------------------------------------------------- descriptions

    def describe_settings(self) -> str:
        s = self.settings
        greedy = " (greedy)" if s.is_greedy and s.mode not in ("greedy", "beam") else ""
        return f"temperature {s.temperature:g}{greedy}, mode {s.mode_text()}"

    def model_summary(self) -> str:
        m = self.model
        corpus = m.card.get("corpus", "unknown text")
        shape = f"{m.config.layers}x{m.config.hidden} LSTM"
        return f"{m.name} ({shape}, {m.parameters / 1e6:.1f}M parameters, trained on {corpus})"
