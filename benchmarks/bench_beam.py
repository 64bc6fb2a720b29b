"""Beam search's cost per character against greedy's, on the same model and state.

    python benchmarks/bench_beam.py [--model NAME] [--chars 400] [--widths 1 4 8 16]

Greedy here is the session's own generation at T = 0 (one state, one matrix-vector product
per layer and character); beam W steps all W states as one matrix product per layer. The
ratio is per character written: the median of the paired runs' ratios, and the ratio of the
fastest run of each (steadier on a machine whose speed drifts). The issue's target: beam 8
at most 3x greedy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import charchat  # noqa: F401  (first: it pins numpy's BLAS threads before numpy loads)
from charchat.chat.decoding import beam_search
from charchat.chat.session import Session
from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.settings import Settings


def greedy_seconds(model, chars: int) -> float:
    session = Session(model, Settings(temperature=0.0, mode="greedy"), chars, 1)
    list(session.handle("The "))  # warm
    start = time.perf_counter()
    for _ in session.handle(""):
        pass
    return time.perf_counter() - start


def beam_seconds(model, chars: int, width: int) -> float:
    session = Session(model, Settings(mode="beam", beam_width=width), chars, 1)
    list(session.handle("The "))
    start = time.perf_counter()
    beam_search(session.engine, width, chars, "", ())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--chars", type=int, default=400)
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model = load_model(resolve_model(args.model))
    print(
        f"{'width':>5} {'greedy s':>9} {'beam s':>8} {'per char, x greedy':>19} "
        f"{'fastest runs, x':>16}"
    )
    for width in args.widths:
        ratios, g_all, b_all = [], [], []
        for _ in range(args.runs):
            g, b = greedy_seconds(model, args.chars), beam_seconds(model, args.chars, width)
            g_all.append(g)
            b_all.append(b)
            ratios.append(b / g)
        print(
            f"{width:>5} {statistics.median(g_all):>9.3f} {statistics.median(b_all):>8.3f} "
            f"{statistics.median(ratios):>18.2f}x {min(b_all) / min(g_all):>15.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
