"""Reading a person's text: UTF-8 (a leading byte-order mark dropped, CRLF read as LF), in
chunks of bounded size, from files only where a stream could have no end."""

from __future__ import annotations

import codecs
import stat
from collections.abc import Iterator
from pathlib import Path

from charchat.errors import CharchatError, Stopped
from charchat.vocab import normalize_newlines

CHUNK_BYTES = 8 << 20


def decode_text(data: bytes, source: str = "input") -> str:
    """UTF-8 text with a leading byte-order mark dropped and CRLF turned into LF."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CharchatError(
            f"{source} is not valid UTF-8 text (bad byte at offset {e.start})"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return normalize_newlines(text)


def _never() -> bool:
    return False


def read_text(
    path: str | Path,
    min_chars: int = 2,
    purpose: str = "training",
    most_chars: int | None = None,
    should_stop=_never,
) -> str:
    """A text file's whole text, read in chunks: at most most_chars characters (a file or a
    stream with more is refused, so nothing is read without end), and should_stop() ends the
    reading early (Stopped)."""
    path = Path(path)
    check_regular(path, purpose)
    pieces, count = [], 0
    for chunk in text_chunks(path):
        if should_stop():
            raise Stopped(f"stopped after reading {count:,} characters of {path}")
        count += len(chunk)
        if most_chars is not None and count > most_chars:
            raise CharchatError(
                f"{path} has more than {most_chars:,} characters; {purpose} reads at most that many"
            )
        pieces.append(chunk)
    text = "".join(pieces)
    if len(text) < min_chars:
        what = "empty" if not text else f"too short ({len(text)} characters)"
        raise CharchatError(f"{path} is {what}; {purpose} needs at least {min_chars} characters")
    return text


def decoded_chunks(path: Path) -> Iterator[str]:
    """The text of path in chunks: UTF-8, leading BOM dropped, CRLF -> LF across chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, held, first = 0, "", True
    with open(path, "rb") as f:
        if b"\x00" in f.read(65536):
            raise CharchatError(f"{path} looks like a binary file (it contains NUL bytes)")
        f.seek(0)
        while True:
            block = f.read(CHUNK_BYTES)
            try:
                text = held + decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                raise CharchatError(
                    f"{path} is not valid UTF-8 text (bad byte at offset {offset + e.start})"
                ) from None
            if first and text:
                text, first = text.removeprefix("\ufeff"), False
            offset += len(block)
            held = ""
            if block and text.endswith("\r"):
                text, held = text[:-1], "\r"  # its "\n" may open the next chunk
            text = text.replace("\r\n", "\n")
            if text:
                yield text
            if not block:
                return


def text_chunks(path: Path) -> Iterator[str]:
    """A text file's text in chunks (see decoded_chunks), with one clear error for a path
    that is missing, a folder or unreadable."""
    path = Path(path)
    check_readable(path)
    try:
        yield from decoded_chunks(path)
    except OSError as e:
        raise CharchatError(f"cannot read {path}: {e.strerror}") from None


def check_readable(path: Path) -> None:
    """A file, or a pipe (read with a bound); a device or socket would be read without end."""
    if not path.exists():
        raise CharchatError(f"no such file: {path}")
    if path.is_dir():
        raise CharchatError(f"{path} is a directory, not a text file")
    mode = path.stat().st_mode
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        kind = "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise CharchatError(f"{path} is {kind}, not a text file")


def check_regular(path: Path, purpose: str) -> None:
    """A regular file: what is read twice (training's two passes, an index kept on disk)
    cannot be a stream, and opening a pipe nobody writes to would wait for ever."""
    check_readable(path)
    if not path.is_file():
        raise CharchatError(
            f"{path} is a pipe, not a file; {purpose} needs a file: save the text to one first"
        )
