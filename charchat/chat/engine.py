"""Fast inference in numpy: the LSTM state, feeding characters, and next-character logits.

The same maths as torch.nn.LSTM, rearranged for one character at a time:
- the embedding and first-layer input projection fold into one lookup table;
- gate rows are reordered (i, f, o, g) and the sigmoid rows pre-scaled by 1/2, so a single
  tanh over all gates does the work (sigmoid(x) = (tanh(x/2) + 1) / 2);
- for layers above the first, [W_ih W_hh] is one matrix applied to [h_below; h_own], which
  the state layout keeps adjacent in memory;
- all step weights live in one allocation, every buffer is allocated once, and long seeds
  are fed layer by layer so each layer's input projection is one matrix product.
"""

from __future__ import annotations

import copy

import numpy as np

from charchat.modelfile import Model

PRIME_CHUNK = 2048  # characters primed per batched step: about 20 MB of buffers at 512 units


# Below about a million multiply-adds, OpenBLAS multiplies without first copying the matrix
# into its packed layout; a 2048 x 512 matrix times 8 states is cut into row blocks under that
# size, which measured 1.8x faster than one product (AMD EPYC, numpy's OpenBLAS).
UNPACKED_PRODUCT = 900_000


def _product(w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """rows @ w.T, shape (len(rows), w's rows), w taken a block of its rows at a time."""
    columns = np.ascontiguousarray(rows.T)
    out = np.empty((w.shape[0], columns.shape[1]), dtype=np.float32)
    block = max(8, UNPACKED_PRODUCT // (w.shape[1] * columns.shape[1]) // 8 * 8)
    for a in range(0, w.shape[0], block):
        np.matmul(w[a : a + block], columns, out=out[a : a + block])
    return out.T


def _gate_order(hidden: int) -> np.ndarray:
    """Row permutation from torch's (i, f, g, o) to (i, f, o, g)."""
    h = hidden
    return np.concatenate([np.arange(0, 2 * h), np.arange(3 * h, 4 * h), np.arange(2 * h, 3 * h)])


class Engine:
    def __init__(self, model: Model):
        cfg = model.config
        self.model = model
        self.vocab = model.vocab
        self.layers = cfg.layers
        self.hidden = h = cfg.hidden
        shapes = [(4 * h, h)] + [(4 * h, 2 * h)] * (self.layers - 1) + [(len(self.vocab), h)]
        arena = np.empty(sum(a * b for a, b in shapes), dtype=np.float32)
        views, offset = [], 0
        for rows, cols in shapes:
            views.append(arena[offset : offset + rows * cols].reshape(rows, cols))
            offset += rows * cols
        self.w_first = views[0]  # layer 0's recurrent matrix
        self.w_upper = views[1:-1]  # layer k >= 1: [W_ih W_hh], applied to [h_{k-1}; h_k]
        self.head_w = views[-1]
        self._halves: dict[tuple[int, int], np.ndarray] = {}  # see _half
        self.load_weights(model.tensors)

        # state[0] = h, state[1] = c, one row per layer; rows k-1 and k of h are adjacent
        self.initial = np.zeros((2, self.layers, h), dtype=np.float32)
        if "initial_h" in model.tensors:  # learned in training; older files start from zero
            self.initial[0], self.initial[1] = (
                model.tensors["initial_h"],
                model.tensors["initial_c"],
            )
        self._own_buffers()

    def _own_buffers(self) -> None:
        """The state and the scratch space one stepping engine needs for itself."""
        h = self.hidden
        self.state = self.initial.copy()
        self._h_flat = self.state[0].reshape(-1)
        self._gates = np.empty(4 * h, dtype=np.float32)
        self._scratch = np.empty(h, dtype=np.float32)
        self._logits = np.empty(len(self.vocab), dtype=np.float32)
        self._logits_valid = False

    def twin(self) -> Engine:
        """Another engine on the same weights (not copied: threads that each step their own
        engine share them), from the starting state. Only for weights that stay as loaded:
        load_weights on one would leave the other half old."""
        other = copy.copy(self)
        other._own_buffers()
        return other

    def load_weights(self, t: dict[str, np.ndarray]) -> None:
        """Take these weights (a model file's tensors), in place; the state is kept. Learning
        while reading (/adapt) calls this after every step."""
        h = self.hidden
        f64 = np.float64
        order = _gate_order(h)

        def gates(name: str, dtype=f64) -> np.ndarray:
            """Rows reordered and scaled (by 1/2: exact in any precision)."""
            rows = t[name][order].astype(dtype, copy=False)
            rows[: 3 * h] *= 0.5
            return rows

        table = t["embedding.weight"].astype(f64) @ gates("lstm.weight_ih_l0").T
        table += gates("lstm.bias_ih_l0") + gates("lstm.bias_hh_l0")
        # Row v: layer 0's pre-activations for character v, before the recurrent term.
        self.input_table = table.astype(np.float32)
        self.w_first[:] = gates("lstm.weight_hh_l0", np.float32)
        self.b_upper = []
        for k, w in enumerate(self.w_upper, start=1):
            w[:, :h] = gates(f"lstm.weight_ih_l{k}", np.float32)
            w[:, h:] = gates(f"lstm.weight_hh_l{k}", np.float32)
            self.b_upper.append(
                (gates(f"lstm.bias_ih_l{k}") + gates(f"lstm.bias_hh_l{k}")).astype(np.float32)
            )
        self.head_w[:] = t["head.weight"]
        self.head_b = np.asarray(t["head.bias"], dtype=np.float32).copy()
        self._halves.clear()
        self._logits_valid = False

    # ------------------------------------------------------------ state

    def reset(self) -> None:
        """Back to the model's starting state, as before the first character."""
        self.state[:] = self.initial
        self._logits_valid = False

    def snapshot(self) -> np.ndarray:
        return self.state.copy()

    def restore(self, snapshot: np.ndarray) -> None:
        self.state[:] = snapshot
        self._logits_valid = False

    @property
    def step_bytes(self) -> int:
        """Weight bytes one generated character reads (for the benchmark's ceiling)."""
        return self.w_first.nbytes + sum(w.nbytes for w in self.w_upper) + self.head_w.nbytes

    # ------------------------------------------------------------ stepping

    def _cell(self, gates: np.ndarray, layer: int) -> None:
        """Given pre-activations (i/2, f/2, o/2, g), update this layer's c and h in place."""
        h = self.hidden
        c_row = self.state[1, layer]
        h_row = self.state[0, layer]
        np.tanh(gates, out=gates)
        sig = gates[: 3 * h]
        sig *= 0.5
        sig += 0.5
        c_row *= gates[h : 2 * h]
        np.multiply(gates[:h], gates[3 * h :], out=self._scratch)
        c_row += self._scratch
        np.tanh(c_row, out=h_row)
        h_row *= gates[2 * h : 3 * h]

    def feed(self, char_id: int) -> None:
        """Read one character."""
        gates = self._gates
        h = self.hidden
        np.dot(self.w_first, self.state[0, 0], out=gates)
        gates += self.input_table[char_id]
        self._cell(gates, 0)
        for k in range(1, self.layers):
            np.dot(self.w_upper[k - 1], self._h_flat[(k - 1) * h : (k + 1) * h], out=gates)
            gates += self.b_upper[k - 1]
            self._cell(gates, k)
        self._logits_valid = False

    def feed_many(self, ids) -> None:
        """Read a sequence, PRIME_CHUNK characters at a time: memory stays bounded whatever
        the length, and each chunk's input projections are one matrix product per layer."""
        for _ in self.prime(ids):
            pass

    def prime(self, ids):
        """Read a sequence chunk by chunk, yielding the count read so far after each chunk;
        a caller that stops iterating leaves the state of having read exactly that many."""
        ids = np.asarray(ids, dtype=np.int64)
        for start in range(0, len(ids), PRIME_CHUNK):
            self._feed_chunk(ids[start : start + PRIME_CHUNK])
            yield min(len(ids), start + PRIME_CHUNK)

    def _feed_chunk(self, ids: np.ndarray) -> None:
        if len(ids) < 32:  # not worth the layer-by-layer set-up
            for i in ids:
                self.feed(int(i))
            return
        h = self.hidden
        inputs = self.input_table[ids]  # (T, 4H): layer 0's projected inputs
        gates = self._gates
        for k in range(self.layers):
            recurrent = self.w_first if k == 0 else self._recurrent_upper(k)
            outputs = np.empty((len(ids), h), dtype=np.float32)
            h_row = self.state[0, k]
            for t in range(len(ids)):
                np.dot(recurrent, h_row, out=gates)
                gates += inputs[t]
                self._cell(gates, k)
                outputs[t] = h_row
            if k + 1 < self.layers:
                inputs = outputs @ self.w_upper[k][:, :h].T
                inputs += self.b_upper[k]
        self._logits_valid = False

    def _recurrent_upper(self, layer: int) -> np.ndarray:
        """W_hh of an upper layer as its own contiguous matrix: numpy multiplies the strided
        half of the fused matrix three times slower. Made on first use, then kept."""
        return self._half(layer, self.hidden, 2 * self.hidden)

    def _input_upper(self, layer: int) -> np.ndarray:
        """W_ih of an upper layer as its own contiguous matrix (beam search)."""
        return self._half(layer, 0, self.hidden)

    def _half(self, layer: int, start: int, end: int) -> np.ndarray:
        key = (layer, start)
        if key not in self._halves:
            self._halves[key] = np.ascontiguousarray(self.w_upper[layer - 1][:, start:end])
        return self._halves[key]

    def logits(self) -> np.ndarray:
        """Next-character logits from the current state (a view: copy it to keep it)."""
        if not self._logits_valid:
            np.dot(self.head_w, self.state[0, -1], out=self._logits)
            self._logits += self.head_b
            self._logits_valid = True
        return self._logits

    def feed_batch(
        self, states: np.ndarray, ids: np.ndarray, parents: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Several states at once (beam search, streams served together). Child b reads
        ids[b] from the state states[parents[b]] (states (P, 2, layers, hidden); parents
        defaults to one child per state). Returns the children's states and next-character logits (B, vocab); the
        engine's own state is untouched. Each weight matrix is read once for all states, and
        a parent's recurrent products are computed once however many children it has."""
        h = self.hidden
        each = parents is None  # one child per state: many streams stepped together
        parents = np.arange(len(ids)) if each else np.asarray(parents)
        states = states.astype(np.float32, copy=False)
        out = np.empty((len(ids), 2, self.layers, h), dtype=np.float32)
        below = None
        for k in range(self.layers):
            if k == 0 and each:
                gates = states[:, 0, 0] @ self.w_first.T
                gates += self.input_table[ids]
            elif k == 0:
                gates = _product(self.w_first, states[:, 0, 0])[parents] + self.input_table[ids]
            elif each:  # [h_{k-1}; h_k] times the fused matrix, as feed() does: one product
                gates = np.concatenate([below, states[:, 0, k]], axis=1) @ self.w_upper[k - 1].T
                gates += self.b_upper[k - 1]
            else:
                recurrent = _product(self._recurrent_upper(k), states[:, 0, k])[parents]
                gates = _product(self._input_upper(k), below) + recurrent + self.b_upper[k - 1]
            np.tanh(gates, out=gates)
            sig = gates[:, : 3 * h]
            sig *= 0.5
            sig += 0.5
            c = states[parents, 1, k] * gates[:, h : 2 * h] + gates[:, :h] * gates[:, 3 * h :]
            out[:, 1, k] = c
            out[:, 0, k] = np.tanh(c) * gates[:, 2 * h : 3 * h]
            below = out[:, 0, k]
        logits = below @ self.head_w.T
        logits += self.head_b
        return out, logits.astype(np.float64)

    def logits_after(self, ids) -> np.ndarray:
        """Logits after each position of ids, fed from the current state: shape (len, vocab)."""
        out = np.empty((len(ids), len(self.vocab)), dtype=np.float32)
        for t, i in enumerate(ids):
            self.feed(int(i))
            out[t] = self.logits()
        return out
