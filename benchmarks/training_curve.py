"""Write a model's curves (step, training seconds, val bits/char, training loss) as CSV.

    python benchmarks/training_curve.py weights/nietzsche.safetensors > benchmarks/curves/nietzsche.csv

The training loss is the mean over the steps since the row before, dropout on. Reads the
curves from the model's training card, or from a training checkpoint
(NAME.ckpt.safetensors) when given one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from charchat.modelfile import load_model
from charchat.train.checkpoint import read_checkpoint_meta


def curves(path: Path) -> tuple[list, list]:
    """(validation rows, training-loss rows) of a model's card or a checkpoint's progress."""
    if path.name.endswith(".ckpt.safetensors"):
        progress = read_checkpoint_meta(path)["progress"]
        return progress["history"], progress.get("train_curve", [])
    card = load_model(path).card
    return card.get("val_curve", []), card.get("train_curve", [])


def main() -> int:
    validation, training = curves(Path(sys.argv[1]))
    rows: dict[int, list] = {}
    for step, seconds, bpc, *averaged in validation:
        shown = "" if bpc is None or bpc != bpc else bpc  # nothing held out: no figure
        rows[step] = [seconds, shown, averaged[0] if averaged and averaged[0] else "", ""]
    for step, seconds, train_bits in training:
        rows.setdefault(step, [seconds, "", "", ""])[3] = train_bits
    print(
        "step,train_seconds,val_bits_per_char,averaged_val_bits_per_char,train_loss_bits_per_char"
    )
    for step in sorted(rows):
        print(",".join(str(x) for x in [step, *rows[step]]))
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
