"""Work that one numpy or re call can hold for seconds runs in a process of its own, so that
Ctrl+C (should_stop) or a time limit can end it at once: a thread cannot be interrupted."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from charchat.errors import Stopped

POLL_SECONDS = 0.05


class TookTooLong(Exception):
    """The process ran past its time limit and was ended."""


def run_apart(
    code: str,
    args: list[str],
    given: bytes | None,
    should_stop: Callable[[], bool],
    stopped: str,
    seconds: float | None = None,
) -> tuple[int, bytes]:
    """Run Python `code` in a new interpreter with `args`, `given` on its stdin; its exit code
    and stdout. Stopped(stopped) when should_stop() says so, TookTooLong after `seconds`."""
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while True:
            try:
                out, _ = process.communicate(given, timeout=POLL_SECONDS)
                return process.returncode, out
            except subprocess.TimeoutExpired:
                given = None  # already sent
            if should_stop():
                raise Stopped(stopped)
            if deadline is not None and time.monotonic() > deadline:
                raise TookTooLong
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
