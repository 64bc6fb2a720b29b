"""Pacing streamed text: characters shown at a steady rate a person can read and steer.

The clock and sleep are injected, so tests run on a fake clock and never wait. While it
waits, the pacer polls for keys often enough that Ctrl+C and ↑/↓ act at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from charchat.settings import SPEED

POLL_SECONDS = 0.03  # keys are read at least this often while waiting
STEP = 1.5  # ←/→ divide or multiply the pace by this
MOST_BEHIND = 0.25  # after a pause or a slow step, catch up by at most this many seconds


class Pacer:
    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rate = rate  # characters a second; 0: no waiting
        self.clock, self.sleep = clock, sleep
        self.due: float | None = None  # when the next character may be shown

    def start(self) -> None:
        self.due = None

    def wait(self, poll: Callable[[], bool]) -> bool:
        """Wait until the next character is due, calling poll() meanwhile; True as soon as
        poll() asks to stop. With no pace, poll once and go on."""
        if poll():
            return True
        if not self.rate:
            return False
        now = self.clock()
        if self.due is None or self.due < now - MOST_BEHIND:
            self.due = now
        while (left := self.due - self.clock()) > 0:
            self.sleep(min(left, POLL_SECONDS))
            if poll():
                return True
        self.due += 1 / self.rate if self.rate else 0
        return False

    def faster(self) -> None:
        self.rate = min(float(SPEED.high), round(self.rate * STEP, 1)) if self.rate else 0.0

    def slower(self) -> None:
        self.rate = max(1.0, round(self.rate / STEP, 1)) if self.rate else float(SPEED.default)
