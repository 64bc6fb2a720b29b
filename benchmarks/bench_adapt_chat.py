"""/adapt in the chat, as a user pipes it: each bundled model reads 3,000 characters of a text
neither learnt (the GNU GPL, version 3, from /usr/share/common-licenses), then `/score`s the
1,500 characters that begin 3,000 further on; once as it is, once with --adapt. Whitespace
runs are one space, since a pipe line is one prompt.

    python benchmarks/bench_adapt_chat.py [--text /usr/share/common-licenses/GPL-3]

Prints the two /score figures (bits/char) and the wall time of each whole run (start-up,
torch's import with --adapt, reading, scoring), with the CPU.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_name

READ, GAP, SCORED = 3_000, 3_000, 1_500


def score(model: str, script: str, adapt: bool) -> tuple[float, float]:
    command = [sys.executable, "-m", "charchat", "-m", model, "-n", "1", "--seed", "1"]
    started = time.perf_counter()
    done = subprocess.run(
        command + (["--adapt"] if adapt else []), input=script.encode(), capture_output=True
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(done.stderr.decode())
    bits = re.search(r"([\d.]+) bits/char over", done.stdout.decode())
    return float(bits.group(1)), seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", type=Path, default=Path("/usr/share/common-licenses/GPL-3"))
    args = parser.parse_args()
    text = re.sub(r"\s+", " ", args.text.read_text(encoding="utf-8"))
    start = text.index("The GNU General Public License is a free")
    read = text[start : start + READ]
    later = text[start + READ + GAP : start + READ + GAP + SCORED]
    script = f"{read}\n/score {later}\n"
    print(f"CPU: {cpu_name()}; {args.text.name}: read {READ:,}, score {SCORED:,} after {GAP:,}")
    print("| model | /score as it is | with --adapt | lower by | run as it is | run with --adapt |")
    print("|---|---:|---:|---:|---:|---:|")
    for model in ("nietzsche", "shakespeare"):
        (static, t0), (adaptive, t1) = score(model, script, False), score(model, script, True)
        print(
            f"| {model} | {static:.3f} | {adaptive:.3f} | {static - adaptive:.3f} "
            f"| {t0:.1f} s | {t1:.1f} s |"
        )


if __name__ == "__main__":
    main()
