"""The machine a figure came from, and the timer the benchmarks share (no torch or numpy
import: BLAS threads are set by charchat)."""

import time


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def best_us(run, repeat: int = 100, rounds: int = 7) -> float:
    """The fastest of `rounds` averages over `repeat` calls of run(), in microseconds (after
    one call to warm up)."""
    run()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            run()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1e6
