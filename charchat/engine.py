"""Fast inference in numpy: the LSTM state, feeding characters, and next-character logits.

The same maths as torch.nn.LSTM (gate order i, f, g, o), rearranged for one character at a
time: the embedding and first-layer input projection fold into one lookup table, every
buffer is allocated once, and long seeds are fed layer by layer so that each layer's input
projection is one matrix product over all positions.
"""

from __future__ import annotations

import numpy as np

from charchat.modelfile import ModelFile


def _sigmoid_(x: np.ndarray) -> np.ndarray:
    """In place: sigmoid(x) = 0.5 * tanh(0.5 * x) + 0.5 (no overflow for large |x|)."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


class Engine:
    def __init__(self, model: ModelFile):
        t = model.tensors
        cfg = model.config
        self.model = model
        self.vocab = model.vocab
        self.layers = cfg.layers
        self.hidden = h = cfg.hidden
        f32 = np.float32
        # Row v = W_ih0 @ embedding[v] + both first-layer biases: layer 0's input for char v.
        self.input_table = np.ascontiguousarray(
            t["embedding.weight"].astype(f32) @ t["lstm.weight_ih_l0"].astype(f32).T
            + t["lstm.bias_ih_l0"]
            + t["lstm.bias_hh_l0"],
            dtype=f32,
        )
        self.w_hh = [
            np.ascontiguousarray(t[f"lstm.weight_hh_l{k}"], dtype=f32) for k in range(self.layers)
        ]
        self.w_ih = [None] + [
            np.ascontiguousarray(t[f"lstm.weight_ih_l{k}"], dtype=f32)
            for k in range(1, self.layers)
        ]
        self.bias = [None] + [
            (t[f"lstm.bias_ih_l{k}"] + t[f"lstm.bias_hh_l{k}"]).astype(f32)
            for k in range(1, self.layers)
        ]
        self.head_w = np.ascontiguousarray(t["head.weight"], dtype=f32)
        self.head_b = np.asarray(t["head.bias"], dtype=f32)
        # state[0] = h, state[1] = c, one row per layer
        self.state = np.zeros((2, self.layers, h), dtype=f32)
        self._gates = np.empty(4 * h, dtype=f32)
        self._tmp = np.empty(4 * h, dtype=f32)
        self._scratch = np.empty(h, dtype=f32)
        self._logits = np.empty(len(self.vocab), dtype=f32)
        self._logits_valid = False

    # ------------------------------------------------------------ state

    def reset(self) -> None:
        self.state[:] = 0
        self._logits_valid = False

    def snapshot(self) -> np.ndarray:
        return self.state.copy()

    def restore(self, snapshot: np.ndarray) -> None:
        self.state[:] = snapshot
        self._logits_valid = False

    # ------------------------------------------------------------ stepping

    def _cell(self, gates: np.ndarray, layer: int) -> None:
        """Given pre-activations (i, f, g, o), update this layer's c and h in place."""
        h = self.hidden
        c_row = self.state[1, layer]
        h_row = self.state[0, layer]
        _sigmoid_(gates[: 2 * h])
        _sigmoid_(gates[3 * h :])
        np.tanh(gates[2 * h : 3 * h], out=gates[2 * h : 3 * h])
        c_row *= gates[h : 2 * h]
        np.multiply(gates[:h], gates[2 * h : 3 * h], out=self._scratch)
        c_row += self._scratch
        np.tanh(c_row, out=h_row)
        h_row *= gates[3 * h :]

    def feed(self, char_id: int) -> None:
        """Read one character."""
        gates, tmp = self._gates, self._tmp
        np.dot(self.w_hh[0], self.state[0, 0], out=gates)
        gates += self.input_table[char_id]
        self._cell(gates, 0)
        for k in range(1, self.layers):
            np.dot(self.w_ih[k], self.state[0, k - 1], out=gates)
            np.dot(self.w_hh[k], self.state[0, k], out=tmp)
            gates += tmp
            gates += self.bias[k]
            self._cell(gates, k)
        self._logits_valid = False

    def feed_many(self, ids) -> None:
        """Read a sequence; each layer's input projection is one product over all positions."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        if len(ids) == 1:
            self.feed(int(ids[0]))
            return
        inputs = self.input_table[ids]  # (T, 4H): layer 0's projected inputs
        gates = self._gates
        for k in range(self.layers):
            outputs = np.empty((len(ids), self.hidden), dtype=np.float32)
            for t in range(len(ids)):
                np.dot(self.w_hh[k], self.state[0, k], out=gates)
                gates += inputs[t]
                self._cell(gates, k)
                outputs[t] = self.state[0, k]
            if k + 1 < self.layers:
                inputs = outputs @ self.w_ih[k + 1].T
                inputs += self.bias[k + 1]
        self._logits_valid = False

    def logits(self) -> np.ndarray:
        """Next-character logits from the current state (a view: copy it to keep it)."""
        if not self._logits_valid:
            np.dot(self.head_w, self.state[0, -1], out=self._logits)
            self._logits += self.head_b
            self._logits_valid = True
        return self._logits

    def logits_after(self, ids) -> np.ndarray:
        """Logits after each position of ids, fed from the current state: shape (len, vocab)."""
        out = np.empty((len(ids), len(self.vocab)), dtype=np.float32)
        for t, i in enumerate(ids):
            self.feed(int(i))
            out[t] = self.logits()
        return out
