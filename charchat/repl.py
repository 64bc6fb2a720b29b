"""The interactive terminal session (prompt_toolkit for input, plain escape codes for streaming).

While characters stream, the terminal is in raw mode and keys are polled between
characters: Ctrl+C stops at once, Up/Down or +/- change the temperature from the next
character, and a status bar pinned to the bottom row (a scroll region) shows it.
"""

from __future__ import annotations

import shutil
import sys
import time

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.keys import Keys

from charchat import commands
from charchat.errors import CharchatError
from charchat.render import (
    probs_lines,
    safe_text,
    score_lines,
    sweep_lines,
    unknown_notes,
    visible_char,
    wants_colour,
)
from charchat.sampling import MAX_TEMPERATURE, MODES
from charchat.session import (
    ColourChanged,
    Generated,
    Info,
    ModelCard,
    Notice,
    Probs,
    Quit,
    Score,
    Seeded,
    Session,
    Sweep,
    TurnDone,
)

TEMPERATURE_STEP = 0.1
STATUS_EVERY = 16  # redraw the status bar every this many characters (and on changes)

# SGR colours: what the user typed, what the model wrote, and the surprise scale.
USER = "\x1b[1m"
MODEL = "\x1b[36m"
DIM = "\x1b[2m"
ERROR = "\x1b[31m"
RESET = "\x1b[0m"
SURPRISE_SCALE = (  # (upper bound in bits, colour, label)
    (1.0, "\x1b[32m", "<1 bit"),
    (2.0, "\x1b[36m", "1-2"),
    (4.0, "\x1b[33m", "2-4"),
    (7.0, "\x1b[35m", "4-7"),
    (float("inf"), "\x1b[31;1m", "7+ bits"),
)


def surprise_colour(bits: float) -> str:
    for bound, colour, _ in SURPRISE_SCALE:
        if bits < bound:
            return colour
    return SURPRISE_SCALE[-1][1]


def surprise_legend() -> str:
    return " ".join(f"{colour}{label}{RESET}" for _, colour, label in SURPRISE_SCALE)


class CommandCompleter(Completer):
    """Commands after '/', model names after '/model ', modes after '/mode '."""

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        if " " not in text:
            for word in commands.completion_words():
                if word.startswith(text.lower()):
                    yield Completion(word + " ", start_position=-len(text), display=word)
            return
        name, _, arg = text.partition(" ")
        options: list[str] = []
        if name == "/model":
            from charchat.modelfile import available_models

            options = [n for n, _, _ in available_models()]
        elif name == "/mode":
            options = list(MODES)
        elif name in ("/color", "/colour"):
            options = ["on", "off"]
        elif name == "/help":
            options = [c.name for c in commands.COMMANDS]
        for option in options:
            if option.startswith(arg):
                yield Completion(option, start_position=-len(arg))


def history_for() -> FileHistory | InMemoryHistory:
    from charchat.modelfile import user_data_dir

    folder = user_data_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "history"
        path.touch(exist_ok=True)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()


class Repl:
    def __init__(
        self,
        session: Session,
        input=None,
        output=None,
        out=None,
        colour=None,
        history=None,
        keys=None,
    ):
        self.session = session
        self.out = out or sys.stdout
        self.colour = wants_colour(self.out) if colour is None else colour
        self.keys = keys  # polled between streamed characters; None: no keys while streaming
        self.typeahead = ""  # text typed while streaming, offered at the next prompt
        self.status_visible = False
        bindings = KeyBindings()

        @bindings.add("c-c")
        def _(event):
            buffer = event.app.current_buffer
            if buffer.text:
                buffer.reset()
            else:
                event.app.exit(exception=KeyboardInterrupt)

        self.prompt = PromptSession(
            history=history if history is not None else history_for(),
            completer=CommandCompleter(),
            complete_while_typing=False,
            key_bindings=bindings,
            bottom_toolbar=self.toolbar,
            input=input,
            output=output,
            erase_when_done=True,
            enable_suspend=True,
        )

    # ---------------------------------------------------------- output helpers

    def style(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.colour else text

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def line(self, text: str, code: str = "") -> None:
        self.write(self.style(code, text) + "\n" if code else text + "\n")

    def status_text(self, width: int | None = None) -> str:
        s = self.session
        settings = s.settings
        parts = [s.model.name, f"T {settings.temperature:g}", settings.mode]
        if settings.mode == "top-k":
            parts[-1] += f" {settings.top_k}"
        if settings.mode == "top-p":
            parts[-1] += f" {settings.top_p:g}"
        parts.append(f"len {s.length}")
        parts.append(f"{s.transcript_length:,} chars")
        if s.last_entropy is not None:
            parts.append(f"H {s.last_entropy:.2f} bits")
        if s.last_speed:
            parts.append(f"{s.last_speed:,.0f} chars/s")
        text = " │ ".join(parts)
        if width is not None and len(text) > width - 1:
            text = text[: max(0, width - 2)] + "…"
        return text

    def toolbar(self):
        return FormattedText([("", " " + self.status_text(shutil.get_terminal_size().columns - 1))])

    # ---------------------------------------------------------- status bar while streaming

    def open_status(self) -> None:
        if not self.out.isatty():
            return
        rows = shutil.get_terminal_size().lines
        if rows < 3:
            return
        self.rows = rows
        # make sure the cursor is not on the last row, then pin that row outside the scroll region
        self.write(f"\n\x1b[1A\x1b7\x1b[1;{rows - 1}r\x1b8")
        self.status_visible = True
        self.draw_status()

    def draw_status(self) -> None:
        if not self.status_visible:
            return
        width = shutil.get_terminal_size().columns
        text = self.status_text() + " │ ↑↓ temperature, Ctrl+C stop"
        if len(text) > width - 1:
            text = text[: max(0, width - 2)] + "…"
        reverse = "\x1b[7m" if self.colour else ""
        self.write(
            f"\x1b7\x1b[{self.rows};1H\x1b[2K{reverse}{text}{RESET if self.colour else ''}\x1b8"
        )

    def close_status(self) -> None:
        if not self.status_visible:
            return
        self.write(f"\x1b7\x1b[r\x1b[{self.rows};1H\x1b[2K\x1b8")
        self.status_visible = False

    # ---------------------------------------------------------- streaming one turn

    def poll_keys(self) -> bool:
        """Apply keys pressed while streaming; True when the user asked to stop."""
        if self.keys is None:
            return False
        stop = False
        for press in self.keys.read_keys():
            key = press.key
            if key in (Keys.ControlC, Keys.ControlD, Keys.Escape):
                stop = True
            elif key == Keys.Up or press.data == "+":
                self.nudge_temperature(+TEMPERATURE_STEP)
            elif key == Keys.Down or press.data == "-":
                self.nudge_temperature(-TEMPERATURE_STEP)
            elif key == Keys.Backspace:
                self.typeahead = self.typeahead[:-1]
            elif len(press.data) == 1 and press.data.isprintable():
                self.typeahead += press.data
        return stop

    def nudge_temperature(self, delta: float) -> None:
        s = self.session
        t = min(MAX_TEMPERATURE, max(0.0, round(s.settings.temperature + delta, 2)))
        s.settings = s.settings.with_(temperature=t)
        self.draw_status()

    def stream(self, events) -> None:
        """Show one turn; the terminal is raw meanwhile, so keys arrive as keys, not signals."""
        if self.keys is None:
            self._stream(events)
        else:
            with self.keys.raw_mode():
                self._stream(events)

    def _stream(self, events) -> None:
        shown = 0
        stopped = False
        wrote = False
        self.open_status()
        started = time.perf_counter()
        try:
            for event in events:
                if isinstance(event, Seeded):
                    for note in unknown_notes(event):
                        self.line(note, DIM)
                    self.show_seed(event)
                    wrote = wrote or bool(event.text)
                elif isinstance(event, Generated):
                    char = visible_char(event.char)
                    if self.session.color:
                        bits = -_log2(event.probability)
                        self.write(self.style(surprise_colour(bits), char))
                    else:
                        self.write(self.style(MODEL, char))
                    wrote = True
                    shown += 1
                    if self.poll_keys():
                        stopped = True
                        break
                    if shown % STATUS_EVERY == 0:
                        self.session.last_speed = shown / max(1e-9, time.perf_counter() - started)
                        self.draw_status()
                elif isinstance(event, TurnDone):
                    pass
        finally:
            if hasattr(events, "close"):
                events.close()  # the generator stops; state holds exactly what was shown
            self.close_status()
        if wrote:
            self.write("\n")
        if stopped:
            self.line("(stopped)", DIM)

    def show_seed(self, event: Seeded) -> None:
        if not event.text:
            return
        if event.surprisal is not None:
            for char, bits in zip(event.text, event.surprisal, strict=True):
                self.write(self.style(USER + surprise_colour(bits), visible_char(char)))
        else:
            self.write(self.style(USER, safe_text(event.text)))

    # ---------------------------------------------------------- other events

    def show(self, event) -> bool:
        """Show a command's result; False when the session should end."""
        width = shutil.get_terminal_size().columns
        if isinstance(event, Quit):
            return False
        if isinstance(event, Info):
            self.line(safe_text(event.text), DIM)
        elif isinstance(event, ColourChanged):
            if not event.on:
                self.line("colour by surprise off", DIM)
            elif self.colour:
                self.line(
                    "colour by surprise on; how surprising each character was: " + surprise_legend()
                )
            else:
                self.line(
                    "colour by surprise on, but this terminal shows no colour (NO_COLOR?)", DIM
                )
        elif isinstance(event, Notice):
            self.line(safe_text(event.text), DIM)
        elif isinstance(event, ModelCard):
            key_width = max(len(k) for k, _ in event.rows)
            for key, value in event.rows:
                self.line(f"{self.style(DIM, key.ljust(key_width))}  {safe_text(value, False)}")
        elif isinstance(event, Probs):
            for text in probs_lines(event, width):
                self.line(text)
        elif isinstance(event, Sweep):
            for i, text in enumerate(sweep_lines(event)):
                self.line(text, DIM if i % 2 == 0 else MODEL)
        elif isinstance(event, Score):
            self.show_score(event)
        return True

    def show_score(self, event: Score) -> None:
        coloured = "".join(
            self.style(surprise_colour(bits), visible_char(char))
            for char, bits in zip(event.chars, event.bits, strict=True)
        )
        self.line(coloured)
        for text in score_lines(event):
            self.line(text, DIM)

    # ---------------------------------------------------------- the loop

    def banner(self) -> None:
        self.line(
            f"charchat · {self.session.model_summary()} · type a few characters and press Enter; "
            "/help for commands, Ctrl+D to quit",
            DIM,
        )

    def run(self) -> int:
        self.banner()
        while True:
            try:
                line = self.prompt.prompt("› ", default=self.typeahead)
                self.typeahead = ""
            except KeyboardInterrupt:
                self.line("(Ctrl+C again stops generation; Ctrl+D or /quit leaves)", DIM)
                continue
            except EOFError:
                return 0
            is_command = commands.is_command(line) and "\n" not in line.strip()
            if is_command:
                self.line(f"› {safe_text(line, False)}", DIM)
            try:
                events = self.session.handle(line)
            except CharchatError as e:
                self.line(f"error: {safe_text(str(e), False)}", ERROR)
                continue
            if is_command:
                try:
                    for event in events:
                        if not self.show(event):
                            return 0
                except CharchatError as e:
                    self.line(f"error: {safe_text(str(e), False)}", ERROR)
            else:
                self.stream(events)


def _log2(p: float) -> float:
    import math

    return math.log2(p) if p > 0 else -float("inf")


def run_repl(session: Session) -> int:
    from prompt_toolkit.input import create_input

    keys = create_input()
    return Repl(session, input=keys, keys=keys).run()
