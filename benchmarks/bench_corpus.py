"""Large corpora and several processes: peak memory and the wall-clock promise against corpus
size, and training throughput with one process and with two under torchrun.

    python benchmarks/bench_corpus.py [--sizes 10 50 200] [--minutes 0.5] [--source FILE]

The corpus of each size is the source text (default: a generated word salad) repeated and
written to a temporary folder; nothing is downloaded. Each size is trained twice with
`charchat train BIG --minutes M --preset small` in a fresh process: the first run reads and
encodes the text (and caches the ids), the second memory-maps the cached ids. Peak memory is
the child's maximum resident set (getrusage); wall time is launch to exit. Then
`charchat eval MODEL BIG --tail 0.01` reads the whole text (to find where its last 1 %
starts) and scores that 1 %: its peak memory should not grow with the corpus.

Throughput: `charchat train` with fixed steps, fp32, one process with two threads against
`torchrun --nproc_per_node 2` with one thread each, on the same corpus; characters per second
of training from the model card (all processes' characters).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name

from charchat.modelfile import load_model


def word_salad(chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "that",
        "it",
        "is",
        "was",
        "he",
        "for",
        "on",
        "are",
        "as",
        "with",
        "his",
        "they",
        "at",
        "be",
        "this",
    ]
    words += [
        "from",
        "have",
        "or",
        "one",
        "had",
        "by",
        "word",
        "but",
        "not",
        "what",
        "all",
        "were",
        "we",
        "when",
        "your",
        "can",
        "said",
    ]
    out, n = [], 0
    while n < chars:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + ".\n"
        out.append(line.capitalize())
        n += len(line)
    return "".join(out)


def write_corpus(folder: Path, megabytes: int, source: str) -> Path:
    path = folder / f"corpus-{megabytes}mb.txt"
    target = megabytes * 1_000_000
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            piece = source[: target - written]
            f.write(piece)
            written += len(piece.encode("utf-8"))
    return path


PEAK_REPORTER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'PEAK_KB={peak}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)  # a go-between, so that each run's peak is its own (getrusage keeps the largest ever)


def run_child(command: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak resident MB of the command and its children's largest)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK_REPORTER, *command], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    peak_kb = int(done.stderr.rsplit("PEAK_KB=", 1)[1].split()[0])
    return wall, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--source", type=Path, help="text to repeat (default: word salad)")
    parser.add_argument(
        "--steps-epochs", type=float, default=0.06, help="passes for the throughput run"
    )
    parser.add_argument("--parts", nargs="+", default=["memory", "processes"])
    args = parser.parse_args()
    source = args.source.read_text(encoding="utf-8") if args.source else word_salad(2_000_000)
    charchat = [sys.executable, "-m", "charchat"]
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "CHARCHAT_CACHE": str(folder / "cache")}
        print("\n| corpus | run | wall s (budget x 1.1 + 10) | peak memory MB | steps |")
        print("|---:|---|---:|---:|---:|")
        for size in args.sizes if "memory" in args.parts else []:
            corpus = write_corpus(folder, size, source)
            for label in ("first (reads, encodes, caches)", "again (cached ids)"):
                out = folder / "m.safetensors"
                command = [*charchat, "train", str(corpus), "--out", str(out), "--force"]
                command += ["--minutes", str(args.minutes), "--preset", "small"]
                wall, peak = run_child(command, env)
                card = load_model(out).card
                limit = args.minutes * 60 * 1.1 + 10
                print(
                    f"| {size} MB | {label} | {wall:.1f} ({limit:.0f}) | {peak:.0f} "
                    f"| {card['steps']} |"
                )
            command = [*charchat, "eval", str(out), str(corpus), "--tail", "0.01"]
            wall, peak = run_child(command + ["--threads", "1"], env)
            print(f"| {size} MB | eval --tail 0.01 (reads it all) | {wall:.1f} | {peak:.0f} | |")
            corpus.unlink()
        if "processes" not in args.parts:
            return
        corpus = write_corpus(folder, 5, source)
        print("\n| processes | threads each | chars/s of training |")
        print("|---:|---:|---:|")
        common = ["--out", str(folder / "t.safetensors"), "--force", "--precision", "fp32"]
        common += ["--epochs", str(args.steps_epochs), "--layers", "2", "--hidden", "512"]
        common += ["--batch-size", "32", "--seq-len", "64", "--val-fraction", "0.01"]
        for processes in (1, 2):
            threads = 2 // processes
            if processes == 1:
                command = [*charchat, "train", str(corpus), *common, "--threads", str(threads)]
            else:
                command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
                command += ["--nproc_per_node", "2", "-m", "charchat", "train", str(corpus)]
                command += [*common, "--threads", "1"]
            run_child(command, env)
            card = load_model(folder / "t.safetensors").card
            speed = card["chars_trained_on"] / card["train_seconds"]
            print(f"| {processes} | {threads} | {speed:,.0f} |")


if __name__ == "__main__":
    main()
