"""Endless writing in flat memory: a session with /len inf, unpaced, for some minutes, its
resident memory read every few seconds.

    python benchmarks/bench_endless.py [--model NAME] [--minutes 10]

Writes through the same renderer the REPL uses (into a sink), so the transcript, the undo
point and the rendering are all exercised; prints RSS over time and the characters written.
"""

from __future__ import annotations

import argparse
import io
import time

import charchat  # noqa: F401  (first: it pins numpy's BLAS threads before numpy loads)
from charchat.chat.session import Session
from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.settings import Settings
from charchat.terminal.render import Renderer


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Sink(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()
    session = Session(load_model(resolve_model(args.model)), Settings(temperature=1.0), 400, 1)
    render = Renderer(Sink(), terminal=True, colour=True)
    list(session.handle("/len inf"))
    start, last = time.monotonic(), 0.0
    print(f"{'seconds':>8} {'characters':>12} {'RSS MB':>8}")
    for written, event in enumerate(session.handle("The "), start=1):
        render.show(event)
        now = time.monotonic() - start
        if now - last >= 30 or written == 1:
            print(f"{now:8.0f} {written:12,} {rss_mb():8.1f}", flush=True)
            last = now
        if now >= args.minutes * 60:
            session.request_stop()
    print(f"transcript kept: {len(session.transcript):,} of {session.transcript_length:,}")


if __name__ == "__main__":
    main()
