"""A session as a picture: /save FILE.html and /save FILE.svg, through rich's own export.

The transcript is read again from the model's starting state, which by the session's
invariant gives back the very distributions each character was written or read from: its
surprise, the watched cell, and the five likeliest characters at that point, which the HTML
shows when the pointer rests on a character.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from urllib.parse import quote

import numpy as np

from charchat.errors import CharchatError
from charchat.style import CELL_SCALE, SURPRISE_SCALE, status_text, surprise_bits, visible_char

EXPORT_MOST = 50_000  # characters shown; a longer transcript is shown from its end
ALTERNATIVES = 5
WIDTH = 100
SURPRISE_NAMES = ("green", "blue", "yellow", "magenta", "red")  # as SURPRISE_SCALE

# rich's own page, with one addition: a character's link carries its alternatives, which a
# few lines of script turn into the hover text.
HTML_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8">
<title>charchat session</title>
<style>
{stylesheet}
body {{
    color: {foreground};
    background-color: {background};
}}
a {{ color: inherit; text-decoration: none; }}
</style>
</head>
<body>
    <pre style="font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace"><code style="font-family:inherit">{code}</code></pre>
<script>
for (const a of document.querySelectorAll('a[href^="#next:"]')) {{
    a.title = decodeURIComponent(a.getAttribute("href").slice(6));
    a.removeAttribute("href");
    a.className = "alternatives";
}}
</script>
</body>
</html>
"""


def write_picture(session, path: Path) -> int:
    """Write the session as HTML or SVG (by the file's suffix); the characters shown."""
    from rich.console import Console

    suffix = path.suffix.lower()
    if suffix not in (".html", ".htm", ".svg"):
        raise CharchatError("a picture is a .html or .svg file")
    text = session.transcript[-EXPORT_MOST:]
    full = len(text) == session.transcript_length
    console = Console(
        record=True, file=io.StringIO(), width=WIDTH, color_system="truecolor", force_terminal=True
    )
    console.print(_styled(session, text, exact=full, links=suffix != ".svg"), soft_wrap=False)
    console.print(status_text(session), style="reverse")
    if suffix == ".svg":
        body = console.export_svg(title=f"charchat · {session.model.name}")
    else:
        body = console.export_html(inline_styles=True, code_format=HTML_PAGE)
    from charchat.files import write_file

    write_file(path, body.encode("utf-8"))
    return len(text)


def _styled(session, text: str, exact: bool, links: bool):
    from rich.color import Color
    from rich.style import Style
    from rich.text import Text

    vocab, engine = session.model.vocab, session.engine
    prompt_at = _prompt_positions(session, len(text))
    out = Text()
    start = engine.snapshot()
    chars = vocab.chars
    try:
        engine.reset()
        if not exact:  # the text before the part shown, as far as the transcript keeps it
            engine.feed_many(vocab.encode(session.transcript[: -len(text)]).ids)
        for position, char in enumerate(text):
            index = vocab.index.get(char)
            logits = engine.logits().astype(np.float64)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            typed = position in prompt_at
            colour, bold = (None, True) if typed else ("cyan", False)
            if index is not None:
                engine.feed(index)
                if session.cell is not None:
                    layer, cell = session.cell
                    value = math.tanh(float(engine.state[1, layer - 1, cell - 1]))
                    colour = Color.from_ansi(_cell_index(value)).name
                elif session.surprise_colours:
                    colour = _surprise_name(surprise_bits(float(p[index])))
                    bold = typed or colour == SURPRISE_NAMES[-1]
            style = Style(color=colour, bold=bold)
            if links:
                top = np.argsort(-p, kind="stable")[:ALTERNATIVES]
                alternatives = " · ".join(f"{_shown(chars[k])} {p[k]:.0%}" for k in top)
                style += Style(link="#next:" + quote(alternatives))
            out.append(visible_char(char), style)
    finally:
        engine.restore(start)
    return out


def _shown(char: str) -> str:
    return "␣" if char == " " else visible_char(char, keep_newline=False)


def _prompt_positions(session, shown: int) -> set[int]:
    """Positions (in the part shown) of characters the user typed, as far as undo remembers."""
    offset = session.transcript_length - shown
    typed = set()
    for turn in session.turns:
        for k in range(turn.transcript_length, turn.transcript_length + len(turn.prompt)):
            if k >= offset:
                typed.add(k - offset)
    return typed


def _surprise_name(bits: float) -> str:
    for (bound, _, _), name in zip(SURPRISE_SCALE, SURPRISE_NAMES, strict=True):
        if bits < bound:
            return name
    return SURPRISE_NAMES[-1]


def _cell_index(value: float) -> int:
    scale = CELL_SCALE
    return scale[round((max(-1.0, min(1.0, value)) + 1) / 2 * (len(scale) - 1))]
