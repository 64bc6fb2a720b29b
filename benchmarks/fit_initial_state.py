"""Give an existing model a learned starting state, its other weights untouched.

    python benchmarks/fit_initial_state.py MODEL CORPUS --out PATH [--steps 300] [--at paragraphs]

Trains only initial_h and initial_c: windows of 64 characters from CORPUS (its first 90 %, so
the last 10 % stays unseen), each read from the starting state. `--at anywhere` takes them
from random places, as training restarts streams there, which makes the state "somewhere in
a text"; `--at paragraphs` starts them where the text starts and after each blank line, which
makes it "the start of a text": on Shakespeare, the start of a speech, a speaker's name. Reports the entropy of the first next-character distribution
(T = 1) before and after, and the held-out score, which must not get worse.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charchat.finding import resolve_model
from charchat.modelfile import Model, load_model, save_model
from charchat.reading import read_text
from charchat.train.evaluate import evaluate_text
from charchat.train.model import CharLSTM


def first_entropy_bits(module: CharLSTM) -> float:
    with torch.no_grad():
        p = torch.softmax(module.first_logits(), dim=-1)
        return float(-(p * torch.log2(p.clamp_min(1e-30))).sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--at", choices=["anywhere", "paragraphs"], default="anywhere")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_model(resolve_model(args.model))
    text = read_text(args.corpus)  # as training reads it: no byte-order mark, LF newlines
    cut = len(text) - len(text) // 10
    ids = np.array(model.vocab.encode_known(text[:cut]))
    module = CharLSTM.from_file(model).eval()  # eval: no dropout; the weights stay as they are
    for name, p in module.named_parameters():
        p.requires_grad_(name in ("initial_h", "initial_c"))
    before = first_entropy_bits(module)
    optimizer = torch.optim.Adam([module.initial_h, module.initial_c], lr=1e-2)
    rng = np.random.default_rng(0)
    if args.at == "paragraphs":
        newline = model.vocab.index["\n"]
        after_blank = np.flatnonzero((ids[:-2] == newline) & (ids[1:-1] == newline)) + 2
        places = np.concatenate([[0], after_blank[after_blank < len(ids) - 65]])
    else:
        places = np.arange(len(ids) - 65)
    for step in range(args.steps):
        starts = rng.choice(places, 64)
        x = torch.as_tensor(np.stack([ids[s : s + 64] for s in starts]))
        y = torch.as_tensor(np.stack([ids[s + 1 : s + 65] for s in starts]))
        logits, _ = module(x)
        first = module.first_logits().expand(len(starts), -1)
        loss = F.cross_entropy(first, x[:, 0]) + F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.4f}", flush=True)
    after = first_entropy_bits(module)
    tensors = {**model.tensors}
    tensors["initial_h"] = module.initial_h.detach().numpy().copy()
    tensors["initial_c"] = module.initial_c.detach().numpy().copy()
    card = {
        **model.card,
        "initial_state": f"fitted afterwards ({args.steps} steps at {args.at}, weights frozen)",
    }
    fitted = Model(model.vocab, model.config, tensors, card)
    held_out = text[cut:]
    old, new = evaluate_text(model, held_out), evaluate_text(fitted, held_out)
    save_model(fitted, args.out)
    print(f"first-character entropy at T=1: {before:.3f} -> {after:.3f} bits")
    print(
        f"held-out last 10 %: {old.nats_per_char:.4f} -> {new.nats_per_char:.4f} nats/char "
        f"({new.bits_per_char:.4f} bits)"
    )
    print(f"uniform over the vocabulary would be {math.log2(len(model.vocab)):.3f} bits")


if __name__ == "__main__":
    main()
