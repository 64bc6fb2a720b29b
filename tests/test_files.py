"""The one writer: only regular files are replaced, a symlink is written through, and a write
that fails leaves the old file whole and no temporary file behind."""

import os
import socket
import stat

import pytest

from charchat.errors import CharchatError
from charchat.files import replacing, writable_target, write_file


def test_a_new_file_is_written_whole_with_the_usual_permissions(tmp_path):
    path = write_file(tmp_path / "new.txt", b"hello")
    assert path.read_bytes() == b"hello"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["new.txt"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_and_left_as_it_was(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CharchatError, match=r"pipe \(FIFO\), not a file"):
        write_file(fifo, b"x")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs unix sockets")
def test_a_socket_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(CharchatError, match="is a socket, not a file"):
            write_file(path, b"x")
        assert stat.S_ISSOCK(path.lstat().st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_device_is_refused_before_anything_is_written():
    # Checked, never written: a broken writer would replace the device node itself.
    with pytest.raises(CharchatError, match="/dev/null is a device, not a file"):
        writable_target("/dev/null")


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(CharchatError, match="is a directory, not a file"):
        write_file(tmp_path, b"x")


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    target = tmp_path / "target.txt"
    target.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert write_file(link, b"new") == target
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_a_link_to_nowhere_is_refused(tmp_path):
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "missing.txt")
    with pytest.raises(CharchatError, match="which does not exist"):
        write_file(link, b"x")
    assert link.is_symlink() and not (tmp_path / "missing.txt").exists()


def test_a_write_that_fails_keeps_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"the old model")

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(CharchatError, match="cannot write .*No space left on device"):
        write_file(path, b"the new model")
    assert path.read_bytes() == b"the old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_an_error_while_filling_removes_the_temporary_file(tmp_path):
    path = tmp_path / "cache.ids"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), replacing(path) as temporary:
        temporary.write_bytes(b"half")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["cache.ids"]
