"""Write a tuning run's held-out figure into the card of the model shipped with its recipe.

    python benchmarks/tuning_figures.py SHIPPED TUNING_MODEL CORPUS

The shipped model learnt the whole corpus, so its own card has no quality figure: this
scores the tuning run (same recipe, the last 10 % kept out) on that last 10 % with
`charchat eval`'s code and records it, which `charchat models` and `/info` show. A
calibrated tuning model says so in the figure's note.
"""

import sys
from pathlib import Path

from charchat.modelfile import load_model, save_model
from charchat.train.evaluate import evaluate_file

HELD_OUT = 0.1

shipped, tuning, corpus = sys.argv[1], sys.argv[2], Path(sys.argv[3])
result = evaluate_file(tuning, corpus, HELD_OUT)
model = load_model(shipped)
temperature = load_model(tuning).card.get("calibration", {}).get("temperature")
note = "same recipe, last 10 % kept out"
if temperature:
    note += f", calibrated at temperature {temperature:g}"
nats, bits = round(result.nats_per_char, 4), round(result.bits_per_char, 4)
model.card["tuning_run"] = {
    "held_out": "last 10 % of the corpus, never learnt",
    "held_out_nats_per_char": nats,
    "held_out_bits_per_char": bits,
} | ({"calibration_temperature": temperature} if temperature else {})
model.card["tuning_held_out"] = f"{nats:.4f} nats/char, {bits:.4f} bits/char ({note})"
save_model(model, shipped)
print(f"{shipped}: {model.card['tuning_held_out']}")
