"""The interactive input loop (prompt_toolkit): keys, history, completion.

While characters stream, the terminal is in raw mode and keys are polled between
characters (and while the pacer waits): Ctrl+C or Esc stops at once, ↑/↓ (or +/-) change the
temperature from the next character, ←/→ the pace, Tab the sampling mode, space pauses.
Everything shown goes through render.Renderer.
"""

from __future__ import annotations

import shutil
import signal
import sys
import threading
from contextlib import contextmanager

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input.typeahead import get_typeahead
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.keys import Keys

from charchat import commands
from charchat.errors import CharchatError
from charchat.events import Generated, Quit, Reading
from charchat.pace import POLL_SECONDS, Pacer
from charchat.render import Renderer, safe_text, status_text, wants_colour
from charchat.session import Session
from charchat.settings import MAX_TEMPERATURE, MODES

TEMPERATURE_STEP = 0.1
STATUS_SECONDS = 0.1  # the status bar is redrawn at most this often (and on every key)
STREAMING_KEYS = "↑↓ temperature, ←→ pace, Tab mode, space pause, Ctrl+C stop"
STREAM_MODES = tuple(m for m in MODES if m != "beam")  # what Tab cycles through


def _now(poll) -> bool:
    return poll()


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
        pacer=None,
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
        self.pacer = pacer or Pacer(session.speed)
        self.paused = False
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

    # ---------------------------------------------------------- streaming one turn

    def poll_keys(self) -> bool:
        """Apply keys pressed while streaming; True when the user asked to stop. While paused,
        wait here for the key that resumes."""
        stop = self._apply_keys()
        while self.paused and not stop:
            self.pacer.sleep(POLL_SECONDS)
            stop = self._apply_keys()
        return stop

    def _apply_keys(self) -> bool:
        if self.keys is None:
            return False
        stop = False
        # Keys pressed after Enter while prompt_toolkit was still finishing (it waits up to a
        # second for a terminal's answer to its cursor-position request) were kept as its
        # typeahead: they belong to this turn, so they come first.
        for press in get_typeahead(self.keys) + self.keys.read_keys():
            key, data = press.key, press.data
            if key in (Keys.ControlC, Keys.ControlD, Keys.Escape):
                stop = True
            elif key == Keys.Up or data == "+":
                self.nudge_temperature(+TEMPERATURE_STEP)
            elif key == Keys.Down or data == "-":
                self.nudge_temperature(-TEMPERATURE_STEP)
            elif key == Keys.Right:
                self.pacer.faster()
            elif key == Keys.Left:
                self.pacer.slower()
            elif key == Keys.ControlI:  # Tab
                self.cycle_mode()
            elif data == " " and not self.typeahead:
                self.paused = not self.paused
            elif key == Keys.Backspace:
                self.typeahead = self.typeahead[:-1]
            elif len(data) == 1 and data.isprintable():
                self.typeahead += data
            else:
                continue
            self.session.speed = self.pacer.rate
            self.render.draw_status(self.streaming_status())
        return stop

    def nudge_temperature(self, delta: float) -> None:
        s = self.session
        t = min(MAX_TEMPERATURE, max(0.0, round(s.settings.temperature + delta, 2)))
        s.settings = s.settings.with_(temperature=t)

    def cycle_mode(self) -> None:
        s = self.session
        if s.settings.mode in STREAM_MODES:
            following = STREAM_MODES[(STREAM_MODES.index(s.settings.mode) + 1) % len(STREAM_MODES)]
            s.settings = s.settings.with_(mode=following)

    def streaming_status(self) -> str:
        keys = STREAMING_KEYS if not self.paused else "paused: space resumes"
        return status_text(self.session) + " │ " + keys

    def stream(self, events) -> None:
        """Show one turn; the terminal is raw meanwhile, so keys arrive as keys, not signals."""
        if self.keys is None:
            self._stream(events)
        else:
            with self.keys.raw_mode():
                self._stream(events)

    def _stream(self, events) -> None:
        stopped = False
        self.paused = False
        self.pacer.rate = self.session.speed
        self.pacer.start()
        self.render.open_status(self.streaming_status())
        drawn = self.pacer.clock()
        try:
            for event in events:
                self.render.show(event)  # shown first: what is read is on screen
                if isinstance(event, (Generated, Reading)):
                    wait = self.pacer.wait if isinstance(event, Generated) else _now
                    if wait(self.poll_keys):
                        stopped = True
                        break
                if self.pacer.clock() - drawn >= STATUS_SECONDS:
                    self.render.draw_status(self.streaming_status())
                    drawn = self.pacer.clock()
        finally:
            if hasattr(events, "close"):
                events.close()  # the generator stops; state holds exactly what was shown
            self.render.close_status()
        if stopped:
            self.render.end_turn(stopped=True)

    # ---------------------------------------------------------- commands

    @contextmanager
    def ctrl_c_stops_the_action(self):
        """Outside a stream the terminal is not raw: Ctrl+C is a signal. Turn it into a
        request to stop, so a long /sweep, /score or /model ends cleanly, session intact."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, lambda signum, frame: self.session.request_stop())
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ---------------------------------------------------------- the loop

    def banner(self) -> None:
        self.render.note(
            f"charchat · {self.session.model_summary()} · type a prompt and press Enter; "
            "/help for commands, Ctrl+D to quit"
        )

    def run(self) -> int:
        self.banner()
        with self.ctrl_c_stops_the_action():  # outside prompt_toolkit's own handling
            return self._loop()

    def _loop(self) -> int:
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
                if not commands.writes(line):
                    for event in events:
                        if isinstance(event, Quit):
                            return 0
                        self.render.show(event)
                    continue
                self.stream(events)
            except CharchatError as e:
                self.render.error(str(e))


def run_repl(session: Session) -> int:
    from prompt_toolkit.input import create_input

    keys = create_input()
    return Repl(session, input=keys, keys=keys).run()
