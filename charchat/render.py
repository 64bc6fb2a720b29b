"""Showing text safely, and the rich consoles the edges print with.

Text from a model, a file or a user may hold control characters. Nothing of it reaches the
terminal raw: C0/C1 controls, DEL and bidi overrides become visible symbols. Since we map
single characters, an escape sequence split across generated characters is harmless too.
"""

from __future__ import annotations

import os
import sys

# Characters that reorder or hide text on a terminal (bidi controls, zero-width marks).
_INVISIBLE = (
    set("\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u2060\ufeff")
    | {chr(c) for c in range(0x202A, 0x202F)}
    | {chr(c) for c in range(0x2066, 0x206A)}
)


def visible_char(char: str, keep_newline: bool = True) -> str:
    """A printable stand-in for one character (itself when it is safe)."""
    code = ord(char)
    if char == "\n" and keep_newline:
        return char
    if char == "\t":
        return char if keep_newline else "⇥"
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400 block: ␀ ␁ … ␛ …
    if code == 0x7F:
        return "␡"
    if 0x80 <= code < 0xA0:
        return f"<U+{code:04X}>"
    if char in _INVISIBLE:
        return f"<U+{code:04X}>"
    return char


def safe_text(text: str, keep_newlines: bool = True) -> str:
    if text.isprintable() and "\x7f" not in text:
        return text if not any(c in _INVISIBLE for c in text) else _map(text, keep_newlines)
    return _map(text, keep_newlines)


def _map(text: str, keep_newlines: bool) -> str:
    return "".join(visible_char(c, keep_newlines) for c in text)


def wants_colour(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console():
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- plain text of session events


def unknown_notes(seeded) -> list[str]:
    notes = []
    if seeded.mapped:
        pairs = ", ".join(
            f"{safe_text(k, False)!r}→{safe_text(v, False)!r}" for k, v in seeded.mapped.items()
        )
        notes.append(f"not in the model's vocabulary, read as: {pairs}")
    if seeded.dropped:
        chars = " ".join(repr(safe_text(c, False)) for c in seeded.dropped)
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


def sweep_lines(event) -> list[str]:
    lines = []
    for line in event.lines:
        lines.append(
            f"T={line.temperature:g}  entropy {line.entropy:.2f} bits/char, "
            f"surprisal {line.surprisal:.2f} bits/char"
        )
        lines.append(safe_text(line.text, keep_newlines=False))
    return lines


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


def plain_text(event) -> tuple[str, bool]:
    """(text, belongs on stdout) for an event in a piped session."""
    from charchat import session as s

    if isinstance(event, s.Probs):
        return "\n".join(probs_lines(event)), True
    if isinstance(event, s.Sweep):
        return "\n".join(sweep_lines(event)), True
    if isinstance(event, s.Score):
        return "\n".join(score_lines(event)), True
    if isinstance(event, s.ModelCard):
        return "\n".join(f"{k:<22} {safe_text(v, False)}" for k, v in event.rows), True
    if isinstance(event, s.ColourChanged):
        return "colour by surprise " + (
            "on (piped output stays plain)" if event.on else "off"
        ), False
    if isinstance(event, s.Notice):
        return f"charchat: {safe_text(event.text)}", False
    if isinstance(event, s.Info):
        return safe_text(event.text), False
    return safe_text(str(event)), False
