"""The terminal side of `charchat train`: paths, a rich progress bar on stderr, samples."""

from __future__ import annotations

import math
import os
import shlex
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from charchat.errors import CharchatError
from charchat.modelfile import SUFFIX, ModelConfig, user_models_dir
from charchat.terminal.render import safe_text, stderr_console
from charchat.train.checkpoint import OutputLock


def output_path(corpus: Path, name: str | None, out: Path | None) -> Path:
    if name and out:
        raise CharchatError("give --name or --out, not both")
    if out is not None:
        path = Path(out)
        return path if path.name.endswith(SUFFIX) else path.with_name(path.name + SUFFIX)
    stem = name or Path(corpus).stem
    if not stem or "/" in stem or os.sep in stem:
        raise CharchatError("--name must be a plain name (use --out for a path)")
    return user_models_dir() / f"{stem}{SUFFIX}"


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass  # proves we can create the temp file every atomic save starts with
    except OSError as e:
        raise CharchatError(f"cannot write to {folder}: {e.strerror}") from None


def choose_recipe(
    text, preset, arch_overrides, given, explicit_arch, preset_given, resume, launched
):
    """(model config or None, TrainConfig, plan card or None) for this run.

    With --minutes and no size flags, the planner chooses the model and recipe from the
    budget, the text's size and a throughput probe; every flag given overrides the plan.
    Otherwise the preset and TrainConfig's defaults apply. Either way, precision and threads
    left to chance are measured.
    """
    from charchat.train.plan import plan_for
    from charchat.train.probe import PROBE_MOST_SECONDS, PROBE_SHARE, probe
    from charchat.train.recipe import PRESETS, TrainConfig, check_precision, pick_device

    TrainConfig(**{**given, "precision": "fp32"}).check()  # bad numbers fail before probing
    precision = given.pop("precision", "auto")
    planning = "minutes" in given and not resume
    if "val_fraction" in given:
        given.setdefault("val_pieces", 1)  # a share given by hand is held out from the end
    if precision != "auto" and given.get("threads") and not planning:
        given["precision"] = precision  # nothing left to measure
        config = model_config_for(preset, arch_overrides) if explicit_arch or not resume else None
        return config, TrainConfig(**given), None
    device = pick_device(given.get("device", "auto"))
    check_precision(precision, device)
    vocab_size = len(text.vocab)
    allowance = PROBE_MOST_SECONDS
    if "minutes" in given:
        allowance = min(allowance, PROBE_SHARE * given["minutes"] * 60)
    deadline = time.monotonic() + allowance
    measured = probe(vocab_size, device, precision, given.get("threads"), deadline=deadline)
    given |= {"precision": measured.precision, "threads": measured.threads}
    if not planning:
        config = model_config_for(preset, arch_overrides) if explicit_arch or not resume else None
        return config, TrainConfig(**given), None
    speeds = measured.speeds(vocab_size, device, deadline=deadline)
    left = given["minutes"] * 60 - (time.monotonic() - launched)
    if left < 1:
        raise CharchatError(
            f"--minutes {given['minutes']:g} is spent before training could start "
            f"(reading the text and measuring this machine took {time.monotonic() - launched:.0f} s)"
        )
    plan = plan_for(left, len(text.ids), speeds, measured.precision, measured.threads)
    sized = {k: v for k, v in arch_overrides.items() if v is not None}
    base = PRESETS[preset] if preset_given else plan.model  # flags override the plan
    config = replace(base, **sized)
    config.check()
    cfg = TrainConfig(**{**plan.train, **given, "minutes": left / 60})
    line = plan.line(config, {k: v for k, v in given.items() if k in plan.train})
    stderr_console().print(line, markup=False, highlight=False)
    card = plan.card() | {"line": line, "budget_minutes": given["minutes"], "probe": measured.table}
    return config, cfg, card


def model_config_for(preset: str, overrides: dict) -> ModelConfig:
    from charchat.train.recipe import PRESETS

    config = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    config.check()
    return config


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

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            self.console.print(
                f"model: {event['params'] / 1e6:.2f}M parameters, vocabulary {event['vocab']}, "
                f"device {event['device']}",
                markup=False,
            )
            self.task = self.progress.add_task(
                "train", total=event["total_steps"], speed="-", loss="-", val="-"
            )
        elif kind == "schedule":
            self.progress.update(self.task, total=event["steps"])
            self.console.print(
                f"time budget: schedule fitted to {event['steps']} steps", markup=False
            )
        elif kind == "step":
            p = event["progress"]
            now = time.perf_counter()
            if self.last_time is None or now - self.last_time > 2:
                if self.last_time is not None:
                    self.speed = (
                        f"{(p.chars_seen - self.last_chars) / (now - self.last_time):,.0f} chars/s"
                    )
                self.last_time, self.last_chars = now, p.chars_seen
            self.progress.update(
                self.task, completed=event["step"], speed=self.speed, loss=f"{event['loss']:.3f}"
            )
        elif kind == "val":
            shown = bits(event["val_nats"])
            average = event.get("average_nats", math.nan)
            if math.isfinite(average):
                shown += f" (averaged {bits(average)})"
            self.progress.update(self.task, val=shown)
            if not self.console.is_terminal:  # a log file gets one plain line per validation
                task = self.progress.tasks[0]
                self.console.print(
                    f"step {event['step']}/{task.total}  val {shown} bits/char  {self.speed}",
                    markup=False,
                )
        elif kind == "samples":
            lines = [
                f"samples after step {self.progress.tasks[0].completed}, prompt {event['prompt']!r}:"
            ]
            for temperature, text in event["samples"].items():
                lines.append(f"  T={temperature:<4} {safe_text(text, keep_newlines=False)}")
            self.console.print("\n".join(lines), markup=False, highlight=False)
        elif kind == "nonfinite":
            self.console.print(
                f"warning: non-finite loss or gradient at step {event['step']}; step skipped "
                f"({event['skipped']} so far)",
                markup=False,
            )
        elif kind == "rollback":
            self.console.print(
                "warning: repeated non-finite steps; rolled back to the last good state and "
                f"halved the learning rate (now x{event['lr_scale']:g})",
                markup=False,
            )
        elif kind == "resumed":
            self.console.print(f"resumed at step {event['step']}", markup=False)
        elif kind == "starting_state" and event["steps"]:
            self.console.print(
                f"starting state fitted to where texts start ({event['steps']} steps)",
                markup=False,
            )


@contextmanager
def stop_on_signals(request_stop):
    """Ctrl+C and SIGTERM ask the training loop to stop (it checkpoints first)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: request_stop()) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_training(
    corpus: Path | list[Path],
    name: str | None,
    out: Path | None,
    preset: str,
    arch_overrides: dict,
    train_options: dict,
    resume: bool,
    force: bool,
    argv: list[str],
) -> int:
    """Train; under torchrun, as one of several processes of which the first prints and writes."""
    from charchat.train.distributed import leave, world_from_environment

    launched = time.monotonic()
    corpus = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    path = output_path(Path(corpus[0]).resolve(), name, out)
    world = world_from_environment(train_options.get("device") or "auto")
    try:
        if not world.main:
            return _run_locked(
                corpus, path, preset, arch_overrides, train_options, resume, argv, launched, world
            )
        if path.is_dir():
            raise CharchatError(f"{path} is a directory; give a file path with --out")
        check_writable(path.parent)
        with OutputLock(path):
            if path.exists() and not (force or resume):
                raise CharchatError(f"{path} already holds a model; use --force to overwrite it")
            return _run_locked(
                corpus, path, preset, arch_overrides, train_options, resume, argv, launched, world
            )
    finally:
        leave(world)


def _run_locked(corpus, path, preset, arch_overrides, train_options, resume, argv, launched, world):
    from charchat.train.loop import make_trainer
    from charchat.train.recipe import TrainingInterrupted
    from charchat.train.textfiles import read_corpus

    text = read_corpus(corpus) if world.main else None
    world.from_main(None)  # the others read after the main, from the ids it cached
    text = text or read_corpus(corpus)
    given = {k: v for k, v in train_options.items() if v is not None}
    if world.size > 1 and "threads" not in given:
        given["threads"] = max(1, (os.cpu_count() or 1) // world.local_size)
    explicit_arch = any(v is not None for v in arch_overrides.values()) or "--preset" in argv
    recipe = None
    if world.main:
        recipe = choose_recipe(
            text, preset, arch_overrides, given, explicit_arch, "--preset" in argv, resume, launched
        )
    config, cfg, plan = world.from_main(recipe)
    with TrainingView(quiet=not world.main) as view:
        trainer = make_trainer(
            corpus, path, config, cfg, resume, on_event=view, text=text, world=world
        )
        trainer.plan = plan
        try:
            with stop_on_signals(trainer.request_stop):
                model = trainer.run(resume=resume)
        except TrainingInterrupted as e:
            view.progress.stop()
            if world.main:
                again = " ".join(shlex.quote(a) for a in ["charchat", *argv] if a != "--resume")
                sys.stderr.write(f"charchat: {e}; resume with: {again} --resume\n")
            return 130
    if not world.main:
        return 0
    card = model.card
    bpc = card.get("best_val_bits_per_char")
    sys.stderr.write(
        f"saved {path} ({card['steps']} steps, {card['chars_trained_on']:,} characters, "
        f"{card['train_seconds']:.0f} s"
        + (f", {world.size} processes" if world.size > 1 else "")
        + (f", best validation {bpc:.4f} bits/char" if bpc is not None else "")
        + ")\n"
    )
    return 0


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
