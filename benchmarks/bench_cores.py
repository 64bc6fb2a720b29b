"""Do this machine's cores share their arithmetic? A compute-bound product (a 256 x 256
matrix times 256 x 256, in each core's own cache) timed alone and then in two processes at
once. Separate physical cores keep their speed side by side; two hardware threads of one
core share its multiply units and slow to about half.

    python benchmarks/bench_cores.py [--seconds 5]

Reported: products per second of one process alone, and of each of two side by side. Run it
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from machine import cpu_name  # noqa: E402


def products_per_second(seconds: float, core: int | None, out) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    a = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)
    b = a.copy()
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    out.put(count / (time.perf_counter() - start))


def run(cores: list[int | None], seconds: float) -> list[float]:
    queue = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=products_per_second, args=(seconds, core, queue))
        for core in cores
    ]
    for w in workers:
        w.start()
    rates = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [None, None]
    alone = run(cores[:1], args.seconds)[0]
    pair = run(cores[:2], args.seconds)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores as the system counts them")
    print(f"alone: {alone:,.0f} products/s (256x256, one thread)")
    print(
        f"two side by side: {pair[0]:,.0f} and {pair[1]:,.0f} products/s "
        f"({sum(pair) / alone:.2f}x the work of one alone)"
    )


if __name__ == "__main__":
    main()
