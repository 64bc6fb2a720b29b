"""Text files -> character ids: reading, the held-out split, and training batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charchat.errors import CharchatError
from charchat.vocab import Vocab

VAL_CONTEXT = 256  # characters read before a held-out stretch, as `eval` would have read them


@dataclass(frozen=True)
class Segment:
    """Held-out ids to score: ids[start:], read after ids[:start] (the text just before it in
    the same document, never across a file boundary)."""

    ids: np.ndarray
    start: int

    @property
    def scored(self) -> np.ndarray:
        return self.ids[self.start :]


@dataclass
class Corpus:
    vocab: Vocab
    train: np.ndarray  # ids learnt from (uint8 or uint16)
    val: list[Segment]  # held out
    name: str
    sha256: str
    documents: int = 1

    @classmethod
    def from_text(cls, text: str, name: str, val_fraction: float, pieces: int = 1) -> Corpus:
        from charchat.train.textfiles import EncodedText

        return cls.from_encoded(EncodedText.from_text(text, name), val_fraction, pieces)

    @classmethod
    def from_encoded(cls, encoded, val_fraction: float, pieces: int = 1) -> Corpus:
        """Hold out val_fraction of the text: from the end, or in `pieces` evenly spaced
        stretches, so that a bounded sample leaves the model all the rest (the end included).
        A held-out stretch that spans two files is scored as two."""
        ids = encoded.ids
        n_val = int(len(ids) * val_fraction)
        if val_fraction > 0 and n_val < 2 * max(1, pieces):
            raise CharchatError("the corpus is too short to hold out a validation part")
        if n_val == 0:
            spans = []
        elif pieces <= 1:
            spans = [(len(ids) - n_val, len(ids))]
        else:
            size = n_val // pieces
            starts = [int((i + 0.5) * len(ids) / pieces) for i in range(pieces)]
            spans = [(a, a + size) for a in starts]
        held = np.zeros(len(ids), dtype=bool)
        segments = []
        for a, b in spans:
            held[a:b] = True
            for doc in encoded.documents:
                lo, hi = max(a, doc.start), min(b, doc.end)
                if hi > lo:
                    context = max(doc.start, lo - VAL_CONTEXT)
                    segments.append(Segment(ids[context:hi], lo - context))
        train = ids[~held] if n_val else np.asarray(ids)
        return cls(
            encoded.vocab, train, segments, encoded.name, encoded.sha256, len(encoded.documents)
        )

    @property
    def val_chars(self) -> int:
        return sum(len(s.scored) for s in self.val)

    @property
    def chars(self) -> int:
        return len(self.train) + self.val_chars


class Batches:
    """Contiguous streams through the training ids, one window at a time (truncated BPTT).

    Each of `batch_size` streams reads its own stretch of the text in order, so the hidden
    state can carry from one window to the next. Each epoch starts at an offset fixed by
    (seed, epoch), so the window boundaries move from pass to pass. With several processes
    (`world`), the text is cut into batch_size x world streams and each process reads its own.
    """

    def __init__(
        self, train: np.ndarray, batch_size: int, seq_len: int, seed: int, rank=0, world=1
    ):
        streams = batch_size * world
        needed = streams * (seq_len + 1) + seq_len
        if len(train) < needed:
            raise CharchatError(
                f"the corpus is too short: its training part has {len(train)} characters, and "
                f"--batch-size {batch_size} with --seq-len {seq_len} needs at least {needed}"
                + (f" ({world} processes)" if world > 1 else "")
            )
        self.train, self.batch_size, self.seq_len, self.seed = train, batch_size, seq_len, seed
        self.streams, self.rows = streams, slice(rank * batch_size, (rank + 1) * batch_size)
        self.per_epoch = (len(train) - seq_len - 1) // streams // seq_len
        self._epoch = -1

    def window(self, epoch: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets, each (batch_size, seq_len), of window `batch` in `epoch`."""
        if epoch != self._epoch:
            offset = int(np.random.default_rng([self.seed, epoch]).integers(0, self.seq_len))
            length = self.per_epoch * self.seq_len
            span = self.train[offset : offset + self.streams * length + 1]
            self._x = span[:-1].reshape(self.streams, length)[self.rows]
            self._y = span[1:].reshape(self.streams, length)[self.rows]
            self._epoch = epoch
        a = batch * self.seq_len
        return self._x[:, a : a + self.seq_len], self._y[:, a : a + self.seq_len]
