"""What a session says: plain data, no formatting. render.py is the one place they become
output."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptRead:
    """The model read the text the user typed (the prompt)."""

    text: str  # what the model read (after mapping unknown characters)
    mapped: dict  # character typed -> what was read instead
    dropped: list  # characters with no stand-in, left out
    surprisal: list | None = None  # bits per prompt character, when colouring by surprise
    cells: list | None = None  # the watched cell's activation after each character


@dataclass(frozen=True)
class Reading:
    """Progress through a long prompt: `done` of `total` characters read so far."""

    done: int
    total: int


@dataclass(frozen=True)
class Searching:
    """Progress of a beam search: `done` of `total` characters searched so far."""

    done: int
    total: int


@dataclass(frozen=True)
class Generated:
    char: str
    probability: float  # of this character under the model (T = 1)
    entropy: float  # bits, of the distribution it was drawn from
    copied: bool = False  # in a stretch found verbatim in the training text (/novelty on)
    cell: float | None = None  # the watched cell's activation after it (/cells L C)


@dataclass(frozen=True)
class TurnDone:
    generated: int
    seconds: float


@dataclass(frozen=True)
class Info:
    text: str


@dataclass(frozen=True)
class ModelCard:
    rows: list  # (label, value)


@dataclass(frozen=True)
class ProbRow:
    char: str
    p_temp: float
    p_one: float
    kept: bool


@dataclass(frozen=True)
class Probs:
    rows: list
    temperature: float
    entropy_temp: float
    entropy_one: float
    mode_note: str


@dataclass(frozen=True)
class SweepLine:
    """One temperature of a /sweep: the same state and random numbers as the others."""

    temperature: float
    text: str
    entropy: float  # mean bits per character of the distributions drawn from
    surprisal: float  # mean bits per character of the characters drawn (T = 1)


@dataclass(frozen=True)
class Score:
    chars: str
    bits: list  # surprisal of each character, T = 1
    mean_bits: float
    dropped: list


@dataclass(frozen=True)
class SurpriseColours:
    """Colouring by surprise was switched on or off."""

    on: bool


@dataclass(frozen=True)
class CellStrips:
    """Cells shown beside a stretch of text, each character coloured by the cell."""

    title: str
    text: str
    cells: list  # cells.FoundCell, values aligned with text


@dataclass(frozen=True)
class Quit:
    pass
