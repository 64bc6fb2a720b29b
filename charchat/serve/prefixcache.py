"""States by the text that led to them, so that a prompt extending an earlier one (a client
that sends the whole growing text each time) is read only from where that one ended."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

DEFAULT_BYTES = 64 << 20
SHORTEST = 64  # shorter texts are read again: cheaper than keeping them


class PrefixCache:
    """Least recently used out, within `budget` bytes (the texts' and the states' together).

    Keys are the text as the model read it; a state is stored for the text it is the state
    of having read, from the model's starting state. Thread-safe."""

    def __init__(self, budget: int = DEFAULT_BYTES):
        self.budget = budget
        self.used = 0
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def _size(text: str, state: np.ndarray) -> int:
        return len(text.encode("utf-8")) + state.nbytes + 100

    def put(self, text: str, state: np.ndarray) -> None:
        size = self._size(text, state)
        if len(text) < SHORTEST or size > self.budget:
            return
        with self._lock:
            if text in self._entries:
                self._entries.move_to_end(text)
                return
            self._entries[text] = state.copy()
            self.used += size
            while self.used > self.budget:
                old, old_state = self._entries.popitem(last=False)
                self.used -= self._size(old, old_state)

    def longest_prefix(self, text: str) -> tuple[int, np.ndarray | None]:
        """(length, state) of the longest stored text that `text` begins with; (0, None)."""
        with self._lock:
            best = None
            for key in self._entries:
                longer = best is None or len(key) > len(best)
                if longer and len(key) <= len(text) and text.startswith(key):
                    best = key
            if best is None:
                self.misses += 1
                return 0, None
            self.hits += 1
            self._entries.move_to_end(best)
            return len(best), self._entries[best].copy()

    def __len__(self) -> int:
        return len(self._entries)
