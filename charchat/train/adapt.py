"""Learning while reading (dynamic evaluation; Krause et al., ICML 2018): score a stretch of
text, then take one gradient step on that stretch, and go on with the state carried. Nothing
is scored after it was learnt from, so the figure stays honest.

The step is RMS-normalised SGD on the stretch's mean loss: a running mean of squared
gradients (decay `decay`), step = lr × g / (√mean + eps). Dropout is off, in training mode
(cuDNN allows a backward pass only there; CharLSTM.training_without_dropout).

Adapter learns one stretch from a given state; Learner streams a whole text through it
(`charchat eval --adapt`); ChatLearner is the chat's learner, in numpy terms (chat/adapting.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charchat.modelfile import Model
from charchat.settings import ADAPT_LR, ADAPT_STRETCH
from charchat.train.model import CharLSTM


@dataclass(frozen=True)
class AdaptSettings:
    lr: float = ADAPT_LR.default
    stretch: int = ADAPT_STRETCH.default  # characters scored, then learnt from, at a time
    decay: float = 0.99  # of the running mean of squared gradients
    eps: float = 1e-5

    def check(self) -> AdaptSettings:
        ADAPT_LR.check_flag(self.lr)
        ADAPT_STRETCH.check_flag(self.stretch)
        return self


class Adapter:
    """A module that learns from what it reads, a stretch at a time."""

    def __init__(self, module: CharLSTM, device, settings: AdaptSettings = AdaptSettings()):
        self.module, self.device, self.settings = module, device, settings.check()
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.mean_square = [torch.zeros_like(p) for p in self.params]

    def stretch(self, ids: np.ndarray, state) -> tuple[float, tuple]:
        """Nats of predicting every id, the first from state (the state of having read what
        precedes ids, as nn.LSTM shapes it); then one step on their mean. Returns the nats
        and the state after the ids, computed with the weights before the step."""
        ids_t = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=self.device)
        with self.module.training_without_dropout() as module:
            first = module.head(state[0][-1])  # (1, vocab): from the top layer's h
            logits, after = module(ids_t[None], state)
            predicted = torch.cat([first, logits[0, :-1]]).float()
            loss = F.cross_entropy(predicted, ids_t, reduction="sum")
            module.zero_grad(set_to_none=True)
            (loss / len(ids_t)).backward()
            self._step()
        return loss.item(), tuple(s.detach() for s in after)

    @torch.no_grad()
    def _step(self) -> None:
        s = self.settings
        for p, mean_square in zip(self.params, self.mean_square, strict=True):
            if p.grad is None:
                continue
            mean_square.mul_(s.decay).addcmul_(p.grad, p.grad, value=1 - s.decay)
            p.sub_(s.lr * p.grad / (mean_square.sqrt() + s.eps))
            p.grad = None


class Learner:
    """Nats of predicting every id from what precedes it, as Scorer (evaluate.py) counts them,
    but the model learns from each stretch right after scoring it."""

    def __init__(self, module: CharLSTM, device, settings: AdaptSettings = AdaptSettings()):
        self.adapter = Adapter(module, device, settings)
        self.settings = self.adapter.settings
        with torch.no_grad():
            self.state = tuple(s.clone() for s in module.initial_state(1))
        self.pending = np.empty(0, dtype=np.int64)  # ids not yet scored
        self.total = 0.0
        self.count = 0

    @property
    def learnt(self) -> int:
        return self.count  # every character scored is then learnt from

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
        nats, self.state = self.adapter.stretch(ids, self.state)
        self.total += nats
        self.count += len(ids)


class ChatLearner:
    """The chat's learner (chat/adapting.py drives it): numpy in, numpy out. The weights it
    hands out are views of the module's own, so reading them copies nothing."""

    def __init__(self, model: Model, settings: AdaptSettings):
        self.model = model
        self.settings = settings.check()
        self.module = CharLSTM.from_file(model)
        self.adapter = Adapter(self.module, torch.device("cpu"), self.settings)
        self._names = [n for n, p in self.module.named_parameters() if p.requires_grad]
        self._loaded = self.snapshot()

    def learn(self, ids: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """One stretch read from state ((h, c) x layers x hidden, as the engine keeps it);
        its nats and the state after it (read with the weights before the step)."""
        h, c = (torch.from_numpy(np.ascontiguousarray(s))[:, None, :] for s in state)
        nats, (h, c) = self.adapter.stretch(ids, (h, c))
        return nats, torch.stack([h[:, 0], c[:, 0]]).numpy()

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.module.state_dict().items()}

    def snapshot(self) -> dict[str, np.ndarray]:
        """Everything learnt: the weights and the running mean squares, copied."""
        ms = dict(zip(self._names, self.adapter.mean_square, strict=True))
        return {k: v.copy() for k, v in self.weights().items()} | {
            f"mean_square.{k}": v.detach().numpy().copy() for k, v in ms.items()
        }

    @torch.no_grad()
    def restore(self, snapshot: dict[str, np.ndarray] | None) -> None:
        """Back to a snapshot; None: the weights as loaded, nothing learnt."""
        snapshot = self._loaded if snapshot is None else snapshot
        for name, p in self.module.named_parameters():
            p.copy_(torch.from_numpy(snapshot[name]))
        for name, mean_square in zip(self._names, self.adapter.mean_square, strict=True):
            mean_square.copy_(torch.from_numpy(snapshot[f"mean_square.{name}"]))


def chat_learner(model: Model, lr: float, stretch: int) -> ChatLearner:
    return ChatLearner(model, AdaptSettings(lr=lr, stretch=stretch))
