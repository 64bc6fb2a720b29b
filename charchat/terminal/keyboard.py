"""Keys pressed while an action runs (the terminal is raw then): what each one does.

Ctrl+C and Esc stop the action; Ctrl+D stops it and leaves once the lines typed meanwhile have
run. While a stream shows, ↑/↓ (or +/-) change the temperature from the next character, ←/→
the pace, Tab the sampling mode, space pauses. Everything else is typed ahead (typeahead.py).
"""

from __future__ import annotations

from prompt_toolkit.keys import Keys

from charchat.chat.session import Session
from charchat.settings import MAX_TEMPERATURE, MODES
from charchat.terminal.pace import Pacer
from charchat.terminal.typeahead import Typeahead

TEMPERATURE_STEP = 0.1
ENTER = (Keys.ControlM, Keys.ControlJ)
STREAM_MODES = tuple(m for m in MODES if m != "beam")  # what Tab cycles through


class ActionKeys:
    def __init__(self, session: Session, pacer: Pacer):
        self.session = session
        self.pacer = pacer
        self.typeahead = Typeahead()  # lines typed while an action runs
        self.paused = False

    def apply(self, presses, steering: bool) -> tuple[bool, bool]:
        """Act on key presses; (stop, shown): whether one asks to stop, and whether any
        changed what the status bar shows. `steering`: a stream is showing, so ↑↓ ←→ Tab and
        space act on it; otherwise they are typed."""
        stop = shown = False
        for press in presses:
            key, data = press.key, press.data
            typing = bool(self.typeahead.partial)
            if key in (Keys.ControlC, Keys.Escape):
                stop = True
            elif key == Keys.ControlD:
                stop = self.typeahead.leave = True
            elif key in ENTER:
                self.typeahead.enter()
            elif key == Keys.BracketedPaste:
                self.typeahead.type(data.replace("\r\n", "\n").replace("\r", "\n"))
            elif key in (Keys.Backspace, Keys.ControlH):
                self.typeahead.backspace()
            elif key == Keys.ControlU:
                self.typeahead.clear_partial()
            elif steering and self._steer(key, data, typing):
                self.session.speed = self.pacer.rate
            elif len(data) == 1 and data.isprintable():
                self.typeahead.type(data)
            else:
                continue
            shown = True
        return stop, shown

    def _steer(self, key, data: str, typing: bool) -> bool:
        """A key that steers the stream; False when it is not one (then it may be typed).
        +, - and space steer only while nothing is being typed."""
        if key == Keys.Up or (data == "+" and not typing):
            self.nudge_temperature(+TEMPERATURE_STEP)
        elif key == Keys.Down or (data == "-" and not typing):
            self.nudge_temperature(-TEMPERATURE_STEP)
        elif key == Keys.Right:
            self.pacer.faster()
        elif key == Keys.Left:
            self.pacer.slower()
        elif key == Keys.ControlI:  # Tab
            self.cycle_mode()
        elif data == " " and not typing:
            self.paused = not self.paused
        else:
            return False
        return True

    def nudge_temperature(self, delta: float) -> None:
        s = self.session
        t = min(MAX_TEMPERATURE, max(0.0, round(s.settings.temperature + delta, 2)))
        s.settings = s.settings.with_(temperature=t)

    def cycle_mode(self) -> None:
        s = self.session
        if s.settings.mode in STREAM_MODES:
            following = STREAM_MODES[(STREAM_MODES.index(s.settings.mode) + 1) % len(STREAM_MODES)]
            s.settings = s.settings.with_(mode=following)
