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

    def forward(self, ids: torch.Tensor, state=None):
        """ids (batch, time) -> logits (batch, time, vocab), new state (h, c)."""
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
        module = cls(len(model.vocab), model.config)
        module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in model.tensors.items()})
        return module
