"""Measuring this machine: training speed (chars/s) at each precision and thread count.

A few optimizer steps of the 1x512 reference model on random data, exactly as training
runs them. The planner (plan.py) turns the best figure into a model size and a schedule.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charchat.modelfile import ModelConfig

REFERENCE = ModelConfig(layers=1, hidden=512, embedding=64, dropout=0.0)
BF16_MUST_WIN_BY = 1.1  # below this, noise: keep fp32
PROBE_MOST_SECONDS = 8.0  # on a busy machine, what is not measured by then is estimated
PROBE_SHARE = 0.1  # ...and never more than this share of a time budget
MEASURE_SECONDS = 0.4  # timed steps per measurement, after one untimed step
# the 2x512's speed as a share of the 1x512's, for when there is no time to measure it
# (bf16, two threads, this project's machine: 8,500 against 28,000 chars/s)
TWO_LAYER_SHARE = 0.3


def autocast(device: torch.device, precision: str):
    """bf16 or fp16 autocast for the forward pass; the weights and optimizer stay fp32."""
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=precision in ("bf16", "fp16"))


def half_precision_for(device: torch.device) -> str:
    """The reduced precision worth measuring here: bf16, or fp16 on GPUs without bf16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return "fp16"
    return "bf16"


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def chars_per_second(
    vocab_size: int,
    config: ModelConfig,
    batch: int,
    seq: int,
    precision: str,
    device: torch.device,
    steps: int = 3,
    seconds: float | None = None,
) -> float:
    """Characters a second of full training steps: `steps` timed steps, or with `seconds`,
    as many as fit in it (at least one, at most `steps`)."""
    from charchat.train.model import CharLSTM

    generator_state = torch.get_rng_state()
    try:
        torch.manual_seed(0)
        module = CharLSTM(vocab_size, config).to(device).train()
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
        x = torch.randint(0, vocab_size, (batch, seq), device=device)
        y = torch.randint(0, vocab_size, (batch, seq), device=device)

        def step():
            with autocast(device, precision):
                logits, _ = module(x)
                loss = F.cross_entropy(logits.reshape(-1, vocab_size).float(), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            loss.item()

        step()  # the first step allocates and picks kernels
        start = time.perf_counter()
        done = 0
        while done < steps:
            step()
            done += 1
            if seconds is not None and time.perf_counter() - start >= seconds:
                break
        return done * batch * seq / (time.perf_counter() - start)
    finally:
        torch.set_rng_state(generator_state)  # probing leaves the run's randomness alone


@dataclass(frozen=True)
class Measured:
    precision: str
    threads: int | None
    chars_per_second: float  # of the reference model at that precision and thread count
    table: dict  # "precision/threads" -> chars/s, everything measured

    def speeds(
        self, vocab_size: int, device: torch.device, batch=32, seq=64, deadline=None
    ) -> dict:
        """chars/s of each model the planner may choose, at the precision and threads found."""
        from charchat.train.plan import CANDIDATES

        return {
            name: self.speed_of(config, vocab_size, device, batch, seq, deadline)
            for name, config in CANDIDATES.items()
        }

    def speed_of(
        self, config: ModelConfig, vocab_size: int, device, batch=32, seq=64, deadline=None
    ) -> float:
        """chars/s of one model at the precision and threads found; past the deadline
        (time.monotonic()), estimated from the reference model's."""
        if config == REFERENCE:
            return self.chars_per_second
        if deadline is not None and time.monotonic() >= deadline:
            return self.chars_per_second * TWO_LAYER_SHARE * 2 / max(2, config.layers)
        return chars_per_second(
            vocab_size, config, batch, seq, self.precision, device, seconds=MEASURE_SECONDS
        )


def probe(
    vocab_size: int,
    device: torch.device,
    precision: str = "auto",
    threads: int | None = None,
    batch: int = 32,
    seq: int = 64,
    deadline: float | None = None,
) -> Measured:
    """The fastest precision and thread count for training here, within what was asked.

    One thread first (the safe choice on a busy machine), fp32 before bf16 at each; past
    the deadline (time.monotonic()), what was measured decides."""
    precisions = ["fp32", half_precision_for(device)] if precision == "auto" else [precision]
    if device.type != "cpu":
        thread_counts: list[int | None] = [None]
    elif threads is not None:
        thread_counts = [threads]
    else:
        thread_counts = sorted({1, available_cores()})
    table = {}
    for n in thread_counts:
        if n is not None:
            torch.set_num_threads(n)
        for p in precisions:
            if table and deadline is not None and time.monotonic() >= deadline:
                break
            try:
                table[(p, n)] = chars_per_second(
                    vocab_size, REFERENCE, batch, seq, p, device, seconds=MEASURE_SECONDS
                )
            except RuntimeError:  # this device cannot run bf16
                continue
    fp32 = {k: v for k, v in table.items() if k[0] == "fp32"}
    best = max(table, key=table.get)
    if best[0] != "fp32" and fp32 and table[best] < BF16_MUST_WIN_BY * max(fp32.values()):
        best = max(fp32, key=fp32.get)
    if best[1] is not None:
        torch.set_num_threads(best[1])
    shown = {f"{p}/{n or 'default'}": round(v) for (p, n), v in table.items()}
    return Measured(best[0], best[1], table[best], shown)
