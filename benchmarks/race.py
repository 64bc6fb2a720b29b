"""The training race: `charchat train TEXT --minutes M` against a small character
transformer (nanoGPT's published CPU settings for shakespeare_char) and a plain LSTM recipe,
each given the same wall time, one after the other, on the same split.

    python benchmarks/race.py CORPUS --minutes 1.5 5 15 [--only charchat,transformer,plain]

The first 90 % of CORPUS is learnt and the last 10 % scored, with the whole held-out text in
order: the LSTMs carry their state through it; the transformer slides a 64-character window
32 characters at a time, so every character but the first 32 is predicted from at least 32
before it. Results are printed as a table and appended, one JSON line per run, to
benchmarks/race.jsonl. No run is part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from charchat.modelfile import ModelConfig, load_model
from charchat.train.evaluate import evaluate_text, sequential_nats
from charchat.train.model import CharLSTM

HERE = Path(__file__).resolve().parent


def split(corpus: Path) -> tuple[str, str]:
    text = corpus.read_text(encoding="utf-8")
    cut = len(text) - len(text) // 10
    return text[:cut], text[cut:]


def encode(train: str, test: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    chars = sorted(set(train))
    index = {c: i for i, c in enumerate(chars)}
    known = [index[c] for c in test if c in index]  # as `charchat eval` does: unknown skipped
    return chars, np.array([index[c] for c in train]), np.array(known)


def cosine(step_fraction: float, warmup_done: bool, low: float) -> float:
    if not warmup_done:
        return 1.0
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * min(1.0, step_fraction)))


# ---------------------------------------------------------------- the contenders


def run_charchat(
    train_path: Path, test: str, minutes: float, workdir: Path, extra: list[str]
) -> dict:
    out = workdir / "charchat.safetensors"
    command = [
        sys.executable,
        "-m",
        "charchat",
        "train",
        str(train_path),
        "--minutes",
        f"{minutes:g}",
    ]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *extra, "--out", str(out), "--force"], capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    plan = next((line for line in done.stderr.splitlines() if line.startswith("plan:")), "")
    torch.set_num_threads(2)
    result = evaluate_text(load_model(out), test)
    card = load_model(out).card
    return {
        "nats": result.nats_per_char,
        "wall_s": wall,
        "chars_trained_on": card["chars_trained_on"],
        "plan": plan,
    }


def run_plain(train_ids: np.ndarray, test_ids: np.ndarray, vocab: int, minutes: float) -> dict:
    """1x512 LSTM (embedding 64), batch 32 x 64 with the state carried, AdamW 4e-3 (0.9/0.99,
    decay 0.01), 30 warm-up steps, cosine to 10 % over the wall-clock budget, clip 1, fp32,
    two threads, no dropout, no validation."""
    torch.set_num_threads(2)
    torch.manual_seed(1234)
    module = CharLSTM(vocab, ModelConfig(1, 512, 64, 0.0)).train()
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=4e-3, betas=(0.9, 0.99), weight_decay=0.01
    )
    batch, seq = 32, 64
    length = (len(train_ids) - 1) // batch
    x_all = torch.as_tensor(train_ids[: batch * length].reshape(batch, length))
    y_all = torch.as_tensor(train_ids[1 : batch * length + 1].reshape(batch, length))
    budget, started, step, pos, state, chars = minutes * 60, time.perf_counter(), 0, 0, None, 0
    while (elapsed := time.perf_counter() - started) < budget:
        if pos + seq > length:
            pos, state = 0, None
        factor = (step + 1) / 30 if step < 30 else cosine(elapsed / budget, True, 0.1)
        for group in optimizer.param_groups:
            group["lr"] = 4e-3 * factor
        logits, state = module(x_all[:, pos : pos + seq], state)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y_all[:, pos : pos + seq].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimizer.step()
        state = (state[0].detach(), state[1].detach())
        pos, step, chars = pos + seq, step + 1, chars + batch * seq
    wall = time.perf_counter() - started
    nats = sequential_nats(module, test_ids, torch.device("cpu")) / (len(test_ids) - 1)
    return {"nats": nats, "wall_s": wall, "chars_trained_on": chars}


class Block(nn.Module):
    def __init__(self, width: int, heads: int, context: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )
        self.heads = heads

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(c, dim=2)
        shape = (b, t, self.heads, c // self.heads)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.norm2(x))


class CharTransformer(nn.Module):
    """A GPT-style decoder: token + position embeddings, pre-norm blocks, tied output."""

    def __init__(self, vocab: int, layers=4, heads=4, width=128, context=64):
        super().__init__()
        self.token, self.position = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads, context) for _ in range(layers)))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.token.weight
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1])
        return self.head(self.norm(self.blocks(self.token(ids) + self.position(positions))))


def run_transformer(
    train_ids: np.ndarray, test_ids: np.ndarray, vocab: int, minutes: float
) -> dict:
    """nanoGPT's CPU settings for shakespeare_char: 4 layers, 4 heads, width 128, context 64,
    batch 12, AdamW 1e-3 (0.9/0.99, decay 0.1) with 100 warm-up steps and cosine decay to 1e-4
    (fitted to the wall-clock budget), clip 1, dropout 0; random windows, as nanoGPT draws."""
    torch.set_num_threads(2)
    torch.manual_seed(1234)
    context, batch = 64, 12
    model = CharTransformer(vocab).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
        lr=1e-3,
        betas=(0.9, 0.99),
    )
    data = torch.as_tensor(train_ids)
    generator = torch.Generator().manual_seed(1234)
    budget, started, step, chars = minutes * 60, time.perf_counter(), 0, 0
    while (elapsed := time.perf_counter() - started) < budget:
        factor = (step + 1) / 100 if step < 100 else cosine(elapsed / budget, True, 0.1)
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * factor
        starts = torch.randint(0, len(data) - context - 1, (batch,), generator=generator)
        x = torch.stack([data[s : s + context] for s in starts])
        y = torch.stack([data[s + 1 : s + context + 1] for s in starts])
        loss = F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step, chars = step + 1, chars + batch * context
    wall = time.perf_counter() - started
    return {"nats": sliding_window_nats(model, test_ids), "wall_s": wall, "chars_trained_on": chars}


@torch.no_grad()
def sliding_window_nats(model: CharTransformer, ids: np.ndarray, context=64, stride=32) -> float:
    """Mean nats over ids[1:]: the first window scores all its positions, each later window
    (moved on by `stride`) only its last `stride`, each seen after at least 32 characters."""
    model.eval()
    t = torch.as_tensor(ids)
    total, count = 0.0, 0
    x, y = t[:context][None], t[1 : context + 1][None]
    total += F.cross_entropy(model(x)[0], y[0], reduction="sum").item()
    count += context
    starts = list(range(stride, len(ids) - context, stride))
    for a in range(0, len(starts), 256):
        chunk = starts[a : a + 256]
        x = torch.stack([t[s : s + context] for s in chunk])
        y = torch.stack([t[s + 1 : s + context + 1] for s in chunk])
        logits = model(x)[:, -stride:]
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y[:, -stride:].reshape(-1), reduction="sum"
        ).item()
        count += stride * len(chunk)
    covered = context + stride * len(starts)  # predictions made so far: ids[1 : covered + 1]
    if covered + 1 < len(ids):  # the last few, from a window ending at the text's end
        x, y = t[-context - 1 : -1][None], t[-context:][None]
        rest = len(ids) - 1 - covered
        total += F.cross_entropy(model(x)[0, -rest:], y[0, -rest:], reduction="sum").item()
        count += rest
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.5, 5, 15])
    parser.add_argument("--only", default="charchat,transformer,plain")
    parser.add_argument(
        "--charchat-args", default="", help="extra flags for charchat train (experiments only)"
    )
    args = parser.parse_args()
    train_text, test_text = split(args.corpus)
    chars, train_ids, test_ids = encode(train_text, test_text)
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line]
    cpu = names[0] if names else platform.processor()
    bf16 = "avx512_bf16" in info
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train_path = Path(tmp) / args.corpus.name
        train_path.write_text(train_text, encoding="utf-8")
        for minutes in args.minutes:
            for who in args.only.split(","):
                if who == "charchat":
                    extra = args.charchat_args.split()
                    result = run_charchat(train_path, test_text, minutes, Path(tmp), extra)
                elif who == "plain":
                    result = run_plain(train_ids, test_ids, len(chars), minutes)
                else:
                    result = run_transformer(train_ids, test_ids, len(chars), minutes)
                row = {
                    "corpus": args.corpus.name,
                    "minutes": minutes,
                    "who": f"{who} {args.charchat_args}".strip() if who == "charchat" else who,
                    **result,
                    "bits": result["nats"] / math.log(2),
                    "cpu": cpu,
                    "avx512_bf16": bf16,
                    "date": time.strftime("%Y-%m-%d %H:%M"),
                }
                rows.append(row)
                with open(HERE / "race.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(
                    f"{args.corpus.name} {minutes:>5g} min  {who:<12} {row['nats']:.4f} nats/char "
                    f"({row['bits']:.4f} bits)  {row['chars_trained_on']:,} chars in "
                    f"{row['wall_s']:.0f} s  {row.get('plan', '')}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
