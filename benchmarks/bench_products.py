"""The matrix products of a beam step: one 2048 x K matrix (a 512-unit layer's gates) times a
few states, as one numpy product and cut into row blocks, against one matrix-vector product.

    python benchmarks/bench_products.py [--states 6 8] [--rows 64 128 216 256]

"alone" repeats one matrix, which then stays in the core's own cache; "in turn" cycles
through three, as a step of the default model does, so that each comes from the shared
cache. Microseconds per product, best of 7 rounds.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as charchat does, before numpy loads

import numpy as np  # noqa: E402
from machine import best_us, cpu_name  # noqa: E402


def blocked(w: np.ndarray, columns: np.ndarray, out: np.ndarray, rows: int) -> None:
    for a in range(0, w.shape[0], rows):
        np.matmul(w[a : a + rows], columns, out=out[a : a + rows])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--states", type=int, nargs="+", default=[6, 8])
    parser.add_argument("--rows", type=int, nargs="+", default=[64, 128, 216, 256])
    parser.add_argument("--inputs", type=int, nargs="+", default=[512, 1024])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"CPU: {cpu_name()}; microseconds per product")
    for k in args.inputs:
        matrices = [rng.standard_normal((2048, k), dtype=np.float32) for _ in range(3)]
        vector = rng.standard_normal(k, dtype=np.float32)
        for label, used in (("alone", matrices[:1]), ("in turn", matrices)):
            per = len(used)
            matvec = best_us(lambda u=used, v=vector: [w @ v for w in u]) / per
            for n in args.states:
                columns = np.ascontiguousarray(rng.standard_normal((k, n), dtype=np.float32))
                out = np.empty((2048, n), dtype=np.float32)
                whole = best_us(lambda u=used, c=columns: [w @ c for w in u]) / per
                cells = [f"matrix-vector {matvec:.0f}", f"one product {whole:.0f}"]
                for rows in args.rows:
                    t = best_us(
                        lambda u=used, c=columns, o=out, r=rows: [blocked(w, c, o, r) for w in u]
                    )
                    cells.append(f"{rows} rows {t / per:.0f}")
                print(f"K={k} states={n} {label:<8} " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
