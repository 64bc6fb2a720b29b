"""A conversation: settings + engine + transcript. handle(line) yields plain events.

The invariant: the engine's state is always the state of having read `transcript` from a
fresh state. Generation feeds each character before yielding it, so a consumer that stops
iterating at any point leaves state and transcript agreeing on what was shown.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charchat import commands
from charchat import settings as spec
from charchat.commands import CommandError
from charchat.engine import Engine
from charchat.errors import CharchatError
from charchat.events import (
    Generated,
    Info,
    ModelCard,
    ProbRow,
    Probs,
    PromptRead,
    Quit,
    Score,
    SurpriseColours,
    Sweep,
    SweepLine,
    TurnDone,
)
from charchat.modelfile import Model, atomic_write, load_model, resolve_model
from charchat.sampling import entropy_bits, kept_mask, log_softmax, next_char, probabilities
from charchat.settings import Settings

LOG2E = 1 / math.log(2)


class Transcript:
    """The text read so far. Appending a character does not copy what came before."""

    def __init__(self) -> None:
        self._text = ""
        self._pending: list[str] = []
        self._length = 0

    def append(self, text: str) -> None:
        self._pending.append(text)
        self._length += len(text)

    def text(self) -> str:
        if self._pending:
            self._text += "".join(self._pending)
            self._pending.clear()
        return self._text

    def truncate(self, length: int) -> None:
        self._text = self.text()[:length]
        self._length = len(self._text)

    def __len__(self) -> int:
        return self._length


@dataclass
class Turn:
    snapshot: np.ndarray
    transcript_length: int


@dataclass
class Session:
    model: Model
    settings: Settings = field(default_factory=Settings)
    length: int = spec.LENGTH.default
    seed: int | None = None  # of the random generator
    surprise_colours: bool = False  # report how surprising each prompt character was

    def __post_init__(self):
        self.settings.check()
        self.engine = Engine(self.model)
        self.rng = np.random.default_rng(self.seed)
        self._transcript = Transcript()
        self.turns: list[Turn] = []
        self.last_entropy: float | None = None
        self.last_speed: float | None = None

    @property
    def transcript(self) -> str:
        return self._transcript.text()

    @property
    def transcript_length(self) -> int:
        return len(self._transcript)

    # ---------------------------------------------------------- entry point

    def handle(self, line: str) -> Iterator:
        """Events for one line typed or piped: a /command, or a prompt to continue."""
        if commands.is_command(line) and "\n" not in line.strip():
            parsed = commands.parse(line)  # raises CommandError: nothing has changed
            return self._apply(parsed.command.name, parsed.value)
        return self.turn(commands.prompt_text(line))

    def turn(self, prompt: str, length: int | None = None) -> Iterator:
        """Read the prompt (may be empty), then generate; a new undo point."""
        self.turns.append(Turn(self.engine.snapshot(), len(self._transcript)))
        return self._turn(prompt, self.length if length is None else length)

    def _turn(self, prompt: str, length: int) -> Iterator:
        if prompt:
            encoded = self.model.vocab.encode(prompt)
            read = self.model.vocab.decode(encoded.ids)
            surprisal = None
            if self.surprise_colours:
                surprisal = [
                    float(-log_softmax(self._logits_then_feed(i))[i] * LOG2E) for i in encoded.ids
                ]
            else:
                self.engine.feed_many(encoded.ids)
            self._transcript.append(read)
            yield PromptRead(read, encoded.mapped, encoded.dropped, surprisal)
        yield from self.generate(length)

    def _logits_then_feed(self, char_id: int) -> np.ndarray:
        logits = self.engine.logits().copy()
        self.engine.feed(char_id)
        return logits

    def generate(self, length: int) -> Iterator:
        chars = self.model.vocab.chars
        started = time.perf_counter()
        done = 0
        try:
            for _ in range(length):
                logits = self.engine.logits()
                settings = self.settings  # read every step: it may change mid-stream
                index, logprob, self.last_entropy = next_char(logits, settings, self.rng)
                p_one = math.exp(logprob)
                self.engine.feed(index)
                self._transcript.append(chars[index])
                done += 1
                yield Generated(chars[index], p_one, self.last_entropy)
        finally:
            seconds = time.perf_counter() - started
            if done and seconds > 0:
                self.last_speed = done / seconds
        yield TurnDone(done, seconds)

    # ---------------------------------------------------------- commands

    def _apply(self, name: str, value) -> Iterator:
        handler = getattr(self, f"_cmd_{name}")
        result = handler(value)
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

    def _cmd_len(self, value: int):
        self.length = int(value)
        return Info(f"length {self.length}")

    def _cmd_seed(self, value: int):
        self.seed = int(value)
        self.rng = np.random.default_rng(self.seed)
        return Info(f"sampler reseeded with {self.seed}")

    def _cmd_reset(self, _):
        self.engine.reset()
        self._transcript = Transcript()
        self.turns.clear()
        return Info("transcript cleared; fresh state")

    def _cmd_undo(self, _):
        if not self.turns:
            raise CommandError("/undo: nothing to undo")
        turn = self.turns.pop()
        self.engine.restore(turn.snapshot)
        removed = len(self._transcript) - turn.transcript_length
        self._transcript.truncate(turn.transcript_length)
        return Info(f"undone: {removed} characters removed")

    def _cmd_model(self, spec: str):
        model = load_model(resolve_model(spec))  # CharchatError leaves the session as it was
        self.switch_model(model)
        return Info(f"switched to {self.model_summary()}; transcript restarted")

    def switch_model(self, model: Model) -> None:
        self.model = model
        self.engine = Engine(model)
        self._transcript = Transcript()
        self.turns.clear()

    def _cmd_info(self, _):
        return ModelCard(self.card_rows())

    def _cmd_save(self, filename: str):
        path = Path(filename).expanduser()
        if path.is_dir():
            raise CommandError(f"/save: {path} is a directory")
        if path.exists():
            raise CommandError(f"/save: {path} exists; choose another name")
        try:
            atomic_write(path, self.transcript.encode("utf-8"))
        except CharchatError as e:
            raise CommandError(f"/save: {e}") from None
        return Info(f"saved {len(self._transcript)} characters to {path}")

    def _cmd_help(self, name):
        return Info(commands.help_text(name))

    def _cmd_quit(self, _):
        return Quit()

    def _cmd_color(self, on: bool):
        self.surprise_colours = on
        return SurpriseColours(on)

    def _cmd_probs(self, n):
        return self.probs(n or spec.PROBS_SHOWN.default)

    def _cmd_sweep(self, temperatures):
        return self.sweep(temperatures or spec.SWEEP_TEMPERATURES)

    def _cmd_score(self, text: str):
        return self.score(text)

    # ---------------------------------------------------------- looking without touching

    def probs(self, n: int = spec.PROBS_SHOWN.default) -> Probs:
        """The most likely next characters; nothing is sampled and nothing changes."""
        logits = self.engine.logits().copy()
        t = self.settings.temperature
        p_temp = probabilities(logits, t)
        p_one = probabilities(logits, 1.0)
        kept = (
            kept_mask(p_temp, self.settings)
            if not self.settings.is_greedy
            else p_temp == p_temp.max()
        )
        order = np.argsort(-p_one, kind="stable")[:n]
        rows = [
            ProbRow(self.model.vocab.chars[i], float(p_temp[i]), float(p_one[i]), bool(kept[i]))
            for i in order
        ]
        s = self.settings
        if s.is_greedy:
            note = "greedy: only the most likely character can be chosen"
        elif s.mode == "top-k":
            note = f"top-k {s.top_k}: {int(kept.sum())} characters can be chosen"
        elif s.mode == "top-p":
            note = f"top-p {s.top_p:g}: {int(kept.sum())} characters can be chosen"
        else:
            note = f"sample: all {int((p_temp > 0).sum())} characters can be chosen"
        return Probs(rows, t, entropy_bits(p_temp), entropy_bits(p_one), note)

    def sweep(self, temperatures) -> Sweep:
        """The same state and random stream continued at each temperature; nothing changes."""
        start = self.engine.snapshot()
        rng_state = self.rng.bit_generator.state
        chars = self.model.vocab.chars
        lines = []
        try:
            for t in temperatures:
                self.engine.restore(start)
                rng = np.random.default_rng()
                rng.bit_generator.state = rng_state
                settings = self.settings.with_(temperature=float(t))
                text, entropies, surprisals = [], [], []
                for _ in range(self.length):
                    logits = self.engine.logits()
                    index, logprob, entropy = next_char(logits, settings, rng)
                    entropies.append(entropy)
                    surprisals.append(-logprob * LOG2E)
                    self.engine.feed(index)
                    text.append(chars[index])
                lines.append(
                    SweepLine(
                        float(t),
                        "".join(text),
                        float(np.mean(entropies)),
                        float(np.mean(surprisals)),
                    )
                )
        finally:
            self.engine.restore(start)
        return Sweep(lines)

    def score(self, text: str) -> Score:
        encoded = self.model.vocab.encode(text)
        if not encoded.ids:
            raise CommandError("/score: no character of that text is in the model's vocabulary")
        start = self.engine.snapshot()
        try:
            bits = [float(-log_softmax(self._logits_then_feed(i))[i] * LOG2E) for i in encoded.ids]
        finally:
            self.engine.restore(start)
        return Score(
            self.model.vocab.decode(encoded.ids), bits, float(np.mean(bits)), encoded.dropped
        )

    # ---------------------------------------------------------- descriptions

    def describe_settings(self) -> str:
        s = self.settings
        parts = [
            f"temperature {s.temperature:g}"
            + (" (greedy)" if s.is_greedy and s.mode != "greedy" else ""),
            f"mode {s.mode}",
        ]
        if s.mode == "top-k":
            parts.append(f"top-k {s.top_k}")
        if s.mode == "top-p":
            parts.append(f"top-p {s.top_p:g}")
        return ", ".join(parts)

    def model_summary(self) -> str:
        m = self.model
        corpus = m.card.get("corpus", "unknown text")
        return f"{m.name} ({m.config.layers}x{m.config.hidden} LSTM, {m.parameters / 1e6:.1f}M parameters, trained on {corpus})"

    def card_rows(self) -> list:
        m, card = self.model, self.model.card
        rows = [
            ("model", m.name),
            ("file", str(m.path) if m.path else "-"),
            (
                "architecture",
                f"{m.config.layers} x LSTM {m.config.hidden}, embedding {m.config.embedding}",
            ),
            ("parameters", f"{m.parameters:,}"),
            ("vocabulary", f"{len(m.vocab)} characters"),
        ]
        labels = [
            ("corpus", "trained on"),
            ("corpus_chars", "corpus characters"),
            ("chars_trained_on", "characters seen"),
            ("steps", "steps"),
            ("best_val_bits_per_char", "validation bits/char"),
            ("best_val_nats_per_char", "validation nats/char"),
            ("train_seconds", "training seconds"),
            ("device", "device"),
            ("torch_version", "torch"),
            ("charchat_version", "charchat"),
            ("date", "date"),
        ]
        rows += [
            (label, f"{card[key]:,}" if isinstance(card[key], int) else str(card[key]))
            for key, label in labels
            if key in card
        ]
        return rows
