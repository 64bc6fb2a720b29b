"""Write a model's validation curve (step, training seconds, val bits/char) as CSV.

    python benchmarks/training_curve.py weights/nietzsche.safetensors > benchmarks/curves/nietzsche.csv

Reads the curve from the model's training card, or from a training checkpoint
(NAME.ckpt.safetensors) when given one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from charchat.checkpoint import read_checkpoint_meta
from charchat.modelfile import load_model


def curve(path: Path) -> list:
    if path.name.endswith(".ckpt.safetensors"):
        return read_checkpoint_meta(path)["progress"]["history"]
    return load_model(path).card.get("val_curve", [])


def main() -> int:
    rows = curve(Path(sys.argv[1]))
    print("step,train_seconds,val_bits_per_char,averaged_val_bits_per_char")
    for step, seconds, bpc, *averaged in rows:
        print(f"{step},{seconds},{bpc},{averaged[0] if averaged and averaged[0] else ''}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
