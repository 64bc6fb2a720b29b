"""Keys in a real pseudo-terminal while something runs: Ctrl+C stops every long action, lines
typed meanwhile run whole and in order, Ctrl+D leaves once the action stops."""

import sys

import pexpect
import pytest
from conftest import random_model
from test_terminal import spawn

from charchat.modelfile import save_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")

WORDS = "the will to power is a thing of the past and yet we know what it means "
LONG = (WORDS * 900)[:60_000]  # a paste a 2x256 model scores in about five seconds
WORKING = r"working… Ctrl\+C stops"


@pytest.fixture
def wide_model_path(tmp_path):
    return save_model(random_model(hidden=256, seed=2), tmp_path / "wide.safetensors")


def paste(child, text: str) -> None:
    """As a terminal sends a paste: bracketed, so its newlines do not press Enter."""
    child.send("\x1b[200~" + text + "\x1b[201~")


def saved_transcript(child, path) -> str:
    child.send(f"/save {path}\r")
    child.expect("saved")
    child.expect("›")
    return path.read_text(encoding="utf-8") if path.exists() else ""


def finish(child) -> None:
    child.send("\x04")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_ctrl_c_stops_a_long_score_and_leaves_the_session_as_it_was(wide_model_path, tmp_path):
    child = spawn(wide_model_path, "-n", "20", "--seed", "1", "--speed", "0")
    child.send("the will\r")
    child.expect("›")
    before = saved_transcript(child, tmp_path / "before.txt")
    child.send("/score ")
    paste(child, LONG)
    child.send("\r")
    child.expect(WORKING)  # the score is under way...
    child.send("\x03")  # ...and Ctrl+C stops it (pressed about 0.2 s in)
    child.expect(r"/score stopped after ([\d,]+) of 60,000 characters")
    assert int(child.match.group(1).replace(",", "")) < 60_000
    child.expect("›")
    assert saved_transcript(child, tmp_path / "after.txt") == before
    finish(child)


def test_ctrl_c_stops_reading_a_long_paste_and_shows_what_was_read(wide_model_path, tmp_path):
    child = spawn(wide_model_path, "-n", "20", "--seed", "1", "--speed", "0")
    paste(child, LONG)
    child.send("\r")
    child.expect("reading the prompt")
    child.send("\x03")
    child.expect(r"stopped after reading ([\d,]+) of 60,000 characters")
    read = int(child.match.group(1).replace(",", ""))
    child.expect(r"\(stopped\)")
    child.expect("›")
    assert 0 < read < 60_000
    assert saved_transcript(child, tmp_path / "t.txt") == LONG[:read]  # nothing was written
    finish(child)


@pytest.mark.parametrize(
    "command, stopped",
    [
        ("/sweep 0.1 0.2 0.4 0.6 0.8 1 1.2 1.5", r"/sweep stopped at T=[\d.]+; nothing changed"),
        ("/cells find quote", r"/cells find stopped after \w+ [\d,]+ of [\d,]+ characters"),
    ],
)
def test_ctrl_c_pressed_right_after_enter_stops_the_command(wide_model_path, command, stopped):
    child = spawn(wide_model_path, "-n", "2000", "--seed", "1", "--speed", "0")
    child.send(command + "\r\x03")
    child.expect(stopped)
    child.expect("›")
    assert "T=1.5" not in child.before and "layer" not in child.before
    finish(child)


def test_lines_typed_during_a_paced_turn_run_whole_and_in_order(tiny_model_path):
    child = spawn(tiny_model_path, "-n", "600", "--seed", "1")  # ten seconds at 60/s
    child.send("the will\r")
    child.expect("pace 60/s")  # streaming, paced
    child.send("/temp 1.2\r")
    child.expect(r"1 line waiting: /temp 1\.2⏎")  # the status bar says it was taken
    child.send("/len 7\r/he")
    child.send("\x03")  # stop the turn: the waiting lines run now
    child.expect(r"\(stopped\)")
    child.expect("temperature 1.2, mode sample")
    child.expect("length 7")
    child.expect("› /he")  # the unfinished line waits at the prompt
    assert "error" not in child.before
    child.send("lp\r")
    child.expect("/help")  # it was completed and run
    child.expect("›")
    finish(child)


def test_ctrl_d_during_a_long_action_leaves_once_it_stops(wide_model_path):
    child = spawn(wide_model_path, "-n", "20", "--speed", "0")
    child.send("/score ")
    paste(child, LONG)
    child.send("\r")
    child.expect(WORKING)
    child.send("\x04")
    child.expect(r"/score stopped after")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_a_beam_search_shows_progress_and_ctrl_c_stops_it(wide_model_path, tmp_path):
    child = spawn(wide_model_path, "-n", "3000", "--mode", "beam", "--beam", "16", "--speed", "0")
    child.send("the will\r")
    child.expect(r"beam search: [\d,]+ of 3,000 characters")
    child.send("\x03")
    child.expect(r"beam search stopped after [\d,]+ of 3,000 characters")
    child.expect("›")
    assert saved_transcript(child, tmp_path / "t.txt") == "the will"
    finish(child)


def test_esc_stops_a_long_score_too(wide_model_path):
    """A lone Esc is held by the terminal parser (it may begin a sequence) until it is alone."""
    child = spawn(wide_model_path, "-n", "20", "--speed", "0")
    child.send("/score ")
    paste(child, LONG)
    child.send("\r")
    child.expect(WORKING)
    child.send("\x1b")
    child.expect(r"/score stopped after ([\d,]+) of 60,000 characters")
    child.expect("›")
    finish(child)
