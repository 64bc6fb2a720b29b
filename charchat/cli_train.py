"""`charchat train`: its options, handed to train/run.py (torch is imported only when it runs)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from charchat.errors import CharchatError
from charchat.style import error_line


class Preset(str, Enum):
    small = "small"
    medium = "medium"
    large = "large"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


def train(
    corpus: list[Path] = typer.Argument(
        ..., help="UTF-8 text files to learn from; a folder stands for the files in it."
    ),
    name: str | None = typer.Option(None, "--name", help="Save as NAME in the user models dir."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Save to this path."),
    preset: Preset = typer.Option(
        Preset.medium, "--preset", help="Model size (with --minutes alone: planned)."
    ),
    layers: int | None = typer.Option(None, "--layers", help="LSTM layers (overrides preset)."),
    hidden: int | None = typer.Option(None, "--hidden", help="Units per layer."),
    embedding: int | None = typer.Option(None, "--embedding", help="Embedding size."),
    dropout: float | None = typer.Option(None, "--dropout", help="Dropout probability."),
    weight_drop: float | None = typer.Option(
        None, "--weight-drop", help="DropConnect probability on the recurrent weights."
    ),
    input_dropout: float | None = typer.Option(
        None, "--input-dropout", help="Dropout probability on the embedded characters."
    ),
    locked_dropout: bool | None = typer.Option(
        None,
        "--locked-dropout/--step-dropout",
        help="One dropout mask per window for all its steps (variational), or a fresh one "
        "at every step [default: step].",
    ),
    seq_len: int | None = typer.Option(
        None, "--seq-len", help="Characters per BPTT window [default: planned, or 128]."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Parallel streams per batch [default: planned, or 64]."
    ),
    lr: float | None = typer.Option(
        None, "--lr", help="Peak learning rate [default: planned, or 0.002]."
    ),
    weight_decay: float | None = typer.Option(
        None, "--weight-decay", help="AdamW weight decay [default: planned, or 0.05]."
    ),
    epochs: float | None = typer.Option(
        None,
        "--epochs",
        help="Passes over the training text [default: 20, or what fits --minutes].",
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Optimizer steps in the schedule, instead of --epochs."
    ),
    warmup_steps: int | None = typer.Option(
        None, "--warmup-steps", help="Steps of linear warm-up [default: planned, or 100]."
    ),
    min_lr_ratio: float | None = typer.Option(
        None,
        "--min-lr-ratio",
        help="The cosine ends at this fraction of --lr [default: planned, or 0.05].",
    ),
    minutes: float | None = typer.Option(
        None,
        "--minutes",
        help="Wall-clock budget, from launch to saved model. Without size flags, the model "
        "and recipe are planned for it.",
    ),
    average_from: float | None = typer.Option(
        None,
        "--average-from",
        help="From this fraction of the schedule on, also score the running mean of the weights.",
    ),
    restart_share: float | None = typer.Option(
        None,
        "--restart-share",
        help="Share of streams restarted from the learned starting state at each window "
        "[default: 1/32].",
    ),
    threads: int | None = typer.Option(None, "--threads", help="CPU threads for torch."),
    val_fraction: float | None = typer.Option(
        None, "--val-fraction", help="Held out from the end [default: planned, or 0.1]."
    ),
    precision: Precision = typer.Option(
        Precision.auto,
        "--precision",
        help="Forward pass in fp32, bf16 or fp16 (fp16 with loss scaling; fp32 weights either way); "
        "auto: what measures faster here.",
    ),
    seed: int = typer.Option(1234, "--seed", help="Random seed."),
    device: Device = typer.Option(Device.auto, "--device", help="Where to train."),
    start_from: str | None = typer.Option(
        None,
        "--from",
        help="Fine-tune: start from this model (a bundled name or a model file) instead of "
        "random weights; it keeps its architecture and gains the text's new characters.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the run checkpointed for OUT."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing model file."),
) -> None:
    """Train a model on text files."""
    from charchat.terminal.trainview import TrainingView
    from charchat.train.run import run_training

    code = 1
    try:
        code = run_training(
            corpus=corpus,
            name=name,
            out=out,
            preset=preset.value,
            arch_overrides={
                "layers": layers,
                "hidden": hidden,
                "embedding": embedding,
                "dropout": dropout,
                "weight_drop": weight_drop,
                "input_dropout": input_dropout,
                "locked_dropout": locked_dropout,
            },
            train_options={
                "seq_len": seq_len,
                "batch_size": batch_size,
                "lr": lr,
                "weight_decay": weight_decay,
                "epochs": epochs,
                "steps": steps,
                "warmup_steps": warmup_steps,
                "min_lr_ratio": min_lr_ratio,
                "minutes": minutes,
                "average_from": average_from,
                "restart_share": restart_share,
                "threads": threads,
                "val_fraction": val_fraction,
                "seed": seed,
                "device": device.value,
                "precision": precision.value,
            },
            start_from=start_from,
            resume=resume,
            force=force,
            argv=sys.argv[1:],
            view_for=TrainingView,
        )
    except CharchatError as e:
        sys.stderr.write(error_line(str(e)))
    finally:
        from charchat.train.distributed import part_now

        part_now(code)  # one of several torchrun processes: ends here
    raise typer.Exit(code)
