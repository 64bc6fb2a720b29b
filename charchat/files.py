"""The one way charchat writes a file: models, checkpoints, sessions, exports and caches.

A write goes to a temporary file beside the target, is flushed to disk, and then replaces the
target in one rename, so a reader sees the old file or the new one, never half of either; when
anything fails, the old file is left whole and the temporary one removed.

Only regular files are written. A directory, device, FIFO or socket at the target is refused
(a rename would replace a device node such as /dev/full with a file). A symlink is followed:
the file it points to is replaced and the link stays; a link that points nowhere is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from charchat.errors import CharchatError

KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISFIFO, "a pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
)


def writable_target(path: Path) -> Path:
    """The regular file that writing `path` would replace (a symlink's target), or the path of
    a new file; a CharchatError for anything else."""
    path = Path(path).expanduser()
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            raise CharchatError(f"{path} is a link to {target}, which does not exist")
        path = target
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return path
    except OSError as e:
        raise CharchatError(f"cannot write {path}: {e.strerror}") from None
    for is_kind, kind in KINDS:
        if is_kind(mode):
            raise CharchatError(f"{path} is {kind}, not a file; charchat writes only files")
    return path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path to fill; when the block ends without an error it replaces `path`
    (after the checks of writable_target), otherwise it is removed and `path` is untouched."""
    target = writable_target(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise CharchatError(f"cannot write to {folder}: {e.strerror}") from None
    os.close(fd)
    temporary = Path(name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as a new file would be, not mkstemp's 0600
        yield temporary
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        writable_target(path)  # it may have changed while the data was written
        os.replace(temporary, target)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise CharchatError(f"cannot write {target}: {e.strerror}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_file(path: Path, data: bytes) -> Path:
    """Write `data` as the whole of `path`; the file written (a symlink's target)."""
    with replacing(path) as temporary:
        temporary.write_bytes(data)
    return writable_target(path)


def file_sha256(path: Path | None) -> str | None:
    """Of the file's bytes (a model's identity on cards and in sessions); None for no file."""
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
