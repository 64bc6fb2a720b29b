"""Starting a chat: options -> session, then the REPL on a terminal or the pipe otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from charchat import settings as spec
from charchat.errors import CharchatError
from charchat.modelfile import load_model, resolve_model
from charchat.session import Session
from charchat.settings import Settings


@dataclass(frozen=True)
class ChatOptions:
    model: str | None = None
    temperature: float = spec.TEMPERATURE.default
    mode: str = spec.MODE.default
    top_k: int = spec.TOP_K.default
    top_p: float = spec.TOP_P.default
    length: int = spec.LENGTH.default
    seed: int | None = spec.SEED.default
    whole: bool = False
    echo: bool = False


class UsageError(CharchatError):
    usage = True


# The command-line flag for each checked option, as messages name it.
FLAGS = {
    "temperature": ("--temp", spec.TEMPERATURE),
    "mode": ("--mode", spec.MODE),
    "top_k": ("--top-k", spec.TOP_K),
    "top_p": ("--top-p", spec.TOP_P),
    "length": ("--length", spec.LENGTH),
    "seed": ("--seed", spec.SEED),
}


def checked(options: ChatOptions) -> ChatOptions:
    """The options, each within the bounds settings.py gives; a UsageError names the flag."""
    for field, (flag, setting) in FLAGS.items():
        value = getattr(options, field)
        if value is None:
            continue
        try:
            setting.check(value)
        except CharchatError as e:
            raise UsageError(f"{flag}: {e}") from None
    return options


def make_session(options: ChatOptions) -> Session:
    o = checked(options)
    settings = Settings(o.temperature, o.mode, o.top_k, o.top_p)
    model = load_model(resolve_model(o.model))
    return Session(model, settings, o.length, o.seed)


def run_chat(options: ChatOptions) -> int:
    session = make_session(options)
    if sys.stdin.isatty() and sys.stdout.isatty():
        from charchat.repl import run_repl

        return run_repl(session)
    from charchat.pipe import run_pipe

    return run_pipe(session, whole=options.whole, echo=options.echo)
