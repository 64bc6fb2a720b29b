"""The interactive input loop (prompt_toolkit): keys, history, completion.

While characters stream, the terminal is in raw mode and keys are polled between
characters: Ctrl+C stops at once, Up/Down or +/- change the temperature from the next
character. Everything shown goes through render.Renderer.
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
from charchat.events import Generated, Quit
from charchat.render import Renderer, safe_text, status_text, wants_colour
from charchat.session import Session
from charchat.settings import MAX_TEMPERATURE, MODES

TEMPERATURE_STEP = 0.1
STATUS_EVERY = 16  # redraw the status bar every this many characters (and on changes)
STREAMING_KEYS = "↑↓ temperature, Ctrl+C stop"


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
        out = out or sys.stdout
        self.render = Renderer(
            out,
            terminal=True,
            colour=wants_colour(out) if colour is None else colour,
            surprise_colours=session.surprise_colours,
        )
        self.keys = keys  # polled between streamed characters; None: no keys while streaming
        self.typeahead = ""  # text typed while streaming, offered at the next prompt
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

    def toolbar(self):
        width = shutil.get_terminal_size().columns - 1
        return FormattedText([("", " " + status_text(self.session, width))])

    def streaming_status(self) -> str:
        return status_text(self.session) + " │ " + STREAMING_KEYS

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
        self.render.draw_status(self.streaming_status())

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
        self.render.open_status(self.streaming_status())
        started = time.perf_counter()
        try:
            for event in events:
                self.render.show(event)
                if not isinstance(event, Generated):
                    continue
                shown += 1
                if self.poll_keys():
                    stopped = True
                    break
                if shown % STATUS_EVERY == 0:
                    self.session.last_speed = shown / max(1e-9, time.perf_counter() - started)
                    self.render.draw_status(self.streaming_status())
        finally:
            if hasattr(events, "close"):
                events.close()  # the generator stops; state holds exactly what was shown
            self.render.close_status()
        if stopped:
            self.render.end_turn(stopped=True)

    # ---------------------------------------------------------- the loop

    def banner(self) -> None:
        self.render.note(
            f"charchat · {self.session.model_summary()} · type a prompt and press Enter; "
            "/help for commands, Ctrl+D to quit"
        )

    def run(self) -> int:
        self.banner()
        while True:
            try:
                line = self.prompt.prompt("› ", default=self.typeahead)
                self.typeahead = ""
            except KeyboardInterrupt:
                self.render.note("(Ctrl+C again stops generation; Ctrl+D or /quit leaves)")
                continue
            except EOFError:
                return 0
            is_command = commands.is_command(line) and "\n" not in line.strip()
            if is_command:
                self.render.note(f"› {safe_text(line, False)}")
            try:
                events = self.session.handle(line)
                if not is_command:
                    self.stream(events)
                    continue
                for event in events:
                    if isinstance(event, Quit):
                        return 0
                    self.render.show(event)
            except CharchatError as e:
                self.render.error(str(e))


def run_repl(session: Session) -> int:
    from prompt_toolkit.input import create_input

    keys = create_input()
    return Repl(session, input=keys, keys=keys).run()
