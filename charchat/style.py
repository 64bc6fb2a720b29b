"""How text is shown, wherever it is shown (terminal, pipe, exported picture): characters
made safe to print, the colour scales, and the status line.

Text from a model, a file or a user may hold control characters. Nothing of it reaches the
terminal raw: C0/C1 controls, DEL and bidi overrides become visible symbols. Since we map
single characters, an escape sequence split across generated characters is harmless too.
"""

from __future__ import annotations

import math

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


# ---------------------------------------------------------------- colours

# SGR colours: what the user typed, what the model wrote, and the surprise scale.
USER = "\x1b[1m"
MODEL = "\x1b[36m"
DIM = "\x1b[2m"
UNDERLINE = "\x1b[4m"  # generated text found verbatim in the training text
ERROR = "\x1b[31m"
REVERSE = "\x1b[7m"
RESET = "\x1b[0m"
SURPRISE_SCALE = (  # (upper bound in bits, colour, label)
    (1.0, "\x1b[32m", "<1 bit"),
    (2.0, "\x1b[34m", "1-2"),
    (4.0, "\x1b[33m", "2-4"),
    (7.0, "\x1b[35m", "4-7"),
    (float("inf"), "\x1b[31;1m", "7+ bits"),
)


CELL_SCALE = (21, 27, 33, 39, 75, 250, 216, 209, 203, 197, 196)  # xterm-256: blue, grey, red


def cell_colour(value: float) -> str:
    """A diverging scale for a cell's activation: blue for -1, grey near 0, red for +1."""
    index = round((max(-1.0, min(1.0, value)) + 1) / 2 * (len(CELL_SCALE) - 1))
    return f"\x1b[38;5;{CELL_SCALE[index]}m"


def surprise_colour(bits: float) -> str:
    for bound, colour, _ in SURPRISE_SCALE:
        if bits < bound:
            return colour
    return SURPRISE_SCALE[-1][1]


def surprise_bits(probability: float) -> float:
    return -math.log2(probability) if probability > 0 else math.inf


def status_text(session, width: int | None = None) -> str:
    """One line: model, sampling settings, transcript length, last entropy, speed."""
    settings = session.settings
    parts = [session.model.name, f"T {settings.temperature:g}", settings.mode_text()]
    parts.append("len ∞" if math.isinf(session.length) else f"len {session.length}")
    if session.cell is not None:
        parts.append("cell {}:{} (blue -1, red +1)".format(*session.cell))
    if session.novelty is not None:
        parts.append(f"longest copy {session.novelty.turn_longest}")
    if session.stops:
        parts.append(f"stop ×{len(session.stops)}")
    if session.norepeat:
        parts.append(f"norepeat {session.norepeat}")
    if session.adapting is not None:
        parts.append(session.adapting.status())
    parts.append(f"{session.transcript_length:,} chars")
    if session.last_entropy is not None:
        parts.append(f"H {session.last_entropy:.2f} bits")
    parts.append(f"pace {session.speed:g}/s" if session.speed else "unpaced")
    parts.append(engine_text(session))
    return fit(" │ ".join(p for p in parts if p), width)


def engine_text(session) -> str:
    """How hard the engine works. Paced, it waits for the reader most of the time: the share
    of the turn it spent idle says so (its speed in the short bursts between waits, with the
    weights gone cold, would read as a slow engine). Unpaced: characters a second."""
    capacity = f"{session.engine_speed:,.0f} chars/s" if session.engine_speed else ""
    if session.speed and session.busy_share is not None:
        idle = f"engine idle {1 - session.busy_share:.0%}"
        return f"{idle} (unpaced {capacity})" if capacity else idle
    return f"engine {capacity}" if capacity else ""


def fit(text: str, width: int | None) -> str:
    if width is not None and len(text) > width - 1:
        return text[: max(0, width - 2)] + "…"
    return text


def error_line(message: str) -> str:
    """An error as charchat prints it on stderr: one line, nothing raw."""
    return f"charchat: error: {safe_text(message, keep_newlines=False)}\n"
