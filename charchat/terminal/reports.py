"""What `eval`, `calibrate`, `models` and `novelty` print on stdout."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from charchat.chat.looking import trained_on
from charchat.chat.novelty import MAX_INDEX_CHARS, TextIndex, novelty_of
from charchat.chat.session import Session
from charchat.errors import CharchatError
from charchat.events import Generated
from charchat.finding import available_models, resolve_model
from charchat.modelfile import load_model
from charchat.paths import novelty_cache, user_models_dir
from charchat.reading import read_text
from charchat.settings import LENGTH, NOVELTY_MIN, TEMPERATURE, Settings
from charchat.style import safe_text
from charchat.terminal.render import stdout_console


def report(model_name, corpus: Path, temps, length, min_chars, prompt="", seed=1) -> list[str]:
    """`charchat novelty`: a sample at each temperature, and what of it is copied."""
    try:
        NOVELTY_MIN.parse(str(min_chars))
    except CharchatError as e:
        raise CharchatError(f"--min: {e}") from None
    LENGTH.parse(str(length))
    for t in temps:
        TEMPERATURE.parse(str(t))
    model = load_model(resolve_model(model_name))
    text = read_text(corpus, 2, "novelty", MAX_INDEX_CHARS)
    index = TextIndex.build(text, model.vocab, novelty_cache())
    lines = [
        f"{'T':>5}  {'chars':>6}  {'longest copy':>12}  {f'copied (>= {min_chars})':>16}  spans",
    ]
    longest_texts = []
    for t in temps:
        session = Session(model, Settings(temperature=t, mode="sample"), length=length, seed=seed)
        written = "".join(e.char for e in session.turn(prompt) if isinstance(e, Generated))
        found = novelty_of(index, model.vocab.encode(written).ids, min_chars)
        lines.append(
            f"{t:>5g}  {len(written):>6,}  {found.longest:>12,}  "
            f"{found.copied_share:>15.1%}  {len(found.spans)}"
        )
        end = int(np.argmax(found.lengths)) + 1 if found.lengths else 0
        longest_texts.append((t, written[end - found.longest : end]))
    for t, text in longest_texts:
        lines.append(f"longest copy at T={t:g}: {safe_text(text, keep_newlines=False)!r}")
    return lines


def score_report(result) -> str:
    """`charchat eval`: how well the model predicts the text (and, with --adapt, how well
    it does when it learns as it reads)."""
    if result.adaptive_nats_per_char is not None:
        static, adaptive = result.nats_per_char, result.adaptive_nats_per_char
        return (
            f"static      {static:.4f} nats/char ({static / math.log(2):.3f} bits)\n"
            f"adaptive    {adaptive:.4f} nats/char ({adaptive / math.log(2):.3f} bits)\n"
            f"scored      {result.scored:,} characters of {result.characters:,}\n"
            f"skipped     {result.skipped:,} outside the vocabulary\n"
        )
    return (
        f"bits/char   {result.bits_per_char:.4f}\n"
        f"nats/char   {result.nats_per_char:.4f}\n"
        f"scored      {result.scored:,} characters of {result.characters:,}\n"
        f"skipped     {result.skipped:,} outside the vocabulary\n"
    )


def calibration_report(calibrated, fit) -> str:
    """`charchat calibrate`: the temperature applied and, when fitted, what it gained."""
    total = calibrated.card["calibration"]["temperature"]
    if fit is None:
        applied = calibrated.card["calibration"]["given"]
        return f"temperature {applied:g} (in all: {total:g})\n"
    return (
        f"temperature {fit.temperature:g} (in all: {total:g})\n"
        f"bits/char   {fit.bits_before:.4f} -> {fit.bits_after:.4f}\n"
        f"nats/char   {fit.nats_before:.4f} -> {fit.nats_after:.4f}\n"
        f"scored      {fit.scored:,} characters\n"
    )


def models_table() -> None:
    """`charchat models`: every model found by name, bundled first, as a table on stdout."""
    rows = []
    for name, where, path in available_models():
        try:
            m = load_model(path)
        except CharchatError as e:
            rows.append((name, where, "-", "-", f"unreadable: {e}", "-", path.stat().st_size))
            continue
        card = m.card
        bpc = card.get("best_val_bits_per_char")
        if bpc is None:  # learnt all its text: its recipe's tuning run was scored instead
            bpc = card.get("tuning_run", {}).get("held_out_bits_per_char")
        rows.append(
            (
                name,
                where,
                f"{m.parameters / 1e6:.2f}M ({m.config.layers}x{m.config.hidden})",
                str(len(m.vocab)),
                trained_on(card).removeprefix("trained on "),
                f"{bpc:.3f}" if isinstance(bpc, (int, float)) and math.isfinite(bpc) else "-",
                path.stat().st_size,
            )
        )
    if not rows:
        sys.stderr.write(f"charchat: no models found (user models go in {user_models_dir()})\n")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "where", "parameters", "vocab", "trained on", "val bits/char", "size"):
        table.add_column(
            column, justify="right" if column in ("vocab", "val bits/char", "size") else "left"
        )
    for row in rows:
        table.add_row(*(safe_text(str(v), False) for v in row[:-1]), f"{row[-1] / 1e6:.1f} MB")
    stdout_console().print(table)
