"""Fine-tuning (`charchat train PIECE --from MODEL`) against training from scratch, at equal
minutes, on pieces of one shared corpus, each model scored on held-out text of the same work.

    python benchmarks/bench_finetune.py [--corpus ../shared/corpora/tinyshakespeare.txt]
        [--parent nietzsche] [--sizes 20000 100000 0.9] [--minutes 1.5 5] [--threads 2]

Pieces are taken from the start of the corpus (a size below 1 is a share of it); the last
10 % of the corpus is held out and neither run ever reads it. Both runs are planned by
`charchat train --minutes M` (the same command a user types), one after the other, each with
the machine to itself. Extra flags for the fine-tuning runs only go after `--`.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_name

HELD_OUT_SHARE = 0.1


def charchat(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "charchat", *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"charchat {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def score(model: Path, held: Path) -> float:
    out = charchat("eval", str(model), str(held))
    return float(re.search(r"nats/char\s+([\d.]+)", out).group(1))


def card_of(model: Path) -> dict:
    from charchat.modelfile import load_model

    return load_model(model).card


def one_run(piece: Path, held: Path, minutes: float, out: Path, extra: list[str]) -> dict:
    log = charchat("train", str(piece), "--minutes", f"{minutes:g}", "-o", str(out), *extra)
    plan = next((line for line in log.splitlines() if line.startswith("plan:")), "")
    card = card_of(out)
    return {
        "nats": score(out, held),
        "plan": plan,
        "kept": card.get("kept"),
        "steps": card.get("steps"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--corpus", type=Path, default=Path("../shared/corpora/tinyshakespeare.txt")
    )
    parser.add_argument("--parent", default="nietzsche")
    parser.add_argument("--sizes", type=float, nargs="+", default=[20_000, 100_000, 0.9])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.5, 5.0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only-from", action="store_true", help="skip the runs from scratch")
    parser.add_argument("--jsonl", type=Path, default=None, help="append each row here")
    parser.add_argument("extra", nargs="*", help="flags for the --from runs (after --)")
    args = parser.parse_args()
    text = args.corpus.read_text(encoding="utf-8")
    cut = int(len(text) * (1 - HELD_OUT_SHARE))
    threads = ["--threads", str(args.threads)] if args.threads else []
    print(f"CPU: {cpu_name()}; corpus {args.corpus.name}, held out: its last {len(text) - cut:,}")
    print("| piece | minutes | from scratch | --from " + args.parent + " | difference |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        held = folder / "held.txt"
        held.write_text(text[cut:], encoding="utf-8")
        for size in args.sizes:
            chars = int(size * len(text)) if size < 1 else int(size)
            piece = folder / f"piece{chars}.txt"
            piece.write_text(text[: min(chars, cut)], encoding="utf-8")
            for minutes in args.minutes:
                rows = {}
                if not args.only_from:
                    rows["scratch"] = one_run(
                        piece, held, minutes, folder / "scratch.safetensors", threads + ["--force"]
                    )
                rows["from"] = one_run(
                    piece,
                    held,
                    minutes,
                    folder / "from.safetensors",
                    threads + ["--force", "--from", args.parent, *args.extra],
                )
                scratch = rows.get("scratch", {}).get("nats", float("nan"))
                print(
                    f"| {chars:,} chars | {minutes:g} | {scratch:.4f} | {rows['from']['nats']:.4f} "
                    f"| {rows['from']['nats'] - scratch:+.4f} |",
                    flush=True,
                )
                record = {"piece": chars, "minutes": minutes, "extra": args.extra, **rows}
                for name, row in rows.items():
                    print(f"    {name}: {row['plan']}; kept {row['kept']}", file=sys.stderr)
                if args.jsonl:
                    with open(args.jsonl, "a") as f:
                        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
