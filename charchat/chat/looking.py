"""Looking without touching: /probs, /sweep, /score, /cells and the model card.

Each leaves the transcript, the model's state and the random stream exactly as they were,
also when it is stopped part way (session.request_stop()).
"""

from __future__ import annotations

import math

import numpy as np

from charchat import settings as spec
from charchat.chat.sampling import (
    LOG2E,
    entropy_bits,
    kept_mask,
    log_softmax,
    next_char,
    probabilities,
)
from charchat.errors import CharchatError, CommandError, Stopped
from charchat.events import CellStrips, Info, ProbRow, Probs, Score, SweepLine


def probs(session, n: int = spec.PROBS_SHOWN.default) -> Probs:
    """The most likely next characters; nothing is sampled and nothing changes."""
    logits = session.engine.logits().copy()
    s = session.settings
    p_temp = probabilities(logits, s.temperature)
    p_one = probabilities(logits, 1.0)
    kept = kept_mask(p_temp, s) if not s.is_greedy else p_temp == p_temp.max()
    order = np.argsort(-p_one, kind="stable")[:n]
    chars = session.model.vocab.chars
    rows = [ProbRow(chars[i], float(p_temp[i]), float(p_one[i]), bool(kept[i])) for i in order]
    if s.mode == "beam":
        note = f"beam {s.beam_width}: the likeliest continuation the beams find, at T=1"
    elif s.is_greedy:
        note = "greedy: only the most likely character can be chosen"
    elif s.mode in spec.CUTTING_MODES:
        note = f"{s.mode_text()}: {int(kept.sum())} characters can be chosen"
    else:
        note = f"sample: all {int((p_temp > 0).sum())} characters can be chosen"
    return Probs(rows, s.temperature, entropy_bits(p_temp), entropy_bits(p_one), note)


def sweep(session, temperatures, most: int | None = None):
    """The same state and random stream continued at each temperature, a row at a time, each
    at most `most` characters long (default: SWEEP_CHARS, read when called)."""
    engine = session.engine
    start = engine.snapshot()
    rng_state = session.rng.bit_generator.state
    chars = session.model.vocab.chars
    length = int(min(session.length, spec.SWEEP_CHARS if most is None else most))
    try:
        for t in temperatures:
            engine.restore(start)
            rng = np.random.default_rng()
            rng.bit_generator.state = rng_state
            settings = session.settings.with_(temperature=float(t))
            if settings.mode == "beam":
                settings = settings.with_(mode="sample")
            text, entropies, surprisals = [], [], []
            for _ in range(length):
                if session.stop_requested:
                    yield Info(f"/sweep stopped at T={t:g}; nothing changed")
                    return
                index, logprob, entropy = next_char(engine.logits(), settings, rng)
                entropies.append(entropy)
                surprisals.append(-logprob * LOG2E)
                engine.feed(index)
                text.append(chars[index])
            yield SweepLine(
                float(t), "".join(text), float(np.mean(entropies)), float(np.mean(surprisals))
            )
    finally:
        engine.restore(start)


def score(session, text: str):
    """How surprising each character of text would be from here; nothing changes."""
    encoded = session.model.vocab.encode(text)
    if not encoded.ids:
        raise CommandError("/score: no character of that text is in the model's vocabulary")
    engine = session.engine
    start = engine.snapshot()
    bits = []
    try:
        for i in encoded.ids:
            if session.stop_requested:
                break
            bits.append(float(-log_softmax(engine.logits())[i] * LOG2E))
            engine.feed(i)
    finally:
        engine.restore(start)
    if not bits:
        return [Info("/score stopped before the first character; nothing changed")]
    read = session.model.vocab.decode(encoded.ids[: len(bits)])
    events = [Score(read, bits, float(np.mean(bits)), encoded.dropped)]
    if len(bits) < len(encoded.ids):
        events.append(
            Info(f"/score stopped after {len(bits):,} of {len(encoded.ids):,} characters")
        )
    return events


STUDY_MOST = 4000  # characters of the transcript /cells find studies
STUDY_LEAST = 400  # below this, it studies a sample of the model's own writing instead
SAMPLE_CHARS = 2000


def _text_to_study(session) -> tuple[str, str]:
    transcript = session.transcript
    if len(transcript) >= STUDY_LEAST:
        text = transcript[-STUDY_MOST:]
        return text, f"the last {len(text):,} characters of the transcript"
    engine, rng = session.engine, np.random.default_rng(0)
    settings = session.settings.with_(temperature=0.8, mode="sample")
    start = engine.snapshot()
    written = []
    try:
        engine.reset()
        for done in range(SAMPLE_CHARS):
            if done % 64 == 0 and session.stop_requested:
                raise Stopped(f"stopped after writing {done:,} of {SAMPLE_CHARS:,} characters")
            index, _, _ = next_char(engine.logits(), settings, rng)
            written.append(index)
            engine.feed(index)
    finally:
        engine.restore(start)
    text = session.model.vocab.decode(written)
    return text, f"{SAMPLE_CHARS:,} characters the model wrote from its starting state at T 0.8"


def find_cells(session, feature: str) -> CellStrips | Info:
    """The cells whose activation best tracks a feature of the text; nothing changes."""
    from charchat.chat import cells

    def should_stop() -> bool:
        return session.stop_requested

    try:
        text, source = _text_to_study(session)
        values = cells.feature_values(feature, text, should_stop)
        ids = session.model.vocab.encode(text).ids
        acts = cells.activations(session.engine, ids, should_stop)
        ranked = cells.rank_cells(acts, values)
    except Stopped as e:
        return Info(f"/cells find {e}; nothing changed")
    except CharchatError as e:
        raise CommandError(f"/cells: {e}") from None
    window = cells.strip_window(values)
    found = [
        cells.FoundCell(layer, cell, r, acts[window, layer - 1, cell - 1])
        for layer, cell, r in ranked
    ]
    what = cells.FEATURES.get(feature, f"matches of {feature!r}")
    return CellStrips(f"cells tracking {what}, over {source}", text[window], found)


def show_cell(session, layer: int, cell: int) -> list:
    """The end of the transcript coloured by one cell, and what follows will be too."""
    from charchat.chat import cells

    events = []
    tail = session.transcript[-cells.STRIP_CHARS :]
    if tail:
        acts = cells.activations(session.engine, session.model.vocab.encode(tail).ids)
        found = cells.FoundCell(layer, cell, math.nan, acts[:, layer - 1, cell - 1])
        events.append(CellStrips("the end of the transcript, read afresh", tail, [found]))
    events.append(
        Info(
            f"colouring the text by layer {layer} cell {cell}: blue -1, grey 0, red +1 "
            "(/cells off to stop)"
        )
    )
    return events


def model_summary(m) -> str:
    shape = f"{m.config.layers}x{m.config.hidden} LSTM"
    return f"{m.name} ({shape}, {m.parameters / 1e6:.1f}M parameters, {trained_on(m.card)})"


def trained_on(card: dict) -> str:
    """ "trained on nietzsche.txt", or "fine-tuned from nietzsche on mine.txt"."""
    corpus = card.get("corpus", "unknown text")
    parent = card.get("fine_tuned_from")
    if isinstance(parent, dict) and isinstance(parent.get("name"), str):
        return f"fine-tuned from {parent['name']} on {corpus}"
    return f"trained on {corpus}"


def lineage_text(card: dict) -> str | None:
    """The fine-tuning lineage in one line: parent, its file, its figure, what was added."""
    parent = card.get("fine_tuned_from")
    if not isinstance(parent, dict) or not isinstance(parent.get("name"), str):
        return None
    parts = [str(parent.get(key)) for key in ("architecture", "headline") if parent.get(key)]
    if isinstance(parent.get("sha256"), str):
        parts.append(f"sha256 {parent['sha256'][:12]}")
    text = f"from {parent['name']}" + (f" ({'; '.join(parts)})" if parts else "")
    added = parent.get("added")
    if isinstance(added, list) and added:
        text += f", {len(added)} new characters"
    return text + f" on {card.get('corpus', 'unknown text')}"


def card_rows(session) -> list:
    m, card = session.model, session.model.card
    rows = [
        ("model", m.name),
        ("file", str(m.path) if m.path else "-"),
        (
            "architecture",
            f"{m.config.layers} x LSTM {m.config.hidden}, embedding {m.config.embedding}",
        ),
        ("parameters", f"{m.parameters:,}"),
        ("vocabulary", f"{len(m.vocab)} characters"),
        ("starting state", starting_state_text(m)),
    ]
    labels = [
        ("corpus", "trained on"),
        ("corpus_chars", "corpus characters"),
        ("chars_trained_on", "characters seen"),
        ("steps", "steps"),
        ("best_val_bits_per_char", "validation bits/char"),
        ("tuning_held_out", "tuning run, held out"),
        ("best_val_nats_per_char", "validation nats/char"),
        ("train_seconds", "training seconds"),
        ("device", "device"),
        ("torch_version", "torch"),
        ("charchat_version", "charchat"),
        ("date", "date"),
    ]
    rows += [
        (label, f"{card[key]:,}" if isinstance(card[key], int) else str(card[key]))
        for key, label in labels
        if card.get(key) is not None
    ]
    calibration = calibration_text(card.get("calibration"))
    if calibration:
        rows.append(("calibration", calibration))
    if lineage_text(card):
        rows.append(("fine-tuned", lineage_text(card)))
    if card.get("kept"):
        rows.append(("kept", str(card["kept"])))
    parent = card.get("adapted_from")
    if isinstance(parent, dict) and isinstance(parent.get("characters"), int):
        rows.append(("adapted", f"from {parent.get('name')} on {parent['characters']:,} chars"))
    if session.adapting is not None:
        learning = session.adapting
        rows.append(("adapt", f"{learning.status()} (lr {learning.lr:g}, {learning.stretch})"))
    return rows


def calibration_text(calibration) -> str | None:
    """One line for the card's calibration entry (`charchat calibrate`), or None."""
    if not isinstance(calibration, dict) or not _is_number(calibration.get("temperature")):
        return None
    text = f"logits divided by {calibration['temperature']:g}"
    before, after = calibration.get("bits_before"), calibration.get("bits_after")
    if _is_number(before) and _is_number(after):
        where = calibration.get("text", "held-out text")
        tail = calibration.get("tail")
        if _is_number(tail):
            where = f"the last {tail:.0%} of {where}"
        text += f", fitted on {where}: {before:.4f} -> {after:.4f} bits/char"
    return text


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def starting_state_text(m) -> str:
    if "initial_h" not in m.tensors:
        return "zero (an older file)"
    how = m.card.get("initial_state")
    return f"learned, {how}" if isinstance(how, str) else "learned"
