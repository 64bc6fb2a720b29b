"""A run's files: the model with its card, and checkpoints from which a resumed run goes on
exactly as if it had never stopped (with as many processes; with another number the batch
streams are cut anew)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from charchat.events import Resumed
from charchat.modelfile import Model, load_model, save_model
from charchat.train.checkpoint import (
    check_identity,
    checkpoint_path,
    load_checkpoint,
    numpy_state,
    read_checkpoint_array,
    read_checkpoint_meta,
    save_checkpoint,
)
from charchat.train.model import CharLSTM
from charchat.train.recipe import training_card


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
    best_step: int = 0  # the step whose weights scored best_val
    stopped_early: int = 0  # rounds without a better validation when it stopped (patience)
    # [step, elapsed s, val bits/char, val bits/char of the averaged weights or None]
    history: list = field(default_factory=list)
    # [step, elapsed s, mean training loss in bits/char since the row before] (this process's)
    train_curve: list = field(default_factory=list)
    loss_sum: float = 0.0  # nats, over the steps since the last row of train_curve
    loss_steps: int = 0


class Resumable:
    """What Trainer (loop.py) does with files; it holds cfg, corpus, module, progress and the
    rest that these methods read."""

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
        if self.parent:
            card["fine_tuned_from"] = self.parent
        if self.corpus.val and self.progress.history:
            card["kept"] = self.kept_note()
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
            "parent_sha256": self.parent["sha256"] if self.parent else None,
        }

    def kept_note(self) -> str:
        """Which validation round's weights the model file holds, and why."""
        p = self.progress
        note = f"the weights of step {p.best_step:,} of {p.step:,}: the best validation round"
        if p.stopped_early:
            note += f"; stopped after {p.stopped_early} rounds without a better one"
            note += " (learning the text by heart)"
        return note

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

    def _fit_saved_model(self) -> None:
        """The file holds earlier or averaged weights (they scored best): fit their starting
        state too, and score them again with it."""
        saved = load_model(self.out)
        module = CharLSTM.from_file(saved).to(self.device)
        steps = self._fit_starting_state(module)
        card = saved.card | {
            "initial_state": f"fitted to where texts start ({steps} steps, other weights frozen)"
        }
        card |= {"kept": self.kept_note()} if self.corpus.val else {}
        if self.corpus.val:
            val = self._validation_nats(module)
            card["best_val_nats_per_char"] = round(val, 5)
            card["best_val_bits_per_char"] = round(val / math.log(2), 5)
        save_model(Model(saved.vocab, saved.config, numpy_state(module), card), self.out)
