"""Starting a chat: options -> session, then the REPL on a terminal or the pipe otherwise."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from charchat.errors import CharchatError
from charchat.modelfile import load_model, resolve_model
from charchat.sampling import Settings
from charchat.session import Session


@dataclass(frozen=True)
class ChatOptions:
    model: str | None = None
    temperature: float = 0.8
    mode: str = "sample"
    top_k: int = 40
    top_p: float = 0.9
    length: int = 400
    seed: int | None = None
    whole: bool = False
    echo: bool = False


class UsageError(CharchatError):
    usage = True


def make_session(options: ChatOptions) -> Session:
    from charchat.commands import MAX_LENGTH

    try:
        settings = Settings(options.temperature, options.mode, options.top_k, options.top_p).check()
    except CharchatError as e:
        raise UsageError(str(e)) from None
    if not 1 <= options.length <= MAX_LENGTH:
        raise UsageError(f"--length must be from 1 to {MAX_LENGTH}")
    if options.seed is not None and not 0 <= options.seed < 2**63:
        raise UsageError("--seed must be a whole number from 0 to 2^63-1")
    model = load_model(resolve_model(options.model))
    return Session(model, settings, options.length, options.seed)


def run_chat(options: ChatOptions) -> int:
    session = make_session(options)
    if sys.stdin.isatty() and sys.stdout.isatty():
        from charchat.repl import run_repl

        return run_repl(session)
    from charchat.pipe import run_pipe

    return run_pipe(session, whole=options.whole, echo=options.echo)
