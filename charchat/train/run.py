"""`charchat train` from start to end: the output path and its lock, the recipe, the run,
Ctrl+C. What it says goes to `view_for(quiet)`, a context manager that takes events."""

from __future__ import annotations

import os
import shlex
import signal
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

from charchat.errors import CharchatError
from charchat.events import PlanChosen, TrainingFinished, TrainingStopped
from charchat.modelfile import SUFFIX, ModelConfig
from charchat.paths import user_models_dir
from charchat.train.checkpoint import OutputLock, checkpoint_path, read_checkpoint_meta
from charchat.train.distributed import ALONE, World
from charchat.train.loop import Trainer
from charchat.train.recipe import PRESETS, TrainConfig
from charchat.train.textfiles import EncodedText, read_corpus


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
    view_for,
    start_from: str | None = None,
) -> int:
    """Train; under torchrun, as one of several processes of which the first prints and writes.
    start_from: a model to fine-tune (finetune.py) instead of starting from random weights."""
    from charchat.train.distributed import leave, world_from_environment
    from charchat.train.finetune import load_parent

    launched = time.monotonic()
    parent = load_parent(start_from) if start_from else None
    corpus = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    path = output_path(Path(corpus[0]).resolve(), name, out)
    world = world_from_environment(train_options.get("device") or "auto")
    run = partial(
        _run_locked,
        corpus,
        path,
        preset,
        arch_overrides,
        train_options,
        resume,
        argv,
        launched,
        world,
        view_for,
        parent,
    )
    try:
        if not world.main:
            return run()
        if path.is_dir():
            raise CharchatError(f"{path} is a directory; give a file path with --out")
        check_writable(path.parent)
        with OutputLock(path):
            if path.exists() and not (force or resume):
                raise CharchatError(f"{path} already holds a model; use --force to overwrite it")
            return run()
    finally:
        leave(world)


def _run_locked(
    corpus,
    path,
    preset,
    arch_overrides,
    train_options,
    resume,
    argv,
    launched,
    world,
    view_for,
    parent,
):
    from charchat.train.choosing import choose_recipe
    from charchat.train.finetune import merged_vocab, read_with
    from charchat.train.recipe import TrainingInterrupted

    text = read_corpus(corpus) if world.main else None
    world.from_main(None)  # the others read after the main, from the ids it cached
    text = text or read_corpus(corpus)
    if parent is not None:
        text = read_with(text, merged_vocab(parent.model.vocab, text.vocab))
    given = {k: v for k, v in train_options.items() if v is not None}
    if world.size > 1 and "threads" not in given:
        given["threads"] = max(1, (os.cpu_count() or 1) // world.local_size)
    explicit_arch = any(v is not None for v in arch_overrides.values()) or "--preset" in argv
    recipe = None
    if world.main:
        recipe = choose_recipe(
            text,
            preset,
            arch_overrides,
            given,
            explicit_arch,
            "--preset" in argv,
            resume,
            launched,
            parent.model.config if parent else None,
        )
    config, cfg, plan = world.from_main(recipe)
    with view_for(quiet=not world.main) as view:
        if plan and world.main:
            view(PlanChosen(plan["line"]))
        trainer = make_trainer(
            corpus, path, config, cfg, resume, on_event=view, text=text, world=world
        )
        if parent is not None:
            trainer.start_from(*parent.start_for(trainer.corpus.vocab, cfg.seed))
        trainer.plan = plan
        try:
            with stop_on_signals(trainer.request_stop):
                model = trainer.run(resume=resume)
        except TrainingInterrupted as e:
            if world.main:
                again = " ".join(shlex.quote(a) for a in ["charchat", *argv] if a != "--resume")
                view(TrainingStopped(str(e), f"{again} --resume"))
            return 130
    if not world.main:
        return 0
    card = model.card
    view(
        TrainingFinished(
            str(path),
            card["steps"],
            card["chars_trained_on"],
            card["train_seconds"],
            world.size,
            card.get("best_val_bits_per_char"),
        )
    )
    return 0


def make_trainer(
    corpus_paths: Path | list[Path],
    out: Path,
    model_config: ModelConfig | None,
    cfg: TrainConfig,
    resume: bool = False,
    on_event=lambda event: None,
    text: EncodedText | None = None,
    world: World = ALONE,
) -> Trainer:
    """A trainer for a text file; with resume, set up to continue the run checkpointed for out.

    On resume the run's own settings come from the checkpoint (only the time budget, device
    and threads may change); a different architecture or corpus is refused.
    """
    paths = [corpus_paths] if isinstance(corpus_paths, (str, Path)) else corpus_paths
    text = read_corpus(paths) if text is None else text
    if resume:
        meta = read_checkpoint_meta(checkpoint_path(Path(out)))
        saved_arch = ModelConfig(**meta["identity"]["model_config"])
        if model_config is not None and model_config != saved_arch:
            raise CharchatError(
                "cannot resume: the checkpoint was made with a different architecture "
                f"({saved_arch.layers}x{saved_arch.hidden}, embedding {saved_arch.embedding})"
            )
        model_config = saved_arch
        cfg = replace(
            TrainConfig(**meta["train_config"]),
            minutes=cfg.minutes,
            device=cfg.device,
            threads=cfg.threads,
            precision=cfg.precision,
        )
    config = model_config or PRESETS["medium"]
    return Trainer(text, text.name, out, config, cfg, on_event, world)
