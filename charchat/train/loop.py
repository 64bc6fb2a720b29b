"""The training loop: stateful truncated BPTT, AdamW with warm-up and cosine decay.

The loop reports through a callback (typed events, events.py) and never prints; the front-end
(run.py, with terminal/trainview.py) shows them and turns Ctrl+C into `request_stop()`.
Checkpoints (resume.py, checkpoint.py) make a resumed run continue exactly as if it had
never stopped.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from charchat.errors import CharchatError
from charchat.events import (
    RolledBack,
    Samples,
    ScheduleFitted,
    StartingStateFitted,
    StepDone,
    StepSkipped,
    TrainingStarted,
    Validated,
)
from charchat.modelfile import Model, save_model
from charchat.train.corpus import Batches, Corpus
from charchat.train.distributed import ALONE
from charchat.train.evaluate import held_out_nats_per_char
from charchat.train.model import CharLSTM
from charchat.train.progress_samples import sample_prompt, temperature_samples
from charchat.train.recipe import TrainingInterrupted, check_precision, pick_device
from charchat.train.resume import Progress, Resumable
from charchat.train.starting import (
    FIT_LENGTH,
    FIT_STEPS,
    FIT_WINDOWS,
    STEP_SHARE,
    fit_starting_state,
)
from charchat.train.stepping import Stepper
from charchat.train.textfiles import EncodedText

NONFINITE_ROLLBACK_AFTER = 3
STARTS_SCANNED = 16_000_000  # characters searched for where texts start

STOP_BUDGET_SPENT, STOP_ASKED = 1, 2


class Trainer(Resumable):
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
        self.parent: dict | None = None  # fine-tuning: the model it started from (finetune.py)

    def start_from(self, tensors: dict, lineage: dict) -> None:
        """Begin from another model's weights (its vocabulary already extended to this one's)."""
        weights = {k: torch.from_numpy(v).to(self.device) for k, v in tensors.items()}
        self.module.load_state_dict(self.module.state_dict() | weights)
        self.parent = lineage

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
            p.best_val, p.best_step = better, p.step
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
                if self._patience_spent():
                    break
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

    def _patience_spent(self) -> bool:
        """cfg.patience validation rounds in a row without a better score: memorising."""
        p, patience = self.progress, self.cfg.patience
        rounds = sum(1 for row in p.history if row[0] > p.best_step)
        p.stopped_early = rounds if patience and self.corpus.val and rounds >= patience else 0
        return self.world.from_main(p.stopped_early) > 0

    def _fit_starting_state(self, module: CharLSTM) -> int:
        newline = self.corpus.vocab.index.get("\n")
        head = self.corpus.train[:STARTS_SCANNED]
        steps = fit_starting_state(
            module, head, newline, self.device, self.cfg.precision, self.cfg.seed
        )
        self.on_event(StartingStateFitted(steps))
        return steps

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
