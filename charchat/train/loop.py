"""The training loop: stateful truncated BPTT, AdamW with warm-up and cosine decay.

The loop reports through a callback (events are plain dicts) and never prints; the front-end
(trainui.py) shows them and turns Ctrl+C into `request_stop()`. Checkpoints (checkpoint.py)
make a resumed run continue exactly as if it had never stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from charchat.chat.samples import sample_prompt, temperature_samples
from charchat.errors import CharchatError
from charchat.events import (
    Resumed,
    RolledBack,
    Samples,
    ScheduleFitted,
    StartingStateFitted,
    StepDone,
    StepSkipped,
    TrainingStarted,
    Validated,
)
from charchat.modelfile import Model, ModelConfig, load_model, save_model
from charchat.train.checkpoint import (
    check_identity,
    checkpoint_path,
    load_checkpoint,
    numpy_state,
    read_checkpoint_array,
    read_checkpoint_meta,
    save_checkpoint,
)
from charchat.train.corpus import Batches, Corpus
from charchat.train.distributed import ALONE, World
from charchat.train.evaluate import held_out_nats_per_char
from charchat.train.model import CharLSTM
from charchat.train.recipe import (
    PRESETS,
    TrainConfig,
    TrainingInterrupted,
    check_precision,
    pick_device,
    training_card,
)
from charchat.train.starting import (
    FIT_LENGTH,
    FIT_STEPS,
    FIT_WINDOWS,
    STEP_SHARE,
    fit_starting_state,
)
from charchat.train.stepping import Stepper
from charchat.train.textfiles import EncodedText, read_corpus

NONFINITE_ROLLBACK_AFTER = 3
STARTS_SCANNED = 16_000_000  # characters searched for where texts start

STOP_BUDGET_SPENT, STOP_ASKED = 1, 2


@dataclass
class Progress:
    step: int = 0
    epoch: int = 0
    batch: int = 0  # next batch within the epoch
    schedule_steps: int = 0  # the cosine's length; fitted to a time budget early, then fixed
    best_val: float = math.inf  # nats/char
    elapsed: float = 0.0  # training seconds over all runs
    chars_seen: int = 0
    skipped_steps: int = 0
    lr_scale: float = 1.0  # halved on each roll-back after non-finite steps
    # [step, elapsed s, val bits/char, val bits/char of the averaged weights or None]
    history: list = field(default_factory=list)
    # [step, elapsed s, mean training loss in bits/char since the row before] (this process's)
    train_curve: list = field(default_factory=list)
    loss_sum: float = 0.0  # nats, over the steps since the last row of train_curve
    loss_steps: int = 0


class Trainer:
    def __init__(
        self, text, corpus_name, out, model_config, cfg, on_event=lambda e: None, world=ALONE
    ):
        """text: a string, or the EncodedText of a corpus read with textfiles.read_corpus.
        world: the processes of a torchrun launch; only the main one reports events."""
        cfg.check()
        model_config.check()
        self.cfg, self.model_config, self.world = cfg, model_config, world
        self.on_event = on_event if world.main else (lambda event: None)
        self.out = Path(out)
        encoded = EncodedText.from_text(text, corpus_name) if isinstance(text, str) else text
        self.prompt = sample_prompt(encoded.text(0, 4000))
        self.corpus = Corpus.from_encoded(encoded, cfg.val_fraction, cfg.val_pieces)
        self.batches = Batches(
            self.corpus.train, cfg.batch_size, cfg.seq_len, cfg.seed, world.rank, world.size
        )
        self.device = pick_device(cfg.device)
        check_precision(cfg.precision, self.device)
        if cfg.threads is not None:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.module = CharLSTM(len(self.corpus.vocab), model_config).to(self.device)
        self.stepper = Stepper(self.module, cfg, self.device, world)
        self.optimizer = self.stepper.optimizer
        total = cfg.steps or max(1, int(cfg.schedule_epochs * self.batches.per_epoch))
        self.progress = Progress(schedule_steps=total)
        self.total_steps = total
        self.average: AveragedModel | None = None  # running mean of the weights
        self._stop_requested = False
        self.replica_digest = None  # at the end of a run of several processes
        self._round_seconds = 0.0  # the last validation, checkpoint and samples took this long
        self.plan: dict | None = None  # the budget plan this run follows, for the card
        self.starting_state_steps = 0  # fitted to text starts at the end (starting.py)
        self._saved_latest = False  # the model file holds the weights as they are now

    @property
    def hidden(self):
        return self.stepper.hidden

    @hidden.setter
    def hidden(self, value) -> None:
        self.stepper.hidden = value

    @property
    def scaler(self) -> torch.amp.GradScaler:
        return self.stepper.scaler

    def request_stop(self) -> None:
        """Stop at the next step boundary, after writing a checkpoint (safe from a signal)."""
        self._stop_requested = True

    # -------------------------------------------------------- schedule

    def lr_at(self, step: int) -> float:
        return self.cfg.lr_at(step, self.progress.schedule_steps) * self.progress.lr_scale

    def _fit_schedule_to_budget(self, seconds_per_step: float, remaining: float) -> None:
        """Fit the cosine to the time left, the validation rounds to come and the final one
        included; recorded in checkpoints, so resume stays exact."""
        p = self.progress
        per_step = seconds_per_step + self._round_seconds / self.cfg.eval_every
        windows = FIT_STEPS * FIT_WINDOWS * FIT_LENGTH / (self.cfg.batch_size * self.cfg.seq_len)
        fitting = STEP_SHARE * windows * seconds_per_step
        affordable = int(0.95 * (remaining - self._round_seconds - fitting) / per_step) + p.step
        p.schedule_steps = self.world.from_main(max(p.step + 1, min(self.total_steps, affordable)))
        self.on_event(ScheduleFitted(p.schedule_steps))

    # -------------------------------------------------------- files

    def model_file(self, module: torch.nn.Module | None = None) -> Model:
        """The weights of module (default: the one trained) as a model with its card."""
        averaged = module is not None and module is not self.module
        card = training_card(
            self.cfg,
            self.corpus,
            asdict(self.progress),
            str(self.device),
            int(self.average.n_averaged) if averaged else 0,
            self.plan,
        ) | {"world_size": self.world.size}
        if self.starting_state_steps:
            card["initial_state"] = (
                f"fitted to where texts start ({self.starting_state_steps} steps, "
                "other weights frozen)"
            )
        if self.replica_digest:
            card["weights_sha256_on_every_process"] = self.replica_digest
        tensors = numpy_state(module or self.module)
        return Model(self.corpus.vocab, self.model_config, tensors, card)

    def identity(self) -> dict:
        return {
            "corpus_sha256": self.corpus.sha256,
            "model_config": asdict(self.model_config),
            "seq_len": self.cfg.seq_len,
            "batch_size": self.cfg.batch_size,
            "val_fraction": self.cfg.val_fraction,
            "val_pieces": self.cfg.val_pieces,
            "seed": self.cfg.seed,
        }

    def save_checkpoint(self) -> None:
        """Written by the main process, with every process's random generator and state."""
        rngs_and_states = self.world.gather((torch.get_rng_state().numpy(), self.hidden))
        if not self.world.main:
            return
        meta = {
            "identity": self.identity(),
            "train_config": asdict(self.cfg),
            "progress": asdict(self.progress),
            "world_size": self.world.size,
            "grad_scaler": self.scaler.state_dict(),
        }
        hidden = self.hidden
        if self.world.size > 1 and all(h is not None for _, h in rngs_and_states):
            hidden = tuple(torch.cat([h[k] for _, h in rngs_and_states], dim=1) for k in (0, 1))
        extra = {f"rng.torch.rank{r}": rng for r, (rng, _) in enumerate(rngs_and_states) if r}
        save_checkpoint(
            checkpoint_path(self.out),
            self.module,
            self.optimizer,
            self.average,
            hidden,
            meta,
            extra,
        )

    def load_checkpoint(self) -> None:
        """With as many processes as the checkpoint's run: exactly where it stopped. With
        another number, the streams are cut anew and start from the learned initial state."""
        path = checkpoint_path(self.out)
        check_identity(read_checkpoint_meta(path), self.identity())
        meta, self.average, self.hidden = load_checkpoint(
            path, self.module, self.optimizer, self.device
        )
        self.progress = Progress(**meta["progress"])
        if meta.get("grad_scaler"):
            self.scaler.load_state_dict(meta["grad_scaler"])
        rank, size = self.world.rank, self.world.size
        if meta.get("world_size", 1) != size:
            self.hidden = None
            torch.manual_seed(self.cfg.seed + 7919 * self.progress.step + rank)
        elif size > 1:
            if rank:
                rng = read_checkpoint_array(path, f"rng.torch.rank{rank}")
                torch.set_rng_state(torch.from_numpy(rng))
            if self.hidden is not None:
                rows = self.batches.rows
                self.hidden = tuple(h[:, rows].contiguous() for h in self.hidden)
        self.on_event(Resumed(self.progress.step))

    # -------------------------------------------------------- one step

    def _roll_back(self) -> None:
        self.stepper.roll_back()
        self.progress.lr_scale /= 2
        self.on_event(RolledBack(self.progress.lr_scale))

    def _update_average(self) -> None:
        """Fold this step's weights into the running mean, once the schedule is far enough."""
        start = self.cfg.average_from
        if start is None or self.progress.step < start * self.progress.schedule_steps:
            return
        if self.average is None:
            self.average = AveragedModel(self.module)
        self.average.update_parameters(self.module)

    # -------------------------------------------------------- validation

    def _validation_nats(self, module: torch.nn.Module) -> float:
        return held_out_nats_per_char(module, self.corpus.val, self.device)

    def validate(self) -> float:
        """Score the weights and, while averaging, the averaged weights; keep the better."""
        p = self.progress
        val = self._validation_nats(self.module)
        averaged = math.nan if self.average is None else self._validation_nats(self.average.module)
        bits = [v / math.log(2) for v in (val, averaged)]
        p.history.append(
            [p.step, round(p.elapsed, 1), round(bits[0], 5)]
            + [round(bits[1], 5) if math.isfinite(averaged) else None]
        )
        better, module = (averaged, self.average.module) if averaged < val else (val, None)
        self._saved_latest = False
        if math.isfinite(better) and better < p.best_val:
            p.best_val = better
            save_model(self.model_file(module), self.out)
            self._saved_latest = module is None
        elif not self.corpus.val and p.step > 0:  # nothing held out: keep the latest...
            module = self.average.module if self.average is not None else None
            save_model(self.model_file(module), self.out)  # ...or the mean, if asked for one
            self._saved_latest = module is None
        self.on_event(Validated(p.step, val, averaged, p.best_val))
        return val

    # -------------------------------------------------------- the loop

    def run(self, resume: bool = False) -> Model:
        if resume:
            self.load_checkpoint()
        p = self.progress
        if p.step >= p.schedule_steps:
            raise CharchatError("this run is already complete; nothing to resume")
        cfg = self.cfg
        budget = cfg.minutes * 60 if cfg.minutes else None
        started = time.perf_counter()
        run_start_elapsed = p.elapsed
        calibrate_at = p.step + 20 if budget else None
        first_step = p.step
        consecutive_bad = 0
        self.stepper.remember_good()
        params = sum(t.numel() for t in self.module.parameters())
        vocab, device = len(self.corpus.vocab), str(self.device)
        self.on_event(TrainingStarted(p.schedule_steps, params, vocab, device))
        calibration_clock = None
        round_clock = (time.perf_counter(), p.step)
        while p.step < p.schedule_steps:
            stop = STOP_ASKED if self._stop_requested else 0
            if budget is not None and time.perf_counter() - started >= budget:
                stop = max(stop, STOP_BUDGET_SPENT)
            stop = self.world.largest(stop)  # one process stopping stops them all, together
            if stop == STOP_ASKED:
                self.save_checkpoint()
                raise TrainingInterrupted(f"interrupted at step {p.step}; checkpoint saved")
            if stop == STOP_BUDGET_SPENT:
                break
            if p.batch >= self.batches.per_epoch:
                p.epoch, p.batch = p.epoch + 1, 0
                self.hidden = None
            x_np, y_np = self.batches.window(p.epoch, p.batch)
            x, y = (self.stepper.to_device(a) for a in (x_np, y_np))
            if calibrate_at is not None and p.step == first_step + 2:
                calibration_clock = (time.perf_counter(), p.step)
            loss = self.stepper.step(x, y, self.lr_at(p.step))
            p.elapsed = run_start_elapsed + time.perf_counter() - started
            p.batch += 1
            if loss is None:
                p.skipped_steps += 1
                consecutive_bad += 1
                self.on_event(StepSkipped(p.step, p.skipped_steps))
                if consecutive_bad >= NONFINITE_ROLLBACK_AFTER:
                    self._roll_back()
                    consecutive_bad = 0
                continue
            consecutive_bad = 0
            p.step += 1
            p.loss_sum, p.loss_steps = p.loss_sum + loss, p.loss_steps + 1
            p.chars_seen += cfg.batch_size * cfg.seq_len * self.world.size
            self._update_average()
            self.on_event(StepDone(p.step, loss, p.chars_seen))
            if p.step == calibrate_at and calibration_clock:
                t0, s0 = calibration_clock
                per_step = (time.perf_counter() - t0) / (p.step - s0)
                self._fit_schedule_to_budget(per_step, budget - (time.perf_counter() - started))
            if p.step % cfg.eval_every == 0 and p.step < p.schedule_steps:
                if budget is not None:
                    t0, s0 = round_clock
                    per_step = (time.perf_counter() - t0) / max(1, p.step - s0)
                    self._fit_schedule_to_budget(per_step, budget - (time.perf_counter() - started))
                round_started = time.perf_counter()
                self._checkpoint_round()
                round_clock = (time.perf_counter(), p.step)
                self._round_seconds = round_clock[0] - round_started
        if p.step == 0:
            raise CharchatError(
                "the time budget ran out before the first step; nothing was saved "
                "(give more --minutes)"
            )
        self.starting_state_steps = self._fit_starting_state(self.module)
        self._checkpoint_round(final=True)
        if self.world.main and not self._saved_latest and self.out.is_file():
            self._fit_saved_model()
        return self.model_file()

    def _fit_starting_state(self, module: CharLSTM) -> int:
        newline = self.corpus.vocab.index.get("\n")
        head = self.corpus.train[:STARTS_SCANNED]
        steps = fit_starting_state(
            module, head, newline, self.device, self.cfg.precision, self.cfg.seed
        )
        self.on_event(StartingStateFitted(steps))
        return steps

    def _fit_saved_model(self) -> None:
        """The file holds earlier or averaged weights (they scored best): fit their starting
        state too, and score them again with it."""
        saved = load_model(self.out)
        module = CharLSTM.from_file(saved).to(self.device)
        steps = self._fit_starting_state(module)
        card = saved.card | {
            "initial_state": f"fitted to where texts start ({steps} steps, other weights frozen)"
        }
        if self.corpus.val:
            val = self._validation_nats(module)
            card["best_val_nats_per_char"] = round(val, 5)
            card["best_val_bits_per_char"] = round(val / math.log(2), 5)
        save_model(Model(saved.vocab, saved.config, numpy_state(module), card), self.out)

    def _checkpoint_round(self, final: bool = False) -> None:
        p = self.progress
        if p.loss_steps:
            mean_bits = p.loss_sum / p.loss_steps / math.log(2)
            p.train_curve.append([p.step, round(p.elapsed, 1), round(mean_bits, 5)])
            p.loss_sum, p.loss_steps = 0.0, 0
        if final and self.world.size > 1:
            self.replica_digest = self.world.same_weights(self.module)
        if self.world.main:
            self.validate()
        self.stepper.remember_good()
        self.save_checkpoint()
        rounds = self.progress.step // self.cfg.eval_every
        if not self.world.main:
            return
        if final or rounds % self.cfg.sample_every == 1 or self.cfg.sample_every == 1:
            samples = temperature_samples(
                self.model_file(), self.prompt, self.cfg.sample_length, self.cfg.seed
            )
            self.on_event(Samples(self.prompt, samples, final))


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
