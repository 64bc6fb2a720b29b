"""Pacing costs the engine nothing at /speed 0: characters a second of a turn consumed bare
(the session's generator, nothing shown) against the same turn through the REPL's streaming
loop (renderer, pacer at 0, status bar, key polling), same model, same seed, same run.

    python benchmarks/bench_pace.py [--model NAME] [--chars 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import charchat  # noqa: F401  (first: it pins numpy's BLAS threads before numpy loads)
from charchat.chat.session import Session
from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.settings import Settings
from charchat.terminal.repl import Repl


def bare(model, chars: int) -> float:
    session = Session(model, Settings(temperature=0.8), chars, 1)
    start = time.perf_counter()
    for _ in session.handle("The "):
        pass
    return chars / (time.perf_counter() - start)


def through_the_repl(model, chars: int) -> float:
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    session = Session(model, Settings(temperature=0.8), chars, 1, speed=0)
    with create_pipe_input() as keys:
        repl = Repl(
            session,
            output=DummyOutput(),
            out=io.StringIO(),
            colour=True,
            history=InMemoryHistory(),
            keys=keys,
        )
        start = time.perf_counter()
        repl._stream(session.handle("The "))
        return chars / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--chars", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model = load_model(resolve_model(args.model))
    ratios = []
    for _ in range(args.runs):  # alternate, so drift hits both alike
        a, b = bare(model, args.chars), through_the_repl(model, args.chars)
        ratios.append(b / a)
        print(f"bare {a:,.0f} chars/s   through the REPL at /speed 0 {b:,.0f} chars/s")
    print(f"median ratio (REPL / bare): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
