"""The text a session's model has read, and the points a turn can be undone to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charchat import settings as spec
from charchat.errors import CharchatError

FLUSH_EVERY = 4096  # appended pieces gathered before they are joined


class Transcript:
    """Everything read since the last /reset, in order. Positions count from that start, but
    only the last `keep` characters are kept (the model's state has read them all), so that
    endless writing runs in flat memory. Appending does not copy what came before."""

    def __init__(self, keep: int | None = None) -> None:
        self.keep = spec.TRANSCRIPT_KEEP if keep is None else keep
        self._text = ""  # the kept part: positions start .. length
        self._pending: list[str] = []
        self._length = 0
        self.start = 0  # how many characters from the beginning are no longer kept

    def append(self, text: str) -> None:
        self._pending.append(text)
        self._length += len(text)
        if len(self._pending) >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._text += "".join(self._pending)
            self._pending.clear()
        if len(self._text) > self.keep + self.keep // 4:
            cut = len(self._text) - self.keep
            self._text = self._text[cut:]
            self.start += cut

    def text(self) -> str:
        """The kept text (all of it unless more than `keep` characters were read)."""
        self._flush()
        return self._text

    def tail(self, n: int) -> str:
        return self.text()[-n:] if n > 0 else ""

    def truncate(self, length: int) -> None:
        if length < self.start:
            raise CharchatError("that part of the transcript is no longer kept")
        self._text = self.text()[: length - self.start]
        self._length = length

    def __len__(self) -> int:
        return self._length


@dataclass
class Turn:
    """An undo point: the state and transcript length before a turn, and its prompt; and
    what was learnt before it taught anything (chat/adapting.py), if it did."""

    snapshot: np.ndarray
    transcript_length: int
    prompt: str = ""
    learning: object = None
