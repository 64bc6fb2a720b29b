"""The one place events become output: on a terminal (colour, status bar) or plain (pipes).

What is shown and how it is made safe and coloured is in style.py.
"""

from __future__ import annotations

import math
import os
import shutil
import sys

from charchat import events
from charchat.style import (
    DIM,
    ERROR,
    MODEL,
    RESET,
    REVERSE,
    SURPRISE_SCALE,
    UNDERLINE,
    USER,
    cell_colour,
    fit,
    safe_text,
    surprise_bits,
    surprise_colour,
    visible_char,
)
from charchat.terminal.lines import probs_lines, score_lines, sweep_header, unknown_notes


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


# ---------------------------------------------------------------- the renderer


class Renderer:
    """Session events -> output, the same for the REPL and for pipes.

    terminal=True: everything goes to `out` (the terminal), coloured when `colour`, with a
    status bar pinned to the bottom row while a turn streams. terminal=False (pipes): only
    what the user asked for (generated text, tables) goes to `out`, plain; the rest to `err`.
    """

    def __init__(
        self, out, err=None, terminal=False, colour=False, echo=False, surprise_colours=False
    ):
        self.out = out
        self.err = err if err is not None else out
        self.terminal = terminal
        self.colour = colour and terminal
        self.echo = echo  # plain mode: write each prompt before its continuation
        # Whether written characters are coloured by surprise: the session's own flag when
        # given as a function of it (so /session load is followed), else a flag of our own.
        self._surprise = surprise_colours if callable(surprise_colours) else None
        self._surprise_flag = bool(surprise_colours) if self._surprise is None else False
        self.wrote_text = False  # in the current turn
        self.status_rows = 0  # the terminal's height while the status bar is pinned
        self.open_code = ""  # the colour streamed characters are being written in
        self.progress_shown = False  # a "reading the prompt" line is on screen
        self.status_shown = ""  # the status bar's text, while it is pinned
        self.activity = ""  # work under way, shown in front of the status bar
        self._show = {
            events.PromptRead: self._prompt,
            events.Generated: self._generated,
            events.TurnDone: lambda e: self.end_turn(),
            events.Info: lambda e: self.note(safe_text(e.text)),
            events.ModelCard: self._card,
            events.Probs: lambda e: self._answer(probs_lines(e, self.width())),
            events.SweepLine: self._sweep_line,
            events.Reading: self._reading,
            events.Searching: self._searching,
            events.Score: self._score,
            events.SurpriseColours: self._surprise_colours,
            events.CellStrips: self._cell_strips,
            events.Quit: lambda e: None,
        }

    def show(self, event) -> None:
        self._show[type(event)](event)

    # ---------------------------------------------------------- writing

    def style(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.colour and code else text

    def write(self, text: str, stream=None) -> None:
        stream = stream or self.out
        stream.write(text)
        stream.flush()

    def line(self, text: str, code: str = "", stream=None) -> None:
        self.close_colour()
        self.write(self.style(code, text) + "\n", stream)

    def stream_char(self, code: str, char: str) -> None:
        """One streamed character; a colour code only where the colour changes."""
        if self.colour and code != self.open_code:
            char = (RESET if self.open_code else "") + code + char
            self.open_code = code
        self.write(char)

    def close_colour(self) -> None:
        if self.open_code:
            self.write(RESET)
            self.open_code = ""

    def note(self, text: str) -> None:
        """Information about the session: dim on a terminal (on a line of its own), stderr in a
        pipe."""
        if self.terminal:
            if self.wrote_text:
                self.end_turn()
            self.line(text, DIM)
        else:
            self.line(f"charchat: {text}", stream=self.err)

    def error(self, text: str) -> None:
        if self.terminal:
            self.line(f"error: {safe_text(text, False)}", ERROR)
        else:
            self.line(f"charchat: error: {safe_text(text, False)}", stream=self.err)

    def width(self) -> int:
        return shutil.get_terminal_size().columns if self.terminal else 80

    def _answer(self, lines: list[str], code: str = "") -> None:
        """What a looking command was asked for: on the terminal, or on stdout in a pipe."""
        for text in lines:
            self.line(text, code)

    # ---------------------------------------------------------- a turn

    def _reading(self, event) -> None:
        self._progress("reading the prompt", event.done, event.total)

    def _searching(self, event) -> None:
        """In the status bar: the prompt may already stand on the line the text continues."""
        self.activity = f"beam search: {event.done:,} of {event.total:,} characters"
        self.draw_status(self.status_shown)

    def _progress(self, what: str, done: int, total: int) -> None:
        """One line that counts up in place, on a terminal only; cleared by what follows."""
        if not self.terminal:
            return
        self.close_colour()
        text = f"{what}: {done:,} of {total:,} characters ({done / max(1, total):.0%})"
        self.write("\r\x1b[2K" + self.style(DIM, text) + " (Ctrl+C stops)")
        self.progress_shown = True

    def _clear_progress(self) -> None:
        if self.progress_shown:
            self.write("\r\x1b[2K")
            self.progress_shown = False

    def _prompt(self, event) -> None:
        self._clear_progress()
        for text in unknown_notes(event):
            self.note(text)
        if not event.text or not (self.terminal or self.echo):
            return
        self.wrote_text = True
        if event.cells is not None and self.colour:
            for char, value in zip(event.text, event.cells, strict=True):
                self.stream_char(USER + cell_colour(value), visible_char(char))
        elif event.surprisal is not None and self.colour:
            for char, bits in zip(event.text, event.surprisal, strict=True):
                self.stream_char(USER + surprise_colour(bits), visible_char(char))
        else:
            self.stream_char(USER, safe_text(event.text))

    def _generated(self, event) -> None:
        if self.activity:
            self.activity = ""
            self.draw_status(self.status_shown)
        surprise = surprise_bits(event.probability)
        code = surprise_colour(surprise) if self.surprise_colours else MODEL
        if event.cell is not None:
            code = cell_colour(event.cell)
        self.stream_char(code + (UNDERLINE if event.copied else ""), visible_char(event.char))
        self.wrote_text = True

    def end_turn(self, stopped: bool = False) -> None:
        self._clear_progress()
        self.close_colour()
        if self.wrote_text:
            self.write("\n")
        self.wrote_text = False
        if stopped:
            self.note("(stopped)")

    # ---------------------------------------------------------- looking commands

    def _card(self, event) -> None:
        key_width = max(len(k) for k, _ in event.rows)
        for key, value in event.rows:
            self.line(f"{self.style(DIM, key.ljust(key_width))}  {safe_text(value, False)}")

    def _cell_strips(self, event) -> None:
        """Each cell: its name and correlation, then the text coloured by its activation."""
        self.line(safe_text(event.title, False), DIM)
        for found in event.cells:
            r = "" if math.isnan(found.correlation) else f"  r = {found.correlation:+.2f}"
            self.line(f"layer {found.layer} cell {found.cell}{r}")
            for char, value in zip(event.text, found.values, strict=True):
                self.stream_char(cell_colour(float(value)), visible_char(char, keep_newline=False))
            self.line("")

    def _sweep_line(self, line) -> None:
        self.line(sweep_header(line), DIM)
        self.line(safe_text(line.text, keep_newlines=False), MODEL)

    def _score(self, event) -> None:
        if self.colour:
            self.line(
                "".join(
                    self.style(surprise_colour(bits), visible_char(char))
                    for char, bits in zip(event.chars, event.bits, strict=True)
                )
            )
        self._answer(score_lines(event), DIM)

    @property
    def surprise_colours(self) -> bool:
        return self._surprise() if self._surprise is not None else self._surprise_flag

    def _surprise_colours(self, event) -> None:
        self._surprise_flag = event.on
        if not event.on:
            self.note("colour by surprise off")
        elif self.colour:
            legend = " ".join(self.style(colour, label) for _, colour, label in SURPRISE_SCALE)
            self.line("colour by surprise on; how surprising each character was: " + legend)
        elif self.terminal:
            self.note("colour by surprise on, but this terminal shows no colour (NO_COLOR?)")
        else:
            self.note("colour by surprise on (piped output stays plain)")

    # ---------------------------------------------------------- the status bar

    def open_status(self, text: str) -> None:
        """Pin a status line to the bottom row (a scroll region) while a turn streams."""
        if not self.terminal or not self.out.isatty():
            return
        rows = shutil.get_terminal_size().lines
        if rows < 3:
            return
        self.status_rows = rows
        # make sure the cursor is not on the last row, then pin that row outside the region
        self.write(f"\n\x1b[1A\x1b7\x1b[1;{rows - 1}r\x1b8")
        self.draw_status(text)

    def draw_status(self, text: str) -> None:
        self.status_shown = text
        if not self.status_rows:
            return
        text = fit(f"{self.activity} │ {text}" if self.activity else text, self.width())
        self.write(f"\x1b7\x1b[{self.status_rows};1H\x1b[2K{self.style(REVERSE, text)}\x1b8")

    def close_status(self) -> None:
        self.activity = ""
        if not self.status_rows:
            return
        self.write(f"\x1b7\x1b[r\x1b[{self.status_rows};1H\x1b[2K\x1b8")
        self.status_rows = 0
