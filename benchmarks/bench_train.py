"""Training throughput (characters per second): fp32 against bf16 autocast, for the sizes the
planner chooses and the presets, with one thread and with all cores.

    python benchmarks/bench_train.py [--steps 8] [--rounds 3]

Times full optimizer steps (forward, backward, clipping, AdamW) of CharLSTM on random data,
exactly as `charchat train` runs them (charchat.train.probe.chars_per_second). fp32 and bf16 are
measured in alternating rounds and the median of each is reported, so that the machine's
drift hits both alike. Record the table in benchmarks/README.md with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from machine import cpu_name

from charchat.modelfile import ModelConfig
from charchat.train.probe import available_cores, chars_per_second
from charchat.train.recipe import PRESETS

VOCAB = 65
SIZES = {
    "1x512 (planned, short budgets)": (ModelConfig(1, 512, 64, 0.0), 32, 64),
    "2x512 (planned, long budgets)": (ModelConfig(2, 512, 64, 0.0), 32, 64),
    "medium preset (2x512)": (PRESETS["medium"], 64, 128),
    "small preset (2x256)": (PRESETS["small"], 64, 128),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    with open("/proc/cpuinfo") as f:
        bf16_flag = "avx512_bf16" in f.read()
    print(f"CPU: {cpu_name()}, avx512_bf16: {bf16_flag}, torch {torch.__version__}")
    print(f"{'model':<32} {'batch':>8} {'threads':>7} {'fp32':>9} {'bf16':>9} {'ratio':>6}")
    for name, (config, batch, seq) in SIZES.items():
        for threads in sorted({1, available_cores()}):
            torch.set_num_threads(threads)
            rates = {"fp32": [], "bf16": []}
            for _ in range(args.rounds):
                for precision in rates:
                    rates[precision].append(
                        chars_per_second(VOCAB, config, batch, seq, precision, cpu, args.steps)
                    )
            fp32, bf16 = (statistics.median(rates[p]) for p in ("fp32", "bf16"))
            print(
                f"{name:<32} {f'{batch}x{seq}':>8} {threads:>7} {fp32:>9,.0f} {bf16:>9,.0f} "
                f"{bf16 / fp32:>5.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
