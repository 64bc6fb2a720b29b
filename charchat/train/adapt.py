"""Learning while reading (dynamic evaluation; Krause et al., ICML 2018): score a stretch of
text, then take one gradient step on that stretch, and go on with the state carried. Nothing
is scored after it was learnt from, so the figure stays honest.

The step is RMS-normalised SGD on the stretch's mean loss: a running mean of squared
gradients (decay `decay`), step = lr × g / (√mean + eps). Dropout is off, in training mode
(cuDNN allows a backward pass only there; CharLSTM.training_without_dropout).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charchat.errors import CharchatError
from charchat.settings import ADAPT_LR, ADAPT_STRETCH
from charchat.train.model import CharLSTM


@dataclass(frozen=True)
class AdaptSettings:
    lr: float = ADAPT_LR
    stretch: int = ADAPT_STRETCH  # characters scored, then learnt from, at a time
    decay: float = 0.99  # of the running mean of squared gradients
    eps: float = 1e-5

    def check(self) -> AdaptSettings:
        if not 0 < self.lr <= 1:
            raise CharchatError("--adapt-lr must be above 0 and at most 1")
        if not 1 <= self.stretch <= 100_000:
            raise CharchatError("--adapt-stretch must be from 1 to 100000 characters")
        return self


class Learner:
    """Nats of predicting every id from what precedes it, as Scorer (evaluate.py) counts them,
    but the model learns from each stretch right after scoring it."""

    def __init__(self, module: CharLSTM, device, settings: AdaptSettings = AdaptSettings()):
        self.module, self.device, self.settings = module, device, settings.check()
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.mean_square = [torch.zeros_like(p) for p in self.params]
        self.state = None
        self.last: torch.Tensor | None = None  # the id read before the next stretch
        self.pending = np.empty(0, dtype=np.int64)  # ids not yet scored
        self.total = 0.0
        self.count = 0
        self.learnt = 0  # characters learnt from

    def add(self, ids: np.ndarray) -> None:
        """Score and learn from every whole stretch; the rest waits for more (or finish)."""
        self.pending = np.concatenate([self.pending, np.asarray(ids, dtype=np.int64)])
        stretch = self.settings.stretch
        whole = len(self.pending) // stretch * stretch
        for start in range(0, whole, stretch):
            self._stretch(self.pending[start : start + stretch])
        self.pending = self.pending[whole:]

    def finish(self) -> None:
        if len(self.pending):
            self._stretch(self.pending)
            self.pending = self.pending[:0]

    def _stretch(self, ids: np.ndarray) -> None:
        ids_t = torch.as_tensor(ids, device=self.device)
        with self.module.training_without_dropout() as module:
            if self.last is None:
                with torch.no_grad():  # the first character, from the starting state
                    first = module.first_logits()[None].float()
                    self.total += F.cross_entropy(first, ids_t[:1], reduction="sum").item()
                self.count += 1
                if len(ids_t) == 1:
                    self.last = ids_t[-1:]
                    return
                inputs, targets = ids_t[:-1], ids_t[1:]
            else:
                inputs, targets = torch.cat([self.last, ids_t[:-1]]), ids_t
            logits, state = module(inputs[None], self.state)
            loss = F.cross_entropy(logits[0].float(), targets, reduction="sum")
            self.total += loss.item()
            self.count += len(targets)
            module.zero_grad(set_to_none=True)
            (loss / len(targets)).backward()
            self._step()
        self.state = tuple(s.detach() for s in state)
        self.last = ids_t[-1:]
        self.learnt += len(targets)

    @torch.no_grad()
    def _step(self) -> None:
        s = self.settings
        for p, mean_square in zip(self.params, self.mean_square, strict=True):
            if p.grad is None:
                continue
            mean_square.mul_(s.decay).addcmul_(p.grad, p.grad, value=1 - s.decay)
            p.sub_(s.lr * p.grad / (mean_square.sqrt() + s.eps))
