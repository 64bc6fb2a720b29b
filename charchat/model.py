"""The torch module used for training and evaluation: embedding -> stacked LSTM -> linear head."""

from __future__ import annotations

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
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, vocab_size)
        # The state before the first character, learned: a session starts from it.
        self.initial_h = nn.Parameter(torch.zeros(config.layers, config.hidden))
        self.initial_c = nn.Parameter(torch.zeros(config.layers, config.hidden))

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
        embedded = self.embedding(ids)
        if self.config.input_dropout > 0:
            embedded = F.dropout(embedded, self.config.input_dropout, self.training)
        if self.training and self.config.weight_drop > 0:
            # One mask per batch on each hidden-to-hidden matrix, shared by every time step.
            dropped = {
                name: F.dropout(getattr(self.lstm, name), self.config.weight_drop)
                for name in self.recurrent_weight_names
            }
            out, state = functional_call(self.lstm, dropped, (embedded, state))
        else:
            out, state = self.lstm(embedded, state)
        return self.head(self.drop(out)), state

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
