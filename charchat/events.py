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


# ---------------------------------------------------------------- what a training run says


@dataclass(frozen=True)
class TrainingStarted:
    total_steps: int
    parameters: int
    vocabulary: int
    device: str


@dataclass(frozen=True)
class ScheduleFitted:
    """The time budget was measured against the first steps; the schedule now has `steps`."""

    steps: int


@dataclass(frozen=True)
class StepDone:
    step: int
    loss: float  # nats per character on this batch
    chars_seen: int


@dataclass(frozen=True)
class Validated:
    step: int
    val_nats: float  # nats per character on the held-out text
    average_nats: float  # of the weight average (nan: none kept)
    best_nats: float


@dataclass(frozen=True)
class Samples:
    prompt: str
    samples: dict  # temperature -> text written from the prompt
    final: bool


@dataclass(frozen=True)
class StepSkipped:
    """A non-finite loss or gradient: the step was not taken."""

    step: int
    skipped: int  # so far


@dataclass(frozen=True)
class RolledBack:
    """Repeated non-finite steps: back to the last good state at a smaller learning rate."""

    lr_scale: float


@dataclass(frozen=True)
class Resumed:
    step: int


@dataclass(frozen=True)
class StartingStateFitted:
    steps: int


@dataclass(frozen=True)
class PlanChosen:
    line: str  # the plan in one line: model, recipe, measured speed, passes


@dataclass(frozen=True)
class TrainingStopped:
    """Ctrl+C or SIGTERM: a checkpoint was written; `again` is the command that resumes."""

    reason: str
    again: str


@dataclass(frozen=True)
class TrainingFinished:
    path: str
    steps: int
    characters: int
    seconds: float
    processes: int
    best_bits: float | None  # best validation bits per character, when text was held out


TRAINING = (
    TrainingStarted,
    ScheduleFitted,
    StepDone,
    Validated,
    Samples,
    StepSkipped,
    RolledBack,
    Resumed,
    StartingStateFitted,
    PlanChosen,
    TrainingStopped,
    TrainingFinished,
)  # drawn by terminal/trainview.py; the others by terminal/render.py
