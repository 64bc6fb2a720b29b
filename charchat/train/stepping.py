"""One optimizer step of stateful truncated BPTT: the module, its optimizer, the state carried
from window to window, and the way back from steps whose numbers are not finite."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charchat.train.checkpoint import InMemorySnapshot
from charchat.train.distributed import World
from charchat.train.model import CharLSTM
from charchat.train.probe import autocast
from charchat.train.recipe import TrainConfig

NOT_DECAYED = {"embedding.weight", "initial_h", "initial_c"}  # and every vector


class Stepper:
    def __init__(self, module: CharLSTM, cfg: TrainConfig, device: torch.device, world: World):
        self.module, self.cfg, self.device = module, cfg, device
        self.net = module  # what a step calls: the module, or its DDP wrapper
        if world.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(module)  # starts from the main's weights
            torch.manual_seed(cfg.seed + world.rank)  # each process its own dropout masks
        groups = [
            {"weight_decay": cfg.weight_decay, "params": []},
            {"weight_decay": 0.0, "params": []},
        ]
        for name, p in module.named_parameters():
            groups[p.dim() != 2 or name in NOT_DECAYED]["params"].append(p)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        self.hidden = None  # (h, c) carried to the next window; None: start every stream afresh
        self.last_good = InMemorySnapshot(module, optimizer=self.optimizer)

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> float | None:
        """One optimizer step; None when the loss or gradient was not finite (step skipped)."""
        self.module.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.device, self.cfg.precision):
            logits, hidden = self.net(x, self.restart_some_streams(self.hidden))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.cfg.clip)
        if self.scaler.is_enabled() and torch.isfinite(loss) and not torch.isfinite(norm):
            self.scaler.step(self.optimizer)  # skips the step and lowers the scale: routine
            self.scaler.update()
            return float(loss.item())
        if not (torch.isfinite(loss) and torch.isfinite(norm)):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.hidden = (hidden[0].detach().float(), hidden[1].detach().float())
        return float(loss.item())

    def to_device(self, ids) -> torch.Tensor:
        t = torch.from_numpy(ids.astype("int64"))
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def restart_some_streams(self, hidden):
        """Start a random share of the streams afresh from the learned initial state, so that
        it learns to be a good state to begin any text from (None: all start from it)."""
        if hidden is None or self.cfg.restart_share <= 0:
            return hidden
        batch = hidden[0].shape[1]
        restart = torch.rand(batch, device=self.device) < self.cfg.restart_share
        mask = restart[None, :, None]
        initial = self.module.initial_state(batch)
        return tuple(torch.where(mask, i, s) for i, s in zip(initial, hidden, strict=True))

    def remember_good(self) -> None:
        """The weights to come back to after repeated non-finite steps."""
        self.last_good = InMemorySnapshot(self.module, optimizer=self.optimizer)

    def roll_back(self) -> None:
        self.last_good.restore(self.module, self.optimizer)
        self.hidden = None
