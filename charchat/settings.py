"""Every user setting of a chat, once: its default, bounds and choices.

The Typer options, the slash-command table, the session and /help all read these, so a
bound is written (and checked) in one place. Messages are written for a person.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from charchat.errors import CharchatError


@dataclass(frozen=True, kw_only=True)
class Named:
    """Where a person meets a setting: the field of Settings or of the chat's options, the
    command-line flag, the slash command and its placeholder, and what it does."""

    field: str = ""
    flag: str = ""
    command: str = ""
    placeholder: str = ""
    summary: str = ""

    def check_flag(self, value):
        """value when it is allowed; a CharchatError that names the flag otherwise."""
        try:
            return self.check(value)
        except CharchatError as e:
            raise CharchatError(f"{self.flag}: {e}") from None


@dataclass(frozen=True)
class Number(Named):
    """A numeric setting: whole or real, within [low, high] (or (low, high] when low_open)."""

    what: str  # how messages name it
    whole: bool
    default: float | int | None
    low: float
    high: float
    low_open: bool = False
    note: str = ""  # shown after the range in help, e.g. "0 = greedy"

    def describe(self) -> str:
        start = f"above {self.low:g}, up to" if self.low_open else f"from {self.low:g} to"
        high = "2^63-1" if self.high == 2**63 - 1 else f"{self.high:g}"
        text = f"{start} {high}"
        return f"{text} ({self.note})" if self.note else text

    def error(self, given: object) -> CharchatError:
        kind = "a whole number" if self.whole else "a number"
        if isinstance(given, float):
            given = f"{given:g}"
        return CharchatError(f"{self.what} must be {kind} {self.describe()}, not {given}")

    def check(self, value: float | int, given: str | None = None) -> float | int:
        """value itself when it is in range; a CharchatError naming the bounds otherwise."""
        error = self.error(value if given is None else given)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error
        if self.whole and not isinstance(value, int):
            raise error
        if not math.isfinite(value) or value > self.high or value < self.low:
            raise error
        if self.low_open and value == self.low:
            raise error
        return value

    def parse(self, text: str) -> float | int:
        try:
            value = int(text) if self.whole else float(text) + 0.0  # -0 is 0
        except ValueError:
            raise self.error(text or "nothing") from None
        return self.check(value, text)


@dataclass(frozen=True)
class Choice(Named):
    what: str
    default: str
    choices: tuple[str, ...]
    aliases: tuple[tuple[str, str], ...] = ()  # spelling -> choice

    def describe(self) -> str:
        return " | ".join(self.choices)

    def check(self, value: str) -> str:
        value = value.strip().lower().replace("_", "-")
        value = dict(self.aliases).get(value, value)
        if value not in self.choices:
            raise CharchatError(f"{self.what} must be one of: {', '.join(self.choices)}")
        return value

    parse = check


def help_text(setting) -> str:
    """What the setting does and its bounds, as /help and --help both say it."""
    joiner = ": " if isinstance(setting, Choice) else ", "
    return f"{setting.summary}{joiner}{setting.describe()}"


MAX_TEMPERATURE = 100.0
MAX_LENGTH = 100_000
# A longer prompt is refused whole: priming reads about 10,000 characters a second on two
# cores, so this is minutes of reading, in memory that does not grow with the prompt.
MAX_PROMPT_CHARS = 4_000_000
TRANSCRIPT_KEEP = 1_000_000  # characters of the transcript kept (the state has read them all)
UNDO_KEEP = 100  # undo points kept
SWEEP_CHARS = 200  # /sweep writes at most this many characters per temperature
SPEED = Number(
    "speed", False, 60, 0, 100_000, note="characters a second, 0 = unpaced",
    field="speed", flag="--speed", command="speed", placeholder="N",
    summary="characters shown a second",
)  # fmt: skip

TEMPERATURE = Number(
    "temperature", False, 0.8, 0.0, MAX_TEMPERATURE, note="0 = greedy",
    field="temperature", flag="--temp", command="temp", placeholder="T",
    summary="softmax temperature",
)  # fmt: skip
MODE = Choice(
    "mode",
    "sample",
    ("greedy", "sample", "top-k", "top-p", "min-p", "beam"),
    aliases=(("topk", "top-k"), ("topp", "top-p"), ("minp", "min-p")),
    field="mode", flag="--mode", command="mode", placeholder="MODE",
    summary="how the next character is chosen",
)  # fmt: skip
TOP_K = Number(
    "top-k", True, 40, 1, 10_000,
    field="top_k", flag="--top-k", command="topk", placeholder="K",
    summary="characters kept in top-k mode",
)  # fmt: skip
TOP_P = Number(
    "top-p", False, 0.9, 0.0, 1.0, low_open=True,
    field="top_p", flag="--top-p", command="topp", placeholder="P",
    summary="probability mass kept in top-p mode",
)  # fmt: skip
MIN_P = Number(
    "min-p", False, 0.05, 0.0, 1.0, low_open=True, note="1 = greedy",
    field="min_p", flag="--min-p", command="minp", placeholder="P",
    summary="in min-p mode, keep the characters at least P times as likely as the likeliest",
)  # fmt: skip
BEAM_WIDTH = Number(
    "beam width", True, 8, 1, 64,
    field="beam_width", flag="--beam", command="beam", placeholder="W",
    summary="in beam mode, how many continuations are followed at once",
)  # fmt: skip
NO_REPEAT = Number(
    "n-gram length", True, 0, 0, 1000, note="0 = off",
    field="norepeat", flag="--norepeat", command="norepeat", placeholder="N",
    summary="never write an N-character sequence the transcript already has",
)  # fmt: skip
STOPS_MOST = 16
STOP_CHARS = 1000  # characters in one stop string
LENGTH = Number(
    "length", True, 400, 1, MAX_LENGTH,
    field="length", flag="--length", command="len", placeholder="N|inf",
    summary="characters generated per turn",
)  # fmt: skip
SEED = Number(
    "seed", True, None, 0, 2**63 - 1,
    field="seed", flag="--seed", command="seed", placeholder="N",
    summary="the sampler's random seed: same seed, same text",
)  # fmt: skip
PROBS_SHOWN = Number("N", True, 10, 1, 200)
SWEEP_TEMPERATURES = (0.2, 0.5, 1.0, 1.2)
NOVELTY_MIN = Number("copy length", True, 20, 4, 1000, note="characters")
SWEEP_MOST = 8  # temperatures one /sweep compares
# Learning while reading (train/adapt.py): chosen on text of the other author (benchmarks/README).
ADAPT_LR = Number(
    "the learning rate", False, 3e-4, 0, 1, low_open=True, field="adapt_lr", flag="--adapt-lr"
)
ADAPT_STRETCH = Number(
    "the stretch", True, 200, 1, 100_000, note="characters",
    field="adapt_stretch", flag="--adapt-stretch",
)  # fmt: skip

MODES = MODE.choices
SAMPLING = (TEMPERATURE, MODE, TOP_K, TOP_P, MIN_P, BEAM_WIDTH)  # the fields of Settings
CHAT_OPTIONS = (
    *SAMPLING,
    NO_REPEAT,
    SPEED,
    LENGTH,
    SEED,
    ADAPT_LR,
    ADAPT_STRETCH,
)  # checked before a chat starts
# The setting each cutting mode reads, as the status bar and /info show it.
MODE_PARAMETER = {"top-k": "top_k", "top-p": "top_p", "min-p": "min_p", "beam": "beam_width"}
CUTTING_MODES = ("top-k", "top-p", "min-p")  # sampling modes that cut the distribution's tail
# Below this, softmax(logits / T) is one-hot for any logits a float32 model produces.
GREEDY_BELOW = 1e-4


@dataclass(frozen=True)
class Settings:
    """How the next character is chosen."""

    temperature: float = TEMPERATURE.default
    mode: str = MODE.default  # one of MODES
    top_k: int = TOP_K.default  # used in mode top-k
    top_p: float = TOP_P.default  # used in mode top-p
    min_p: float = MIN_P.default  # used in mode min-p: keep p >= min_p * the largest p
    beam_width: int = BEAM_WIDTH.default  # used in mode beam

    def check(self) -> Settings:
        TEMPERATURE.check(self.temperature)
        if self.mode not in MODES:
            raise CharchatError(f"mode must be one of: {', '.join(MODES)}")
        TOP_K.check(self.top_k)
        TOP_P.check(self.top_p)
        MIN_P.check(self.min_p)
        BEAM_WIDTH.check(self.beam_width)
        return self

    def with_(self, **changes) -> Settings:
        return replace(self, **changes).check()

    def mode_text(self) -> str:
        """The mode with the setting it reads: "top-k 40", "min-p 0.05", "sample"."""
        field = MODE_PARAMETER.get(self.mode)
        return f"{self.mode} {getattr(self, field):g}" if field else self.mode

    @property
    def is_greedy(self) -> bool:
        return self.mode == "greedy" or self.temperature < GREEDY_BELOW
