"""Starting a chat: options -> session, then the REPL on a terminal or the pipe otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from charchat import settings as spec
from charchat.chat import adapting
from charchat.chat.decoding import unescape
from charchat.chat.session import Session
from charchat.errors import BadInput, CharchatError
from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.settings import Settings


@dataclass(frozen=True)
class ChatOptions:
    model: str | None = None
    temperature: float = spec.TEMPERATURE.default
    mode: str = spec.MODE.default
    top_k: int = spec.TOP_K.default
    top_p: float = spec.TOP_P.default
    min_p: float = spec.MIN_P.default
    beam_width: int = spec.BEAM_WIDTH.default
    stops: tuple[str, ...] = ()
    norepeat: int = spec.NO_REPEAT.default
    session_file: str | None = None
    speed: float | None = None  # characters a second; default: paced on a terminal only
    length: int = spec.LENGTH.default
    seed: int | None = spec.SEED.default
    whole: bool = False
    echo: bool = False
    adapt: bool = False  # learn from what is typed or piped (chat/adapting.py)
    adapt_lr: float | None = None  # None: the model card's, else the default
    adapt_stretch: int | None = None


# The command-line flag for each checked option, as messages name it.
FLAGS = {setting.field: (setting.flag, setting) for setting in spec.CHAT_OPTIONS}


def checked(options: ChatOptions) -> ChatOptions:
    """The options, each within the bounds settings.py gives; a BadInput names the flag."""
    for setting in spec.CHAT_OPTIONS:
        value = getattr(options, setting.field)
        if value is None:
            continue
        try:
            setting.check_flag(value)
        except CharchatError as e:
            raise BadInput(str(e)) from None
    return options


def make_session(options: ChatOptions, make_learner=None) -> Session:
    """The session the options ask for; make_learner(model, lr, stretch) is how it learns
    (the torch half's, handed in by the command line), needed only by /adapt."""
    session = _session(checked(options), make_learner)
    session.make_learner = make_learner
    session.adapt_settings = adapting.settings_for(
        session.model, options.adapt_lr, options.adapt_stretch
    )
    if options.adapt:
        adapting.start(session, *session.adapt_settings)
    return session


def _session(o: ChatOptions, make_learner) -> Session:
    if len(o.stops) > spec.STOPS_MOST:
        raise BadInput(f"--stop: at most {spec.STOPS_MOST} stop strings")
    if any(len(stop) > spec.STOP_CHARS for stop in o.stops):
        raise BadInput(f"--stop: a stop string has at most {spec.STOP_CHARS:,} characters")
    if o.session_file:
        from charchat.chat.session import load_session

        return load_session(Path(o.session_file), o.model, make_learner)
    settings = Settings(o.temperature, o.mode, o.top_k, o.top_p, o.min_p, o.beam_width)
    model = load_model(resolve_model(o.model))
    stops = tuple(unescape(s) for s in o.stops if s)
    return Session(model, settings, o.length, o.seed, stops=stops, norepeat=o.norepeat)


def run_chat(options: ChatOptions, make_learner=None) -> int:
    session = make_session(options, make_learner)
    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    if options.speed is not None:
        session.speed = options.speed
    else:  # paced for a person at a terminal; a pipe gets its text at once
        session.speed = spec.SPEED.default if terminal else 0.0
    if terminal:
        from charchat.terminal.repl import run_repl

        return run_repl(session)
    from charchat.terminal.pipe import run_pipe

    return run_pipe(session, whole=options.whole, echo=options.echo)
