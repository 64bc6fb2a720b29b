"""Training throughput (characters per second) for the presets and the knobs torch offers.

    python benchmarks/bench_train.py [--steps 6]

Times full optimizer steps (forward, backward, clipping, AdamW) of CharLSTM on random data,
the way `charchat train` runs them, for each preset and for oneDNN (mkldnn) on and off,
batch size and thread count. Record the table in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from charchat.model import CharLSTM
from charchat.recipe import PRESETS

VOCAB = 84


def chars_per_second(
    preset: str, batch: int, seq: int, mkldnn: bool, threads: int, steps: int
) -> float:
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn
    torch.manual_seed(0)
    module = CharLSTM(VOCAB, PRESETS[preset]).train()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    x = torch.randint(0, VOCAB, (batch, seq))
    y = torch.randint(0, VOCAB, (batch, seq))

    def step():
        logits, _ = module(x)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch * seq / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    cores = torch.get_num_threads()
    configs = [
        ("small", 64, 128, True, cores),
        ("medium", 64, 128, True, cores),
        ("medium", 64, 128, False, cores),
        ("medium", 128, 128, True, cores),
        ("medium", 128, 128, False, cores),
        ("medium", 64, 128, True, 1),
        ("large", 64, 128, True, cores),
    ]
    print(f"{'preset':<8} {'batch':>5} {'seq':>4} {'mkldnn':>6} {'threads':>7} {'chars/s':>9}")
    for preset, batch, seq, mkldnn, threads in configs:
        rate = chars_per_second(preset, batch, seq, mkldnn, threads, args.steps)
        print(f"{preset:<8} {batch:>5} {seq:>4} {mkldnn!s:>6} {threads:>7} {rate:>9,.0f}")


if __name__ == "__main__":
    main()
