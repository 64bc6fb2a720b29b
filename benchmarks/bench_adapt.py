"""Learning while reading (`charchat eval --adapt`) against plain scoring, on both bundled
models, with the speed of each in the same run.

    python benchmarks/bench_adapt.py [--corpora ../shared/corpora] [--threads 2]

Texts: each model on the last 10 % of its own shared corpus (the bundled models learnt from
all of it, so this row shows what learning adds on text already seen, not a held-out figure),
and each model on the last 40,000 characters of the other corpus (an author it never read:
held out, the figure the defaults were chosen on). Speed: characters a second of each kind of
scoring, and their ratio.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_name

from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.settings import ADAPT_LR, ADAPT_STRETCH
from charchat.train.adapt import AdaptSettings, Learner
from charchat.train.evaluate import Scorer
from charchat.train.model import CharLSTM
from charchat.train.textfiles import code_points, id_table

CORPUS = {"nietzsche": "nietzsche.txt", "shakespeare": "tinyshakespeare.txt"}


def ids_of(model, text: str):
    ids = id_table(model.vocab, np.int32, missing=-1)[code_points(text)]
    return ids[ids >= 0]


def run(model, ids, adapt: bool) -> tuple[float, float]:
    module = CharLSTM.from_file(model)
    cpu = torch.device("cpu")
    scorer = Learner(module, cpu, AdaptSettings()) if adapt else Scorer(module, cpu)
    start = time.perf_counter()
    scorer.add(ids)
    if adapt:
        scorer.finish()
    return scorer.total / scorer.count, scorer.count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", type=Path, default=Path("../shared/corpora"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"CPU: {cpu_name()}, {args.threads} threads; lr {ADAPT_LR.default:g}, stretch {ADAPT_STRETCH.default}"
    )
    print(
        "| model | text | static nats/char | adaptive nats/char | static chars/s "
        "| adaptive chars/s | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in CORPUS:
        model = load_model(resolve_model(name))
        for text_name in CORPUS.values():
            text = (args.corpora / text_name).read_text(encoding="utf-8").replace("\r\n", "\n")
            own = text_name == CORPUS[name]
            piece = text[-(len(text) // 10) :] if own else text[-40_000:]
            what = f"last 10 % of {text_name} (learnt)" if own else f"last 40 kB of {text_name}"
            ids = ids_of(model, piece)
            static, static_speed = run(model, ids, adapt=False)
            adaptive, adaptive_speed = run(model, ids, adapt=True)
            print(
                f"| {name} | {what} | {static:.4f} | {adaptive:.4f} | {static_speed:,.0f} "
                f"| {adaptive_speed:,.0f} | {static_speed / adaptive_speed:.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
