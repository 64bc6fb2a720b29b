"""Generation-path benchmarks: start-up, piped wall time, generation rate, priming, memory.

    python benchmarks/bench_engine.py [--model NAME|PATH] [--runs 7]

Every figure is measured in this run; rates are also given as ratios to baselines measured
in the same run (a plain nn.LSTM one-step-per-call loop, and the machine's matrix-vector
ceiling over the same weight bytes). Exits non-zero only when it cannot run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np  # noqa: I001

import charchat  # noqa: F401  (first: it pins numpy's BLAS threads before numpy loads)
from charchat.chat.engine import Engine
from charchat.chat.sampling import sample
from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.settings import Settings

ENV = {**os.environ, "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}


def median_seconds(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def prompt_drawn_once(model: str) -> tuple[float, int]:
    """Seconds from launch on a pty to the prompt, and the idle REPL's resident memory (KB)."""
    import pexpect

    start = time.perf_counter()
    child = pexpect.spawn(
        sys.executable, ["-m", "charchat", "-m", model], env=ENV, dimensions=(24, 80), timeout=60
    )
    child.expect("›".encode())
    elapsed = time.perf_counter() - start
    time.sleep(0.3)
    rss = 0
    with open(f"/proc/{child.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    return elapsed, rss


def piped_once(model: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "charchat", "-m", model, "-n", "200"],
        input=b"the will to\n",
        stdout=subprocess.DEVNULL,
        check=True,
    )


def engine_rate(model_file, chars: int) -> float:
    engine = Engine(model_file)
    engine.feed_many(model_file.vocab.encode("the will to ").ids)
    rng = np.random.default_rng(0)
    settings = Settings(temperature=0.8)
    t = time.perf_counter()
    for _ in range(chars):
        engine.feed(sample(engine.logits(), settings, rng))
    return chars / (time.perf_counter() - t)


def torch_loop(model_file):
    """A function chars -> rate of the plain nn.LSTM loop: one module call per character."""
    import torch

    from charchat.train.model import CharLSTM

    module = CharLSTM.from_file(model_file).eval()
    rng = np.random.default_rng(0)
    settings = Settings(temperature=0.8)

    def rate(chars: int) -> float:
        state = None
        x = torch.tensor([[0]])
        with torch.no_grad():
            t = time.perf_counter()
            for _ in range(chars):
                logits, state = module(x, state)
                x = torch.tensor([[sample(logits[0, -1].numpy(), settings, rng)]])
            return chars / (time.perf_counter() - t)

    rate(20)  # warm-up: first calls pay for torch's lazy set-up
    return rate


def ceiling_rate(model_file, passes: int) -> float:
    """Matrix-vector passes per second over one matrix holding all the bytes a step reads."""
    e = Engine(model_file)
    cols = e.hidden
    rows = e.step_bytes // 4 // cols
    matrix = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    vector = np.ones(cols, dtype=np.float32)
    out = np.empty(rows, dtype=np.float32)
    for _ in range(20):
        np.dot(matrix, vector, out=out)
    t = time.perf_counter()
    for _ in range(passes):
        np.dot(matrix, vector, out=out)
    return passes / (time.perf_counter() - t)


def interleaved(model_file, rounds: int = 9) -> dict[str, float]:
    """Engine, ceiling and nn.LSTM loop rates and the ratios, in alternating short bursts.

    This machine's memory speed drifts by 2x from minute to minute; alternating keeps the
    three measurements under the same conditions, and the median ratios are what we report.
    """
    baseline = torch_loop(model_file)
    rows = []
    for _ in range(rounds):
        ours = engine_rate(model_file, 400)
        ceiling = ceiling_rate(model_file, 400)
        loop = baseline(100)
        rows.append((ours, ceiling, loop, ours / ceiling, ours / loop))
    columns = [statistics.median(column) for column in zip(*rows, strict=True)]
    return dict(zip(("ours", "ceiling", "loop", "share", "speed-up"), columns, strict=True))


def prime_seconds(model_file, n: int = 10_000) -> tuple[float, float]:
    """Seconds to read n characters, and the one-core floor: n times the recurrent
    matrix-vector products plus the upper layers' input projections (one matrix product
    each), which no order of work on one core can beat."""
    ids = np.random.default_rng(0).integers(0, len(model_file.vocab), n)
    engine = Engine(model_file)

    def prime():
        engine.reset()
        engine.feed_many(ids)

    seconds = median_seconds(prime, 5)
    recurrent = [engine.w_first] + [engine._recurrent_upper(k) for k in range(1, engine.layers)]
    out = np.empty(4 * engine.hidden, dtype=np.float32)
    h = np.ones(engine.hidden, dtype=np.float32)

    below = np.ones((n, engine.hidden), dtype=np.float32)

    def matrix_products_only():
        for _ in range(n):
            for w in recurrent:
                np.dot(w, h, out=out)
        for w in engine.w_upper:
            below @ w[:, : engine.hidden].T

    return seconds, median_seconds(matrix_products_only, 3)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    path = str(resolve_model(args.model))
    model_file = load_model(path)
    cfg = model_file.config
    print(f"model {path}: {cfg.layers}x{cfg.hidden}, {model_file.parameters:,} parameters")

    launches = [prompt_drawn_once(path) for _ in range(args.runs)]
    startup = statistics.median(t for t, _ in launches)
    rss_mb = statistics.median(r for _, r in launches) / 1024
    piped = median_seconds(lambda: piped_once(path), args.runs)
    rates = interleaved(model_file)
    prime, prime_floor = prime_seconds(model_file)

    rows = [
        ("launch on a pty -> prompt drawn (median)", f"{startup:.3f} s", "<= 0.35 s"),
        ("echo seed | charchat -n 200 (median)", f"{piped:.3f} s", "<= 0.8 s"),
        ("generation rate, T=0.8 sampling", f"{rates['ours']:,.0f} chars/s", ""),
        ("  plain nn.LSTM one-step loop (same run)", f"{rates['loop']:,.0f} chars/s", ""),
        ("  ratio to the nn.LSTM loop", f"{rates['speed-up']:.1f}x", ">= 10x"),
        ("  matrix-vector ceiling, same bytes", f"{rates['ceiling']:,.0f} passes/s", ""),
        ("  share of the ceiling", f"{100 * rates['share']:.0f} %", ">= 50 %"),
        ("prime a 10,000-character seed", f"{prime:.3f} s", "<= 0.3 s"),
        ("  one-core floor: the matrix products alone", f"{prime_floor:.3f} s", ""),
        ("resident memory, idle REPL", f"{rss_mb:.0f} MB", "<= 120 MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'measured':>16}  target")
    for what, value, target in rows:
        print(f"{what:<{width}}  {value:>16}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
