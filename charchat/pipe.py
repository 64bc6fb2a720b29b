"""Non-interactive sessions: stdin lines are seeds or /commands; stdout gets only the text."""

from __future__ import annotations

import os
import sys

from charchat.errors import CharchatError
from charchat.render import plain_text, safe_text, unknown_notes
from charchat.session import Generated, Quit, Seeded, Session, TurnDone

MAX_INPUT_BYTES = 64 * 1024 * 1024  # a whole script
MAX_LINE_BYTES = 1024 * 1024  # one seed line
MAX_WHOLE_BYTES = 16 * 1024 * 1024  # one --whole seed


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
            raise CharchatError(
                f"line {number} is longer than {MAX_LINE_BYTES // 2**20} MiB (use --whole for one long seed)"
            )
        total += len(raw)
        if total > MAX_INPUT_BYTES:
            raise CharchatError(f"input is larger than {MAX_INPUT_BYTES // 2**20} MiB")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CharchatError(
                f"line {number}: input is not valid UTF-8 (byte {e.start} of the line)"
            ) from None
        if number == 1 and line.startswith("\ufeff"):
            line = line[1:]
        yield number, line.rstrip("\n").rstrip("\r")


def read_whole(stream) -> str:
    from charchat.vocab import decode_text

    data = stream.read(MAX_WHOLE_BYTES + 1)
    if len(data) > MAX_WHOLE_BYTES:
        raise CharchatError(f"--whole input is larger than {MAX_WHOLE_BYTES // 2**20} MiB")
    text = decode_text(data, "standard input")
    return text[:-1] if text.endswith("\n") else text


def run_pipe(
    session: Session, whole: bool = False, echo: bool = False, stdin=None, stdout=None, stderr=None
) -> int:
    stdin = stdin or sys.stdin.buffer
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        if whole:
            return _run_events(session.turn(read_whole(stdin)), out, err, echo)
        for number, line in read_lines(stdin):
            try:
                events = session.handle(line)
            except CharchatError as e:
                err.write(f"charchat: error: line {number}: {safe_text(str(e), False)}\n")
                return 2
            code = _run_events(events, out, err, echo)
            if code is not None:
                return code
        return 0
    except BrokenPipeError:
        silence_broken_pipe()
        return 0


def _run_events(events, out, err, echo: bool):
    """Write one line's events; returns an exit code to stop with, or None to go on."""
    wrote_text = False
    for event in events:
        if isinstance(event, Quit):
            return 0
        if isinstance(event, Seeded):
            if event.dropped or event.mapped:
                for note in unknown_notes(event):
                    err.write(f"charchat: {note}\n")
            if echo:
                out.write(safe_text(event.text))
                wrote_text = True
        elif isinstance(event, Generated):
            out.write(safe_text(event.char))
            wrote_text = True
        elif isinstance(event, TurnDone):
            if wrote_text:
                out.write("\n")
            out.flush()
        else:
            text, to_stdout = plain_text(event)
            (out if to_stdout else err).write(text + "\n")
            (out if to_stdout else err).flush()
    return None
