"""The interactive input loop (prompt_toolkit): keys, history, completion.

While characters stream, the terminal is in raw mode and keys are polled between
characters (and while the pacer waits): Ctrl+C or Esc stops at once, ↑/↓ (or +/-) change the
temperature from the next character, ←/→ the pace, Tab the sampling mode, space pauses.
Everything shown goes through render.Renderer.
"""

from __future__ import annotations

import queue
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input.typeahead import get_typeahead
from prompt_toolkit.key_binding import KeyBindings

from charchat.chat import commands, looking
from charchat.chat.session import Session
from charchat.errors import CharchatError
from charchat.events import Generated, Quit, Reading, Searching
from charchat.style import safe_text, status_text
from charchat.terminal.completion import CommandCompleter, history_for
from charchat.terminal.keyboard import ActionKeys
from charchat.terminal.pace import POLL_SECONDS, Pacer
from charchat.terminal.render import Renderer, wants_colour

STATUS_SECONDS = 0.1  # the status bar is redrawn at most this often (and on every key)
STREAMING_KEYS = "↑↓ temperature, ←→ pace, Tab mode, space pause, Ctrl+C stop"
WORKING_KEYS = "working… Ctrl+C stops"
STATUS_AFTER = 0.2  # a command that takes longer than this gets the status bar


def _now(poll) -> bool:
    return poll()


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
            surprise_colours=lambda: self.session.surprise_colours,
        )
        self.keys = keys  # read while an action runs; None: no keys then
        self.pacer = pacer or Pacer(session.speed)
        self.action_keys = ActionKeys(session, self.pacer)
        self.typeahead = self.action_keys.typeahead  # lines typed while an action runs
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
        stop = self._apply_keys(steering=True)
        while self.paused and not stop:
            self.pacer.sleep(POLL_SECONDS)
            stop = self._apply_keys(steering=True)
        return stop

    @property
    def paused(self) -> bool:
        return self.action_keys.paused

    def _apply_keys(self, steering: bool) -> bool:
        """Read the keys pressed since the last call; True when one asks to stop. `steering`:
        a stream is showing, so ↑↓ ←→ Tab and space act on it; otherwise they are typed."""
        if self.keys is None:
            return False
        # Keys pressed after Enter while prompt_toolkit was still finishing (it waits up to a
        # second for a terminal's answer to its cursor-position request) were kept as its
        # typeahead: they belong to this action, so they come first.
        read = self.keys.read_keys()
        if not read:  # nothing new: a lone Esc held back by the parser (it may begin a
            read = self.keys.flush_keys()  # sequence) is a key of its own by now
        presses = get_typeahead(self.keys) + read
        stop, shown = self.action_keys.apply(presses, steering)
        if shown:
            self.render.draw_status(self.streaming_status() if steering else self.working_status())
        return stop

    def streaming_status(self) -> str:
        keys = STREAMING_KEYS if not self.paused else "paused: space resumes"
        return self._with_typeahead(status_text(self.session) + " │ " + keys)

    def working_status(self) -> str:
        return self._with_typeahead(WORKING_KEYS + " │ " + status_text(self.session))

    def _with_typeahead(self, text: str) -> str:
        """What was typed meanwhile comes first: the bar is cut on the right."""
        waiting = self.typeahead.summary()
        return f"{safe_text(waiting, False)} │ {text}" if waiting else text

    def raw_keys(self):
        """The terminal in raw mode while an action runs: keys arrive as keys, not signals."""
        return self.keys.raw_mode() if self.keys is not None else nullcontext()

    def stream(self, events) -> None:
        """Show one turn, reading keys between characters."""
        with self.raw_keys():
            self._stream(events)

    def _stream(self, events) -> None:
        """Show events as they come. A key that stops asks the session to stop; its events
        then wind down (what was read, what was written, how far it got) and are shown."""
        stopped = False
        self.action_keys.paused = False
        self.pacer.rate = self.session.speed
        self.pacer.start()
        self.render.open_status(self.streaming_status())
        drawn = self.pacer.clock()
        try:
            for event in events:
                self.render.show(event)  # shown first: what is read is on screen
                if not stopped and isinstance(event, (Generated, Reading, Searching)):
                    wait = self.pacer.wait if isinstance(event, Generated) else _now
                    if wait(self.poll_keys):
                        stopped = True
                        self.session.request_stop()
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

    def command(self, line: str) -> bool:
        """Run a command that writes no text: its work happens in a worker thread while this
        one shows its events and reads keys, so Ctrl+C stops it at once and lines typed
        meanwhile are kept. True when the command asks to leave."""
        results: queue.SimpleQueue = queue.SimpleQueue()
        done = object()

        def work():
            try:
                for event in self.session.handle(line):
                    results.put(event)
            except BaseException as e:  # raised again in this thread, below
                results.put(_Failed(e))
            results.put(done)

        worker = threading.Thread(target=work, name="charchat-command", daemon=True)
        leave = stopping = False
        started = drawn = time.monotonic()
        with self.raw_keys():
            worker.start()
            try:
                while (item := _next(results)) is not done:
                    if isinstance(item, _Failed):
                        raise item.error
                    if isinstance(item, Quit):
                        leave = True
                    elif item is not None:
                        self.render.show(item)
                    stopping = self._apply_keys(steering=False) or stopping
                    if stopping:
                        self.session.request_stop()  # again until it ends: never missed
                    now = time.monotonic()
                    if not self.render.status_rows and now - started > STATUS_AFTER:
                        self.render.open_status(self.working_status())
                    elif now - drawn >= STATUS_SECONDS:
                        self.render.draw_status(self.working_status())
                        drawn = now
            finally:
                self.render.close_status()
                worker.join()
        return leave

    @contextmanager
    def ctrl_c_stops_the_action(self):
        """Where the terminal is not raw, Ctrl+C is a signal. Turn it into a request to stop,
        so a long action ends cleanly, session intact."""
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
            f"charchat · {looking.model_summary(self.session.model)} · type a prompt and press Enter; "
            "/help for commands, Ctrl+D to quit"
        )

    def run(self) -> int:
        self.banner()
        with self.ctrl_c_stops_the_action():  # outside prompt_toolkit's own handling
            return self._loop()

    def _loop(self) -> int:
        while True:
            line = self.typeahead.next_line()
            if line is None:
                if self.typeahead.leave:
                    return 0
                try:
                    line = self.prompt.prompt("› ", default=self.typeahead.take_partial())
                except KeyboardInterrupt:
                    self.render.note("(Ctrl+C again stops generation; Ctrl+D or /quit leaves)")
                    continue
                except EOFError:
                    return 0
            elif line.strip():
                self.prompt.history.append_string(line)
            if commands.is_command(line) and "\n" not in line.strip():
                self.render.note(f"› {safe_text(line, False)}")
            try:
                if not commands.writes(line):
                    if self.command(line):
                        return 0
                    continue
                self.stream(self.session.handle(line))
            except CharchatError as e:
                self.render.error(str(e))


class _Failed:
    """An exception raised in the worker thread, carried to the REPL's thread."""

    def __init__(self, error: BaseException):
        self.error = error


def _next(results: queue.SimpleQueue):
    """The worker's next result, or None when none came within a poll's time."""
    try:
        return results.get(timeout=POLL_SECONDS)
    except queue.Empty:
        return None


def run_repl(session: Session) -> int:
    from prompt_toolkit.input import create_input

    keys = create_input()
    return Repl(session, input=keys, keys=keys).run()
