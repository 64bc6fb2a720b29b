"""Print the markdown card of a bundled model (used to write weights/README.md).

    python benchmarks/model_cards.py NAME CORPUS "SHIPPED COMMAND" TUNING_MODEL "TUNING COMMAND" [PROMPT]

The shipped model learnt the whole corpus, so nothing of it can measure its quality: the
card's quality figure is that of the tuning run, the same recipe with the last 10 % of the
corpus kept out, scored there with `charchat eval`'s own code (`--tail 0.1`). The card also
gives the entropy of the shipped model's first next-character distribution (its learned
starting state, at T = 1), its training-loss curve and samples of one prompt at temperatures
0.2, 0.5, 1.0 and 1.2 from the same state (the function training uses for its samples).
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from charchat.chat.engine import Engine
from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.style import safe_text
from charchat.train.calibrate import GRID, with_temperature
from charchat.train.evaluate import evaluate_file
from charchat.train.progress_samples import temperature_samples

HELD_OUT = 0.1


def first_entropy_bits(model) -> float:
    """Entropy at T = 1 of what a fresh session would write first."""
    engine = Engine(model)
    engine.reset()
    logits = engine.logits().astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return float(-(p[p > 0] * np.log2(p[p > 0])).sum())


def curve_summary(card: dict) -> str:
    rows = card.get("train_curve", [])
    if not rows:
        return "-"
    picks = [rows[0], rows[len(rows) // 4], rows[len(rows) // 2], rows[-1]]
    return ", ".join(f"step {s:,}: {bits:.3f}" for s, _, bits in picks)


def cross_fitted(tuned, corpus: Path) -> list[tuple[float, float, float]]:
    """The temperature fitted on one half of the held-out text, scored on the other half:
    (temperature, nats at 1, nats at it) for each way round; the tuning model's own
    calibration is undone first."""
    plain = with_temperature(tuned, 1 / tuned.card["calibration"]["temperature"], {})
    text = corpus.read_text(encoding="utf-8").replace("\r\n", "\n")
    held_out = text[len(text) - int(len(text) * HELD_OUT) :]
    halves = [held_out[: len(held_out) // 2], held_out[len(held_out) // 2 :]]
    one = GRID.index(1.0)
    with tempfile.TemporaryDirectory() as folder:
        scores = []
        for i, half in enumerate(halves):
            path = Path(folder) / f"half{i}.txt"
            path.write_text(half, encoding="utf-8")
            scores.append(evaluate_file(plain, path, temperatures=GRID).nats_at_temperatures)
    rows = []
    for fitted_on, scored in ((0, 1), (1, 0)):
        best = int(np.argmin(scores[fitted_on]))
        rows.append((GRID[best], scores[scored][one], scores[scored][best]))
    return rows


def calibration_row(model, tuned, corpus: Path) -> str:
    if "calibration" not in model.card:
        return "| calibration | none |"
    t, fit = model.card["calibration"]["temperature"], tuned.card["calibration"]
    (t1, b1, a1), (t2, b2, a2) = cross_fitted(tuned, corpus)
    halves = (
        f"fitted on the first half ({t1:g}), the second goes {b1:.4f} → {a1:.4f} nats/char; "
        f"fitted on the second ({t2:g}), the first goes {b2:.4f} → {a2:.4f}"
    )
    return (
        f"| calibration | logits divided by **{t:g}**, the temperature fitted on the tuning "
        f"run's held-out {HELD_OUT:.0%} (`charchat calibrate`): {fit['bits_before']:.4f} → "
        f"{fit['bits_after']:.4f} bits/char there; {halves} |"
    )


def card(
    name: str, corpus: Path, command: str, tuning: str, tuning_command: str, prompt: str = "The "
) -> str:
    path = resolve_model(name)
    model = load_model(path)
    c = model.card
    tuned = load_model(resolve_model(tuning))
    result = evaluate_file(str(resolve_model(tuning)), corpus, HELD_OUT)
    cfg, t = model.config, c["train_config"]
    learnt = tuned.card["corpus_chars"] - int(
        tuned.card["corpus_chars"] * tuned.card["val_fraction"]
    )
    minutes = c["train_seconds"] / 60
    lines = [
        f"## {name}",
        "",
        "Shipped model (learns all of the text):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Tuning run (the same recipe, the last {HELD_OUT:.0%} kept out and scored):",
        "",
        "```bash",
        tuning_command,
        f"charchat eval {Path(tuning).name} {corpus.name} --tail {HELD_OUT}",
        "```",
        "",
        "| | |",
        "|---|---|",
        f"| file | `weights/{path.name}` ({path.stat().st_size / 1e6:.1f} MB) |",
        f"| architecture | {cfg.layers} × LSTM {cfg.hidden}, embedding {cfg.embedding} |",
        f"| regularisation | dropout {cfg.dropout}, input dropout {cfg.input_dropout}, "
        f"weight drop {cfg.weight_drop}, weight decay {t['weight_decay']} |",
        f"| schedule | AdamW lr {t['lr']}, {t['warmup_steps']} warm-up steps, cosine to "
        f"{t['min_lr_ratio']:g} × lr; batch {t['batch_size']} × {t['seq_len']}; "
        f"{t['precision']} autocast, fp32 weights |",
        f"| parameters | {model.parameters:,} |",
        f"| vocabulary | {len(model.vocab)} characters |",
        f"| text learnt | all of `{c['corpus']}`: {c['corpus_chars']:,} characters, sha256 "
        f"`{c['corpus_sha256'][:16]}…` (nothing held out) |",
        f"| training | {c['steps']:,} steps, {c['chars_trained_on']:,} characters seen "
        f"({c['chars_trained_on'] / c['corpus_chars']:.1f} passes), {minutes:.1f} min on "
        f"{c['device']}, {t['threads']} thread (torch {c['torch_version']}) |",
        "| weights | those of the last step (no selection on text it learnt from) |",
        calibration_row(model, tuned, corpus),
        f"| quality: tuning run on the last {HELD_OUT:.0%}, never learnt | "
        f"**{result.nats_per_char:.4f} nats/char, {result.bits_per_char:.4f} bits/char** "
        f"({tuned.card['steps']:,} steps, {learnt:,} characters learnt) |",
        f"| starting state | first next-character entropy **{first_entropy_bits(model):.3f} "
        f"bits** at T = 1 (uniform: {math.log2(len(model.vocab)):.3f}) |",
        f"| training loss (bits/char, dropout on) | {curve_summary(c)}; all of it in "
        f"`benchmarks/curves/{name}.csv` |",
        "",
        f"Samples of the prompt `{prompt.strip()}` at each temperature, each from the same state "
        "and random stream:",
        "",
    ]
    samples = temperature_samples(model, prompt, 240, seed=1)
    for temperature, text in samples.items():
        lines += [f"T = {temperature}:", "", "```text", prompt + safe_text(text), "```", ""]
    assert math.isfinite(result.nats_per_char)
    return "\n".join(lines)


if __name__ == "__main__":
    print(card(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4], *sys.argv[5:7]))
