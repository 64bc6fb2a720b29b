"""Non-interactive sessions: stdin lines are prompts or /commands; stdout gets only the text."""

from __future__ import annotations

import os
import sys

from charchat.chat.session import Session
from charchat.errors import BadInput, CharchatError
from charchat.events import Generated, Quit
from charchat.settings import MAX_PROMPT_CHARS
from charchat.terminal.pace import Pacer
from charchat.terminal.render import Renderer

MAX_INPUT_BYTES = 64 * 1024 * 1024  # a whole script
MAX_LINE_BYTES = 4 * MAX_PROMPT_CHARS  # one prompt line (UTF-8: at most 4 bytes a character)
MAX_WHOLE_BYTES = 4 * MAX_PROMPT_CHARS  # one --whole prompt


def silence_broken_pipe() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def read_lines(stream):
    """Decoded lines (without their newline) of a binary stream, with size and UTF-8 checks."""
    total = 0
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise BadInput(f"line {number} is longer than {MAX_LINE_BYTES // 2**20} MiB")
        total += len(raw)
        if total > MAX_INPUT_BYTES:
            raise BadInput(f"input is larger than {MAX_INPUT_BYTES // 2**20} MiB")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadInput(
                f"line {number}: input is not valid UTF-8 (byte {e.start} of the line)"
            ) from None
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]
        yield number, line.rstrip("\n").rstrip("\r")


def read_whole(stream) -> str:
    from charchat.reading import decode_text

    data = stream.read(MAX_WHOLE_BYTES + 1)
    if len(data) > MAX_WHOLE_BYTES:
        raise BadInput(f"--whole input is larger than {MAX_WHOLE_BYTES // 2**20} MiB")
    try:
        text = decode_text(data, "standard input")
    except CharchatError as e:
        raise BadInput(str(e)) from None
    return text[:-1] if text.endswith("\n") else text


def run_pipe(
    session: Session,
    whole: bool = False,
    echo: bool = False,
    stdin=None,
    stdout=None,
    stderr=None,
    clock: dict | None = None,
) -> int:
    stdin = stdin or sys.stdin.buffer
    render = Renderer(stdout or sys.stdout, stderr or sys.stderr, echo=echo)
    pacer = Pacer(session.speed, **(clock or {}))
    try:
        if whole:
            return _show_all(session.turn(read_whole(stdin)), render, pacer)
        for number, line in read_lines(stdin):
            try:
                events = session.handle(line)
            except CharchatError as e:
                render.error(f"line {number}: {e}")
                return 2
            if _show_all(events, render, pacer) is not None:
                return 0
        return 0
    except BrokenPipeError:
        silence_broken_pipe()
        return 0


def _show_all(events, render: Renderer, pacer: Pacer) -> int | None:
    """Show one line's events (paced with --speed); 0 when the session asked to quit."""
    pacer.start()
    for event in events:
        if isinstance(event, Quit):
            return 0
        render.show(event)
        if isinstance(event, Generated):
            pacer.wait(lambda: False)
    return None
