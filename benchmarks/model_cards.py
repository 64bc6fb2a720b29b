"""Print the markdown model card of a bundled model (used to write weights/README.md).

    python benchmarks/model_cards.py nietzsche ../shared/corpora/nietzsche.txt "charchat train …"

Measures validation nats/char and bits/char with `charchat eval`'s own code on the held-out
tail of the corpus, and samples one prompt at temperatures 0.2, 0.5, 1.0 and 1.2 from the
same state (the same function training uses for its samples).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from charchat.evaluate import evaluate_file
from charchat.modelfile import load_model, resolve_model
from charchat.render import safe_text
from charchat.samples import temperature_samples


def averaging(card: dict) -> str:
    steps = card.get("averaged_over_steps", 0)
    if steps:
        return f"the mean of the last {steps:,} steps' weights (`--average-from`)"
    return "those of the step named above"


def card(name: str, corpus: Path, command: str, prompt: str = "The ") -> str:
    path = resolve_model(name)
    model = load_model(path)
    c = model.card
    tail = c.get("val_fraction", 0.1)
    result = evaluate_file(str(path), corpus, tail)
    cfg = model.config
    minutes = c["train_seconds"] / 60
    lines = [
        f"## {name}",
        "",
        "```bash",
        command,
        "```",
        "",
        "| | |",
        "|---|---|",
        f"| file | `weights/{path.name}` ({path.stat().st_size / 1e6:.1f} MB) |",
        f"| architecture | {cfg.layers} × LSTM {cfg.hidden}, embedding {cfg.embedding} |",
        f"| regularisation | dropout {cfg.dropout}, input dropout {cfg.input_dropout}, "
        f"weight drop {cfg.weight_drop}, weight decay {c['train_config']['weight_decay']} |",
        f"| parameters | {model.parameters:,} |",
        f"| vocabulary | {len(model.vocab)} characters |",
        f"| corpus | `{c['corpus']}`, {c['corpus_chars']:,} characters, sha256 `{c['corpus_sha256'][:16]}…` |",
        f"| training | {c['steps']:,} steps, {c['chars_trained_on']:,} characters seen, "
        f"{minutes:.1f} min on {c['device']} (torch {c['torch_version']}) |",
        f"| weights | {averaging(c)} |",
        f"| validation (last {tail:.0%}, `charchat eval --tail {tail}`) | "
        f"**{result.nats_per_char:.4f} nats/char**, {result.bits_per_char:.4f} bits/char |",
        f"| validation figure recorded during training | {c['best_val_nats_per_char']} nats/char |",
        "",
        f"Samples of the prompt `{prompt}` at each temperature, each from the same state and "
        "random stream:",
        "",
    ]
    samples = temperature_samples(model, prompt, 240, seed=1)
    for temperature, text in samples.items():
        lines += [f"T = {temperature}:", "", "```text", prompt + safe_text(text), "```", ""]
    assert math.isfinite(result.nats_per_char)
    return "\n".join(lines)


if __name__ == "__main__":
    print(card(sys.argv[1], Path(sys.argv[2]), sys.argv[3], *sys.argv[4:5]))
