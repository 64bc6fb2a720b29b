"""Training: stateful truncated BPTT, AdamW with warm-up and cosine decay, exact resume.

The loop reports through a callback (events are plain dicts) and never prints. A checkpoint
is a safetensors file too: model, optimizer moments, RNG states, data position, schedule.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charchat import __version__
from charchat.engine import Engine
from charchat.errors import CharchatError
from charchat.model import CharLSTM
from charchat.modelfile import (
    SUFFIX,
    ModelConfig,
    ModelFile,
    atomic_write,
    read_safetensors_header,
    save_model,
    to_safetensors_bytes,
)
from charchat.sampling import Settings, sample
from charchat.vocab import Vocab

PRESETS = {
    "small": ModelConfig(layers=2, hidden=256, embedding=32, dropout=0.2),
    "medium": ModelConfig(layers=2, hidden=512, embedding=64, dropout=0.3),
    "large": ModelConfig(layers=3, hidden=640, embedding=64, dropout=0.35),
}
SAMPLE_TEMPERATURES = (0.2, 0.5, 1.0, 1.2)
VAL_STREAMS = 32  # validation runs in this many parallel stretches of the held-out text...
VAL_BURN_IN = 256  # ...each warmed up on the text before it, so the figure matches `eval`
NONFINITE_ROLLBACK_AFTER = 3
DEFAULT_EPOCHS = 20.0
UNBOUNDED_EPOCHS = 1e6  # with only --minutes, the time budget alone ends the run


@dataclass(frozen=True)
class TrainConfig:
    seq_len: int = 128  # characters per truncated-BPTT window
    batch_size: int = 64  # parallel streams through the corpus
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 0.05  # AdamW decay on weight matrices
    epochs: float | None = None  # the schedule's length in passes; default: 20, or the budget's
    minutes: float | None = None  # wall-clock budget; the schedule is fitted to it
    threads: int | None = None  # torch CPU threads; default: torch's own choice
    val_fraction: float = 0.1  # held out from the end of the corpus
    seed: int = 1234
    device: str = "auto"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # the cosine decays to this fraction of lr
    clip: float = 1.0  # gradient norm clipping
    average_from: float | None = None  # from this fraction of the schedule, average the weights
    eval_every: int = 200  # steps between validations (and checkpoints)
    sample_every: int = 5  # validations between temperature samples
    sample_length: int = 160

    def check(self) -> None:
        positive = {
            "seq_len": self.seq_len,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "epochs": 1 if self.epochs is None else self.epochs,
            "eval_every": self.eval_every,
            "threads": 1 if self.threads is None else self.threads,
        }
        for name, value in positive.items():
            if not value > 0:
                raise CharchatError(f"--{name.replace('_', '-')} must be above 0")
        if self.average_from is not None and not 0 <= self.average_from < 1:
            raise CharchatError("--average-from must be at least 0 and below 1")
        if self.minutes is not None and not self.minutes > 0:
            raise CharchatError("--minutes must be above 0")
        if not 0 <= self.val_fraction < 0.5:
            raise CharchatError("--val-fraction must be from 0 to below 0.5")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise CharchatError("--device must be auto, cpu, cuda or mps")


class TrainingInterrupted(CharchatError):
    """Stopped by Ctrl+C or SIGTERM after writing a checkpoint."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise CharchatError("--device cuda asked for, but torch sees no CUDA GPU")
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise CharchatError("--device mps asked for, but it is not available")
    return torch.device(name)


def checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name.removesuffix(SUFFIX) + ".ckpt" + SUFFIX)


# ---------------------------------------------------------------- data


@dataclass
class Corpus:
    vocab: Vocab
    train: np.ndarray  # int64 ids
    val: np.ndarray
    name: str
    sha256: str


def prepare_corpus(text: str, name: str, val_fraction: float, cfg: TrainConfig) -> Corpus:
    vocab = Vocab.from_text(text)
    ids = np.array(vocab.encode_known(text), dtype=np.int64)
    n_val = int(len(ids) * val_fraction)
    if val_fraction > 0 and n_val < 2:
        raise CharchatError("the corpus is too short to hold out a validation part")
    train = ids[: len(ids) - n_val]
    needed = cfg.batch_size * (cfg.seq_len + 1) + cfg.seq_len
    if len(train) < needed:
        raise CharchatError(
            f"the corpus is too short: its training part has {len(train)} characters, and "
            f"--batch-size {cfg.batch_size} with --seq-len {cfg.seq_len} needs at least {needed}"
        )
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Corpus(vocab, train, ids[len(ids) - n_val :], name, sha)


def batches_per_epoch(corpus: Corpus, cfg: TrainConfig) -> int:
    return (len(corpus.train) - cfg.seq_len - 1) // cfg.batch_size // cfg.seq_len


def epoch_streams(corpus: Corpus, cfg: TrainConfig, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (batch, length): contiguous streams from an offset fixed per epoch."""
    offset = int(np.random.default_rng([cfg.seed, epoch]).integers(0, cfg.seq_len))
    length = batches_per_epoch(corpus, cfg) * cfg.seq_len
    span = corpus.train[offset : offset + cfg.batch_size * length + 1]
    x = span[:-1].reshape(cfg.batch_size, length)
    y = span[1:].reshape(cfg.batch_size, length)
    return x, y


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def sequential_nats(module: CharLSTM, ids: np.ndarray, device, chunk: int = 4096) -> float:
    """Total nats of predicting ids[1:] from what precedes, in order, state carried."""
    module.eval()
    total, state = 0.0, None
    ids_t = torch.as_tensor(ids, dtype=torch.long, device=device)
    for start in range(0, len(ids) - 1, chunk):
        x = ids_t[start : start + chunk][None]
        y = ids_t[start + 1 : start + chunk + 1][None]
        x = x[:, : y.shape[1]]
        logits, state = module(x, state)
        total += F.cross_entropy(logits[0], y[0], reduction="sum").item()
    return total


@torch.no_grad()
def validation_nats_per_char(module: CharLSTM, ids: np.ndarray, device) -> float:
    """Mean nats/char over ids[1:], as `charchat eval` computes it, but in parallel stretches.

    Stretch k > 0 starts from the state of having read the VAL_BURN_IN characters before it,
    so the result matches the fully sequential figure to about three decimals.
    """
    n = len(ids)
    k = min(VAL_STREAMS, max(1, (n - 1) // (4 * VAL_BURN_IN)))
    if k == 1:
        return sequential_nats(module, ids, device) / (n - 1)
    module.eval()
    length = (n - 1) // k
    t = torch.as_tensor(ids, dtype=torch.long, device=device)
    starts = [1 + i * length for i in range(k)]  # first predicted position of each stretch
    burn = torch.stack([t[s - 1 - VAL_BURN_IN : s - 1] for s in starts[1:]])
    _, (h, c) = module(burn)
    zero = torch.zeros_like(h[:, :1])
    state = (torch.cat([zero, h], dim=1), torch.cat([zero, c], dim=1))
    x = torch.stack([t[s - 1 : s - 1 + length] for s in starts])
    y = torch.stack([t[s : s + length] for s in starts])
    total = 0.0
    for a in range(0, length, 2048):
        logits, state = module(x[:, a : a + 2048], state)
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y[:, a : a + 2048].reshape(-1), reduction="sum"
        ).item()
    tail_start = starts[-1] + length
    if tail_start < n:  # the few characters left over continue the last stretch
        last = (state[0][:, -1:].contiguous(), state[1][:, -1:].contiguous())
        logits, _ = module(t[tail_start - 1 : n - 1][None], last)
        total += F.cross_entropy(logits[0], t[tail_start:n], reduction="sum").item()
    return total / (n - 1)


# ---------------------------------------------------------------- samples


def temperature_samples(
    model: ModelFile, seed_text: str, length: int, rng_seed: int
) -> dict[float, str]:
    """A continuation of seed_text at each temperature, each from the identical state."""
    engine = Engine(model)
    engine.feed_many(model.vocab.encode(seed_text).ids)
    start = engine.snapshot()
    out = {}
    for temperature in SAMPLE_TEMPERATURES:
        engine.restore(start)
        rng = np.random.default_rng(rng_seed)
        settings = Settings(temperature=temperature, mode="sample")
        chars = []
        for _ in range(length):
            i = sample(engine.logits(), settings, rng)
            chars.append(model.vocab.chars[i])
            engine.feed(i)
        out[temperature] = "".join(chars)
    return out


def sample_seed(text: str) -> str:
    """A natural seed for the progress samples: the start of the corpus's first real line."""
    for line in text.splitlines():
        words = line.strip().split()
        if len(words) >= 3:
            return " ".join(words[:3]) + " "
    return text[:20]


# ---------------------------------------------------------------- the trainer


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch: int = 0  # next batch within the epoch
    schedule_steps: int = 0  # the cosine's length; fixed early, then never changed
    best_val: float = math.inf  # nats/char
    elapsed: float = 0.0  # training seconds over all runs
    chars_seen: int = 0
    skipped_steps: int = 0
    lr_scale: float = 1.0  # halved on each roll-back after non-finite steps
    averaged_steps: int = 0  # how many steps' weights the running average holds
    # [step, elapsed s, val bits/char, val bits/char of the averaged weights or None]
    history: list = field(default_factory=list)


class Trainer:
    def __init__(
        self,
        text: str,
        corpus_name: str,
        out: Path,
        model_config: ModelConfig,
        cfg: TrainConfig,
        on_event=lambda event: None,
    ):
        cfg.check()
        model_config.check()
        self.cfg = cfg
        self.out = Path(out)
        self.ckpt = checkpoint_path(self.out)
        self.on_event = on_event
        self.seed_text = sample_seed(text)
        self.corpus = prepare_corpus(text, corpus_name, cfg.val_fraction, cfg)
        self.model_config = model_config
        self.device = pick_device(cfg.device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.module = CharLSTM(len(self.corpus.vocab), model_config).to(self.device)
        decay = [
            p for n, p in self.module.named_parameters() if p.dim() == 2 and "embedding" not in n
        ]
        rest = [
            p
            for n, p in self.module.named_parameters()
            if not (p.dim() == 2 and "embedding" not in n)
        ]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": rest, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
            betas=(0.9, 0.99),
        )
        self.progress = Progress()
        self.steps_per_epoch = batches_per_epoch(self.corpus, cfg)
        self.total_steps = max(1, int(self.schedule_epochs(cfg) * self.steps_per_epoch))
        self.progress.schedule_steps = self.total_steps
        self.hidden = None
        self.average: dict[str, torch.Tensor] | None = None  # running mean of the weights
        self._stop_signal: int | None = None
        self._last_good: dict | None = None

    # -------------------------------------------------------- schedule

    @staticmethod
    def schedule_epochs(cfg: TrainConfig) -> float:
        if cfg.epochs is not None:
            return cfg.epochs
        return UNBOUNDED_EPOCHS if cfg.minutes is not None else DEFAULT_EPOCHS

    def lr_at(self, step: int) -> float:
        cfg, p = self.cfg, self.progress
        warmup = max(1, min(cfg.warmup_steps, p.schedule_steps // 10))
        if step < warmup:
            factor = (step + 1) / warmup
        else:
            span = max(1, p.schedule_steps - warmup)
            done = min(1.0, (step - warmup) / span)
            factor = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (
                1 + math.cos(math.pi * done)
            )
        return cfg.lr * factor * p.lr_scale

    # -------------------------------------------------------- files

    def model_file(self, averaged_over_steps: int = 0) -> ModelFile:
        """The module's current weights as a model file; say if they are a running mean."""
        p = self.progress
        card = {
            "corpus": self.corpus.name,
            "corpus_sha256": self.corpus.sha256,
            "corpus_chars": int(len(self.corpus.train) + len(self.corpus.val)),
            "val_fraction": self.cfg.val_fraction,
            "chars_trained_on": p.chars_seen,
            "steps": p.step,
            "best_val_nats_per_char": None if math.isinf(p.best_val) else round(p.best_val, 5),
            "best_val_bits_per_char": None
            if math.isinf(p.best_val)
            else round(p.best_val / math.log(2), 5),
            "train_seconds": round(p.elapsed, 1),
            "device": str(self.device),
            "torch_version": torch.__version__,
            "charchat_version": __version__,
            "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "train_config": asdict(self.cfg),
            "val_curve": [list(row) for row in p.history],  # see Progress.history
            "averaged_over_steps": averaged_over_steps,
        }
        return ModelFile(self.corpus.vocab, self.model_config, self.module.numpy_tensors(), card)

    def identity(self) -> dict:
        return {
            "corpus_sha256": self.corpus.sha256,
            "model_config": asdict(self.model_config),
            "seq_len": self.cfg.seq_len,
            "batch_size": self.cfg.batch_size,
            "val_fraction": self.cfg.val_fraction,
            "seed": self.cfg.seed,
        }

    def save_checkpoint(self) -> None:
        tensors = {f"model.{k}": v for k, v in self.module.numpy_tensors().items()}
        opt = self.optimizer.state_dict()
        steps = {}
        for index, state in opt["state"].items():
            tensors[f"adam.{index}.exp_avg"] = state["exp_avg"].detach().cpu().numpy()
            tensors[f"adam.{index}.exp_avg_sq"] = state["exp_avg_sq"].detach().cpu().numpy()
            steps[str(index)] = float(state["step"])
        tensors["rng.torch"] = torch.get_rng_state().numpy()
        for name, value in (self.average or {}).items():
            tensors[f"average.{name}"] = value.detach().cpu().numpy()
        if self.hidden is not None:
            tensors["hidden.h"] = self.hidden[0].detach().cpu().numpy()
            tensors["hidden.c"] = self.hidden[1].detach().cpu().numpy()
        meta = {
            "identity": self.identity(),
            "train_config": asdict(self.cfg),
            "progress": asdict(self.progress),
            "adam_steps": steps,
        }
        atomic_write(
            self.ckpt, to_safetensors_bytes(tensors, {"charchat_checkpoint": json.dumps(meta)})
        )

    def load_checkpoint(self) -> None:
        if not self.ckpt.is_file():
            raise CharchatError(f"nothing to resume: no checkpoint at {self.ckpt}")
        meta = read_checkpoint_meta(self.ckpt)
        saved = meta["identity"]
        for key, value in self.identity().items():
            if saved.get(key) != value:
                what = "corpus" if key == "corpus_sha256" else key.replace("_", " ")
                raise CharchatError(
                    f"cannot resume: the checkpoint was made with a different {what} "
                    f"(start a new run, or use the original settings)"
                )
        from safetensors.numpy import load_file

        arrays = load_file(str(self.ckpt))
        self.module.load_state_dict(
            {k[6:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("model.")}
        )
        opt = self.optimizer.state_dict()
        for index in meta["adam_steps"]:
            opt["state"][int(index)] = {
                "step": torch.tensor(meta["adam_steps"][index]),
                "exp_avg": torch.from_numpy(arrays[f"adam.{index}.exp_avg"]).to(self.device),
                "exp_avg_sq": torch.from_numpy(arrays[f"adam.{index}.exp_avg_sq"]).to(self.device),
            }
        self.optimizer.load_state_dict(opt)
        torch.set_rng_state(torch.from_numpy(arrays["rng.torch"]))
        average = {k[8:]: v for k, v in arrays.items() if k.startswith("average.")}
        if average:
            self.average = {k: torch.from_numpy(v).to(self.device) for k, v in average.items()}
        if "hidden.h" in arrays:
            self.hidden = (
                torch.from_numpy(arrays["hidden.h"]).to(self.device),
                torch.from_numpy(arrays["hidden.c"]).to(self.device),
            )
        progress = meta["progress"]
        self.progress = Progress(**progress)
        self.on_event({"kind": "resumed", "step": self.progress.step})

    # -------------------------------------------------------- signals

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    # -------------------------------------------------------- loop

    def _remember_good(self) -> None:
        """Keep a copy of model and optimizer to roll back to after repeated non-finite steps."""
        opt = self.optimizer.state_dict()
        self._last_good = {
            "model": {k: v.clone() for k, v in self.module.state_dict().items()},
            "optimizer": {
                "state": {
                    i: {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                    for i, s in opt["state"].items()
                },
                "param_groups": opt["param_groups"],
            },
        }

    def _roll_back(self) -> None:
        if self._last_good is not None:
            self.module.load_state_dict(self._last_good["model"])
            self.optimizer.load_state_dict(self._last_good["optimizer"])
        self.progress.lr_scale /= 2
        self.hidden = None
        self.on_event({"kind": "rollback", "lr_scale": self.progress.lr_scale})

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> float | None:
        """One optimizer step; None when the loss or gradient was not finite (step skipped)."""
        self.module.train()
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.progress.step)
        logits, hidden = self.module(x, self.hidden)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.clip)
        if not (torch.isfinite(loss) and torch.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        self.hidden = (hidden[0].detach(), hidden[1].detach())
        return float(loss.item())

    def _fit_schedule_to_budget(self, seconds_per_step: float, remaining: float) -> None:
        """Fit the cosine to the time left; recorded in checkpoints, so resume stays exact."""
        affordable = int(0.95 * remaining / seconds_per_step) + self.progress.step
        self.progress.schedule_steps = max(
            self.progress.step + 1, min(self.total_steps, affordable)
        )
        self.on_event({"kind": "schedule", "steps": self.progress.schedule_steps})

    # -------------------------------------------------------- weight averaging

    def _update_average(self) -> None:
        """Fold this step's weights into the running mean, once the schedule is far enough."""
        p, start = self.progress, self.cfg.average_from
        if start is None or p.step < start * p.schedule_steps:
            return
        weights = self.module.state_dict()
        if self.average is None or p.averaged_steps == 0:
            self.average = {k: v.detach().clone() for k, v in weights.items()}
            p.averaged_steps = 1
            return
        p.averaged_steps += 1
        with torch.no_grad():
            for name, mean in self.average.items():
                mean += (weights[name] - mean) / p.averaged_steps

    def _with_average(self, action):
        """Run action with the running mean loaded in the module, then put the weights back."""
        current = {k: v.clone() for k, v in self.module.state_dict().items()}
        self.module.load_state_dict(self.average)
        try:
            return action()
        finally:
            self.module.load_state_dict(current)

    def _validation_nats(self) -> float:
        if len(self.corpus.val) < 2:
            return math.nan
        return validation_nats_per_char(self.module, self.corpus.val, self.device)

    def _keep_if_best(self, val: float, averaged_over_steps: int = 0) -> None:
        """Save the module's current weights as the model when val is the best so far."""
        p = self.progress
        improved = math.isfinite(val) and val < p.best_val
        if improved or (len(self.corpus.val) < 2 and p.step > 0):
            if improved:
                p.best_val = val
            save_model(self.model_file(averaged_over_steps), self.out)

    def validate(self) -> float:
        """Score the weights and, while averaging, the averaged weights; keep the better."""
        p = self.progress
        val = self._validation_nats()
        averaging = self.average is not None and p.averaged_steps > 0
        averaged = self._with_average(self._validation_nats) if averaging else math.nan
        p.history.append(
            [
                p.step,
                round(p.elapsed, 1),
                round(val / math.log(2), 5),
                round(averaged / math.log(2), 5) if math.isfinite(averaged) else None,
            ]
        )
        if averaged < val:  # False for NaN
            self._with_average(lambda: self._keep_if_best(averaged, p.averaged_steps))
        else:
            self._keep_if_best(val)
        self.on_event(
            {
                "kind": "val",
                "step": p.step,
                "val_nats": val,
                "average_nats": averaged,
                "best_nats": p.best_val,
            }
        )
        return val

    def run(self, resume: bool = False) -> ModelFile:
        p = self.progress
        if resume:
            self.load_checkpoint()
            p = self.progress
        if p.step >= p.schedule_steps:
            raise CharchatError("this run is already complete; nothing to resume")
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            return self._loop(resume)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _loop(self, resumed: bool) -> ModelFile:
        cfg = self.cfg
        p = self.progress
        budget = cfg.minutes * 60 if cfg.minutes else None
        started = time.perf_counter()
        run_start_elapsed = p.elapsed
        calibrate_at = p.step + 20 if budget else None
        first_step = p.step
        x_np, y_np = epoch_streams(self.corpus, cfg, p.epoch)
        consecutive_bad = 0
        self._remember_good()
        self.on_event(
            {
                "kind": "start",
                "total_steps": p.schedule_steps,
                "params": sum(t.numel() for t in self.module.parameters()),
                "vocab": len(self.corpus.vocab),
                "device": str(self.device),
            }
        )
        calibration_clock = None
        round_clock = (time.perf_counter(), p.step)
        while p.step < p.schedule_steps:
            if self._stop_signal is not None:
                self.save_checkpoint()
                raise TrainingInterrupted(f"interrupted at step {p.step}; checkpoint saved")
            if budget is not None and time.perf_counter() - started >= budget:
                break
            if p.batch >= self.steps_per_epoch:
                p.epoch, p.batch = p.epoch + 1, 0
                self.hidden = None
                x_np, y_np = epoch_streams(self.corpus, cfg, p.epoch)
            a = p.batch * cfg.seq_len
            x = torch.from_numpy(x_np[:, a : a + cfg.seq_len]).to(self.device)
            y = torch.from_numpy(y_np[:, a : a + cfg.seq_len]).to(self.device)
            if calibrate_at is not None and p.step == first_step + 2:
                calibration_clock = (time.perf_counter(), p.step)
            loss = self._train_step(x, y)
            p.elapsed = run_start_elapsed + time.perf_counter() - started
            if loss is None:
                p.skipped_steps += 1
                consecutive_bad += 1
                self.on_event({"kind": "nonfinite", "step": p.step, "skipped": p.skipped_steps})
                if consecutive_bad >= NONFINITE_ROLLBACK_AFTER:
                    self._roll_back()
                    consecutive_bad = 0
                p.batch += 1
                continue
            consecutive_bad = 0
            p.step += 1
            p.batch += 1
            p.chars_seen += cfg.batch_size * cfg.seq_len
            self._update_average()
            self.on_event({"kind": "step", "step": p.step, "loss": loss, "progress": p})
            if calibrate_at is not None and p.step == calibrate_at and calibration_clock:
                t0, s0 = calibration_clock
                per_step = (time.perf_counter() - t0) / (p.step - s0)
                self._fit_schedule_to_budget(per_step, budget - (time.perf_counter() - started))
            if p.step % cfg.eval_every == 0 and p.step < p.schedule_steps:
                if budget is not None:
                    t0, s0 = round_clock
                    per_step = (time.perf_counter() - t0) / max(1, p.step - s0)
                    self._fit_schedule_to_budget(per_step, budget - (time.perf_counter() - started))
                self._checkpoint_round()
                round_clock = (time.perf_counter(), p.step)
        self._checkpoint_round(final=True)
        return self.model_file()

    def _checkpoint_round(self, final: bool = False) -> None:
        p = self.progress
        self.validate()
        self._remember_good()
        self.save_checkpoint()
        rounds = p.step // self.cfg.eval_every
        if final or rounds % self.cfg.sample_every == 1 or self.cfg.sample_every == 1:
            samples = temperature_samples(
                self.model_file(), self.seed_text, self.cfg.sample_length, self.cfg.seed
            )
            self.on_event(
                {"kind": "samples", "seed": self.seed_text, "samples": samples, "final": final}
            )


def read_checkpoint_meta(path: Path) -> dict:
    header, _, _ = read_safetensors_header(path)
    try:
        return json.loads(header["__metadata__"]["charchat_checkpoint"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CharchatError(f"{path} is not a charchat checkpoint") from None


def train(
    corpus_path: Path,
    out: Path,
    model_config: ModelConfig | None,
    cfg: TrainConfig,
    resume: bool = False,
    on_event=lambda event: None,
) -> ModelFile:
    """Train a model on a text file; with resume, continue the run checkpointed for out.

    On resume the run's own settings come from the checkpoint (only the time budget and the
    device may change); a different architecture or corpus is refused.
    """
    from charchat.vocab import read_corpus

    text = read_corpus(corpus_path)
    if resume:
        ckpt = checkpoint_path(Path(out))
        if not ckpt.is_file():
            raise CharchatError(f"nothing to resume: no checkpoint at {ckpt}")
        meta = read_checkpoint_meta(ckpt)
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
        )
    trainer = Trainer(
        text, Path(corpus_path).name, out, model_config or PRESETS["medium"], cfg, on_event
    )
    return trainer.run(resume=resume)
