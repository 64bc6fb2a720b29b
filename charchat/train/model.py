"""The torch module used for training and evaluation: embedding -> stacked LSTM -> linear head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from charchat.modelfile import Model, ModelConfig


class CharLSTM(nn.Module):
    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding)
        self.lstm = nn.LSTM(
            config.embedding,
            config.hidden,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(config.hidden, vocab_size)
        # The state before the first character, learned: a session starts from it.
        self.initial_h = nn.Parameter(torch.zeros(config.layers, config.hidden))
        self.initial_c = nn.Parameter(torch.zeros(config.layers, config.hidden))
        self._single_layers: tuple[nn.LSTM, nn.LSTM] | None = None

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The learned starting state for `batch` streams, shaped as nn.LSTM wants it."""
        shape = (self.config.layers, batch, self.config.hidden)
        return self.initial_h[:, None].expand(shape), self.initial_c[:, None].expand(shape)

    def first_logits(self) -> torch.Tensor:
        """Logits for the first character, predicted from the starting state alone."""
        return self.head(self.initial_h[-1])

    def forward(self, ids: torch.Tensor, state=None):
        """ids (batch, time) -> logits (batch, time, vocab), new state (h, c).

        With no state, every stream starts from the learned initial state."""
        if state is None:
            state = tuple(s.contiguous() for s in self.initial_state(ids.shape[0]))
        embedded = self._dropout(self.embedding(ids), self.config.input_dropout)
        weights = dict(self.lstm.named_parameters())
        if self.training and self.config.weight_drop > 0:
            # One mask per batch on each hidden-to-hidden matrix, shared by every time step.
            for name in self.recurrent_weight_names:
                weights[name] = F.dropout(weights[name], self.config.weight_drop)
        if self.training and self.config.locked_dropout and self.config.layers > 1:
            out, state = self._layer_by_layer(embedded, state, weights)
        elif self.training and self.config.weight_drop > 0:
            out, state = functional_call(self.lstm, weights, (embedded, state))
        else:
            out, state = self.lstm(embedded, state)
        return self.head(self._dropout(out, self.config.dropout)), state

    def _dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout on (batch, time, features); locked: one mask per stream for all time steps."""
        if not self.training or p <= 0:
            return x
        if not self.config.locked_dropout:
            return F.dropout(x, p)
        keep = torch.empty_like(x[:, :1]).bernoulli_(1 - p) / (1 - p)
        return x * keep

    def _layer_by_layer(self, x, state, weights):
        """The stacked LSTM one layer at a time, so that the dropout between layers can be
        locked (nn.LSTM's own draws a fresh mask at every step)."""
        h0, c0 = state
        hs, cs = [], []
        for layer in range(self.config.layers):
            if layer > 0:
                x = self._dropout(x, self.config.dropout)
            one_layer = {
                f"{kind}_l0": weights[f"{kind}_l{layer}"]
                for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            }
            template = self.single_layer(first=layer == 0)
            x, (h, c) = functional_call(
                template, one_layer, (x, (h0[layer : layer + 1], c0[layer : layer + 1]))
            )
            hs.append(h)
            cs.append(c)
        return x, (torch.cat(hs), torch.cat(cs))

    def single_layer(self, first: bool) -> nn.LSTM:
        """A one-layer LSTM of the right shape to run a layer's weights through; kept in a
        tuple, so that its own (unused) weights are not among the module's parameters."""
        if self._single_layers is None:
            c = self.config
            self._single_layers = (
                nn.LSTM(c.embedding, c.hidden, batch_first=True),
                nn.LSTM(c.hidden, c.hidden, batch_first=True),
            )
        return self._single_layers[0 if first else 1]

    @contextmanager
    def training_without_dropout(self) -> Iterator[CharLSTM]:
        """Training mode with every dropout at zero: gradients through the weights as they
        will be used. cuDNN refuses a backward pass in eval mode, so a fit that wants no
        dropout (the starting state, adapting) runs here, never under eval()."""
        was_training, config, lstm_dropout = self.training, self.config, self.lstm.dropout
        self.config = replace(
            config, dropout=0.0, weight_drop=0.0, input_dropout=0.0, locked_dropout=False
        )
        self.lstm.dropout = 0.0
        self.train()
        try:
            yield self
        finally:
            self.config, self.lstm.dropout = config, lstm_dropout
            self.train(was_training)

    @property
    def recurrent_weight_names(self) -> list[str]:
        return [f"weight_hh_l{layer}" for layer in range(self.config.layers)]

    def numpy_tensors(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().float().numpy().copy() for k, v in self.state_dict().items()}

    @classmethod
    def from_file(cls, model: Model) -> CharLSTM:
        """The module for a model file; a file without a learned initial state starts at zero."""
        module = cls(len(model.vocab), model.config)
        weights = {k: torch.from_numpy(np.array(v)) for k, v in model.tensors.items()}
        module.load_state_dict(module.state_dict() | weights)
        return module
