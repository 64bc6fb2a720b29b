"""What watching costs generation: /cells and /novelty off, and on.

    python benchmarks/bench_cells.py [--model nietzsche] [--chars 3000] [--rounds 5]

Generates unpaced from the same state with the same random numbers in alternating rounds:
- "without the hooks": a session whose per-character hooks for cells and novelty are taken
  out (what generation was before they existed),
- "off": the session as it is, with /cells and /novelty off,
- "/cells 2 1", and "/novelty on" (the bundled corpus must be found: --corpus).
Reports the median characters per second of each and the ratio to "without the hooks".
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from machine import cpu_name

from charchat.chat.session import Session
from charchat.events import Generated
from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.settings import Settings


class WithoutHooks(Session):
    def _cell_value(self):
        return None

    def _wrote(self, index, char, ngrams):
        self.engine.feed(index)
        self._transcript.append(char)
        return False


def speed(session: Session, chars: int) -> float:
    start = time.perf_counter()
    n = sum(isinstance(e, Generated) for e in session.turn("The ", chars))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="nietzsche")
    parser.add_argument("--corpus", type=Path, help="the model's training text, for /novelty")
    parser.add_argument("--chars", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = load_model(resolve_model(args.model))

    def make(kind: str) -> Session:
        cls = WithoutHooks if kind == "without the hooks" else Session
        session = cls(model, Settings(temperature=0.8), seed=1)
        if kind == "/cells 2 1":
            list(session.handle("/cells 2 1"))
        if kind == "/novelty on":
            list(session.handle(f"/novelty on {args.corpus}"))
        return session

    kinds = ["without the hooks", "off", "/cells 2 1"] + (["/novelty on"] if args.corpus else [])
    sessions = {k: make(k) for k in kinds}
    runs: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            session = sessions[kind]
            list(session.handle("/reset"))
            runs[kind].append(speed(session, args.chars))
    base = statistics.median(runs["without the hooks"])
    print(f"CPU: {cpu_name()}; model {model.name}; {args.chars} characters x {args.rounds}")
    print("| generation | chars/s (median) | against without the hooks |")
    print("|---|---:|---:|")
    for kind in kinds:
        median = statistics.median(runs[kind])
        print(f"| {kind} | {median:,.0f} | {median / base:.3f} |")


if __name__ == "__main__":
    main()
