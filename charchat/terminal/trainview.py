"""What `charchat train`, `eval` and `calibrate` show on stderr while they work: a progress
bar, samples and warnings, drawn from typed training events (events.py)."""

from __future__ import annotations

import math
import sys
import time

from charchat.events import (
    PlanChosen,
    Resumed,
    RolledBack,
    Samples,
    ScheduleFitted,
    StartingStateFitted,
    StepDone,
    StepSkipped,
    TrainingFinished,
    TrainingStarted,
    TrainingStopped,
    Validated,
)
from charchat.style import safe_text
from charchat.terminal.render import stderr_console


def bits(nats: float) -> str:
    return f"{nats / math.log(2):.3f}" if math.isfinite(nats) else "-"


class TrainingView:
    """Turns training events into a progress bar and sample blocks on stderr."""

    def __init__(self, quiet: bool = False):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = stderr_console()
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("{task.fields[speed]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]} bits/char"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
            disable=quiet,
        )
        self.task = None
        self.last_time = None
        self.last_chars = 0
        self.speed = "-"

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def __call__(self, event) -> None:
        self.show(event)

    def show(self, event) -> None:  # noqa: C901 (one branch per event type)
        if isinstance(event, TrainingStarted):
            self.console.print(
                f"model: {event.parameters / 1e6:.2f}M parameters, "
                f"vocabulary {event.vocabulary}, device {event.device}",
                markup=False,
            )
            self.task = self.progress.add_task(
                "train", total=event.total_steps, speed="-", loss="-", val="-"
            )
        elif isinstance(event, ScheduleFitted):
            self.progress.update(self.task, total=event.steps)
            self.console.print(f"time budget: schedule fitted to {event.steps} steps", markup=False)
        elif isinstance(event, StepDone):
            now = time.perf_counter()
            if self.last_time is None or now - self.last_time > 2:
                if self.last_time is not None:
                    self.speed = (
                        f"{(event.chars_seen - self.last_chars) / (now - self.last_time):,.0f}"
                        " chars/s"
                    )
                self.last_time, self.last_chars = now, event.chars_seen
            self.progress.update(
                self.task, completed=event.step, speed=self.speed, loss=f"{event.loss:.3f}"
            )
        elif isinstance(event, Validated):
            shown = bits(event.val_nats)
            average = event.average_nats
            if math.isfinite(average):
                shown += f" (averaged {bits(average)})"
            self.progress.update(self.task, val=shown)
            if not self.console.is_terminal:  # a log file gets one plain line per validation
                task = self.progress.tasks[0]
                self.console.print(
                    f"step {event.step}/{task.total}  val {shown} bits/char  {self.speed}",
                    markup=False,
                )
        elif isinstance(event, Samples):
            lines = [
                f"samples after step {self.progress.tasks[0].completed}, prompt {event.prompt!r}:"
            ]
            for temperature, text in event.samples.items():
                lines.append(f"  T={temperature:<4} {safe_text(text, keep_newlines=False)}")
            self.console.print("\n".join(lines), markup=False, highlight=False)
        elif isinstance(event, StepSkipped):
            self.console.print(
                f"warning: non-finite loss or gradient at step {event.step}; step skipped "
                f"({event.skipped} so far)",
                markup=False,
            )
        elif isinstance(event, RolledBack):
            self.console.print(
                "warning: repeated non-finite steps; rolled back to the last good state and "
                f"halved the learning rate (now x{event.lr_scale:g})",
                markup=False,
            )
        elif isinstance(event, Resumed):
            self.console.print(f"resumed at step {event.step}", markup=False)
        elif isinstance(event, StartingStateFitted) and event.steps:
            self.console.print(
                f"starting state fitted to where texts start ({event.steps} steps)",
                markup=False,
            )
        elif isinstance(event, PlanChosen):
            self.console.print(event.line, markup=False, highlight=False)
        elif isinstance(event, TrainingStopped):
            self.progress.stop()
            sys.stderr.write(f"charchat: {event.reason}; resume with: {event.again}\n")
        elif isinstance(event, TrainingFinished):
            sys.stderr.write(
                f"saved {event.path} ({event.steps} steps, {event.characters:,} characters, "
                f"{event.seconds:.0f} s"
                + (f", {event.processes} processes" if event.processes > 1 else "")
                + (
                    f", best validation {event.best_bits:.4f} bits/char"
                    if event.best_bits is not None
                    else ""
                )
                + ")\n"
            )


class ScoringProgress:
    """A bar on stderr while `eval` scores a long text, gone when it is done; nothing at all
    when stderr is not a terminal."""

    def __init__(self, enabled: bool):
        self.progress = None
        self.task = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]score"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,} characters"),
                TimeRemainingColumn(),
                console=stderr_console(),
                transient=True,
            )

    def __enter__(self):
        if self.progress:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.__exit__(*exc)

    def start(self, total: int) -> None:
        if self.progress:
            self.task = self.progress.add_task("score", total=total)

    def update(self, done: int) -> None:
        if self.progress and self.task is not None:
            self.progress.update(self.task, completed=done)
