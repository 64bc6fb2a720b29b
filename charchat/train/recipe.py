"""What a training run is told: the model presets and the run's settings, with their checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

from charchat.errors import CharchatError
from charchat.modelfile import ModelConfig

PRESETS = {
    "small": ModelConfig(layers=2, hidden=256, embedding=32, dropout=0.2),
    "medium": ModelConfig(layers=2, hidden=512, embedding=64, dropout=0.3),
    "large": ModelConfig(layers=3, hidden=640, embedding=64, dropout=0.35),
}
DEFAULT_EPOCHS = 20.0
MIN_BUDGET_SECONDS = 2.0  # below this, reading the text and one step may not fit
UNBOUNDED_EPOCHS = 1e6  # with only --minutes, the time budget alone ends the run


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = 128  # characters per truncated-BPTT window
    batch_size: int = 64  # parallel streams through the corpus
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 0.05  # AdamW decay on weight matrices
    epochs: float | None = None  # the schedule's length in passes; default: 20, or the budget's
    steps: int | None = None  # ...or in optimizer steps (a recipe replayed on other text)
    minutes: float | None = None  # wall-clock budget; the schedule is fitted to it
    threads: int | None = None  # torch CPU threads; default: torch's own choice
    val_fraction: float = 0.1  # held out for validation...
    val_pieces: int = 1  # ...from the end (1), or in this many stretches spread over the text
    seed: int = 1234
    device: str = "auto"
    precision: str = "fp32"  # of the forward pass: fp32, or bf16/fp16 autocast (fp32 weights)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # the cosine decays to this fraction of lr
    clip: float = 1.0  # gradient norm clipping
    restart_share: float = 1 / 32  # streams restarted from the learned initial state per window
    average_from: float | None = None  # from this fraction of the schedule, average the weights
    eval_every: int = 200  # steps between validations (and checkpoints)
    patience: int | None = None  # stop after this many validation rounds without a better one
    sample_every: int = 5  # validations between temperature samples
    sample_length: int = 160

    def check(self) -> None:
        """Every number finite and in range, before anything runs."""
        whole = {"seq_len": self.seq_len, "batch_size": self.batch_size}
        whole |= {"eval_every": self.eval_every, "threads": self.threads, "steps": self.steps}
        whole |= {"patience": self.patience}
        for name, value in whole.items():
            if value is not None and not (isinstance(value, int) and 0 < value <= 1_000_000):
                raise CharchatError(f"--{name.replace('_', '-')} must be a whole number above 0")
        above_zero = {"lr": self.lr, "epochs": self.epochs, "minutes": self.minutes}
        for name, value in above_zero.items():
            if value is not None and not (math.isfinite(value) and value > 0):
                raise CharchatError(f"--{name} must be a finite number above 0, not {value}")
        if self.steps is not None and self.epochs is not None:
            raise CharchatError("give --steps or --epochs, not both")
        if not (isinstance(self.warmup_steps, int) and 0 <= self.warmup_steps <= 1_000_000):
            raise CharchatError("--warmup-steps must be a whole number, 0 or more")
        if not (math.isfinite(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1):
            raise CharchatError("--min-lr-ratio must be between 0 and 1")
        if self.minutes is not None and self.minutes * 60 < MIN_BUDGET_SECONDS:
            raise CharchatError(
                f"--minutes {self.minutes:g} is too short to take a step; give at least "
                f"{MIN_BUDGET_SECONDS / 60:.2f} ({MIN_BUDGET_SECONDS:g} seconds)"
            )
        if not (math.isfinite(self.weight_decay) and 0 <= self.weight_decay < 10):
            raise CharchatError(
                f"--weight-decay must be from 0 to below 10, not {self.weight_decay}"
            )
        if self.average_from is not None and not 0 <= self.average_from < 1:
            raise CharchatError("--average-from must be at least 0 and below 1")
        if not 0 <= self.val_fraction < 0.5:
            raise CharchatError("--val-fraction must be from 0 to below 0.5")
        if not 0 <= self.restart_share <= 1:
            raise CharchatError("--restart-share must be from 0 to 1")
        if not (math.isfinite(self.clip) and self.clip > 0):
            raise CharchatError("the gradient clip must be a finite number above 0")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise CharchatError("--precision must be auto, fp32, bf16 or fp16")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise CharchatError("--device must be auto, cpu, cuda or mps")

    def lr_at(self, step: int, schedule_steps: int) -> float:
        """Linear warm-up, then a cosine down to min_lr_ratio of lr at schedule_steps."""
        warmup = max(1, min(self.warmup_steps, schedule_steps // 10))
        if step < warmup:
            return self.lr * (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, schedule_steps - warmup))
        cosine = 0.5 * (1 + math.cos(math.pi * done))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)

    @property
    def schedule_epochs(self) -> float:
        if self.epochs is not None:
            return self.epochs
        return UNBOUNDED_EPOCHS if self.minutes is not None else DEFAULT_EPOCHS


class TrainingInterrupted(CharchatError):
    """Stopped on request (Ctrl+C, SIGTERM) after writing a checkpoint."""


def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CharchatError("--device cuda asked for, but torch sees no CUDA GPU")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise CharchatError("--device mps asked for, but it is not available")
    return torch.device(name)


def check_precision(precision: str, device) -> None:
    if precision == "fp16" and device.type != "cuda":
        raise CharchatError(
            f"--precision fp16 needs a CUDA GPU (torch's {device.type} LSTM has no fp16); "
            "use bf16 or fp32"
        )


def training_card(cfg, corpus, progress: dict, device: str, averaged_steps: int, plan) -> dict:
    """Where a model's weights came from: corpus, recipe, progress, validation curve."""
    import platform
    from dataclasses import asdict
    from datetime import datetime, timezone

    import torch

    from charchat import __version__

    best = None if math.isinf(progress["best_val"]) else progress["best_val"]
    card = {
        "corpus": corpus.name,
        "corpus_sha256": corpus.sha256,
        "corpus_chars": int(corpus.chars),
        "corpus_files": corpus.documents,
        "val_fraction": cfg.val_fraction,
        "chars_trained_on": progress["chars_seen"],
        "steps": progress["step"],
        "best_val_nats_per_char": None if best is None else round(best, 5),
        "best_val_bits_per_char": None if best is None else round(best / math.log(2), 5),
        "train_seconds": round(progress["elapsed"], 1),
        "device": device,
        "torch_version": torch.__version__,
        "charchat_version": __version__,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "train_config": asdict(cfg),
        "val_curve": [list(row) for row in progress["history"]],  # step, s, bits, averaged bits
        "train_curve": [list(row) for row in progress.get("train_curve", [])],  # step, s, bits
        "averaged_over_steps": averaged_steps,
    }
    if plan:
        card["plan"] = plan
    return card
