"""The words of each answer a session gives: probability bars, sweep headers, score lines,
notes on characters the model does not know. Plain text; render.py colours and places it."""

from __future__ import annotations

from charchat.style import safe_text


def unknown_notes(prompt) -> list[str]:
    notes = []
    if prompt.mapped:
        pairs = ", ".join(
            f"{safe_text(k, False)!r}→{safe_text(v, False)!r}" for k, v in prompt.mapped.items()
        )
        notes.append(f"not in the model's vocabulary, read as: {pairs}")
    if prompt.dropped:
        chars = " ".join(repr(safe_text(c, False)) for c in prompt.dropped)
        notes.append(f"not in the model's vocabulary, dropped: {chars}")
    return notes


def bar(fraction: float, width: int) -> str:
    """A bar of eighth-blocks, fraction in [0, 1]."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + ("" if rest == 0 else "▏▎▍▌▋▊▉"[rest - 1])


def probs_lines(event, width: int = 80) -> list[str]:
    bar_width = max(8, min(40, width - 34))
    top = max((r.p_temp for r in event.rows), default=1.0) or 1.0
    lines = [f"next character   p(T={event.temperature:g})   p(T=1)"]
    for row in event.rows:
        char = safe_text(row.char, keep_newlines=False)
        label = {" ": "␠", "\n": "␊"}.get(row.char, char)
        cut = "" if row.kept else "  (cut)"
        lines.append(
            f"  {label:<4} {row.p_temp:9.4f} {row.p_one:9.4f}  {bar(row.p_temp / top, bar_width)}{cut}"
        )
    lines.append(
        f"entropy {event.entropy_temp:.3f} bits at T={event.temperature:g}, "
        f"{event.entropy_one:.3f} bits at T=1; {event.mode_note}"
    )
    return lines


def sweep_header(line) -> str:
    return (
        f"T={line.temperature:g}  entropy {line.entropy:.2f} bits/char, "
        f"surprisal {line.surprisal:.2f} bits/char"
    )


def score_lines(event) -> list[str]:
    worst = sorted(range(len(event.bits)), key=lambda i: -event.bits[i])[:5]
    marks = ", ".join(
        f"{safe_text(event.chars[i], False)!r} at {i} ({event.bits[i]:.1f} bits)"
        for i in sorted(worst)
    )
    lines = [
        f"{event.mean_bits:.3f} bits/char over {len(event.bits)} characters",
        f"most surprising: {marks}",
    ]
    if event.dropped:
        lines.append(
            "dropped (not in vocabulary): "
            + " ".join(repr(safe_text(c, False)) for c in event.dropped)
        )
    return lines
