"""End to end in a real pseudo-terminal: what a person at a keyboard sees."""

import os
import re
import sys

import numpy as np
import pexpect
import pytest
from conftest import random_model

from charchat.modelfile import save_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


def spawn(model_path, *args, env=None, columns=80, cpr=False):
    """charchat in a pseudo-terminal. pexpect never answers prompt_toolkit's cursor-position
    requests, so they are turned off unless `cpr` asks for a terminal that ignores them."""
    no_cpr = {} if cpr else {"PROMPT_TOOLKIT_NO_CPR": "1"}
    environment = {k: v for k, v in os.environ.items() if k != "PROMPT_TOOLKIT_NO_CPR"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "charchat", "-m", str(model_path), *args],
        env={**environment, "TERM": "xterm-256color", **no_cpr, **(env or {})},
        dimensions=(24, columns),
        timeout=30,
        encoding="utf-8",
        codec_errors="replace",
    )
    child.expect("charchat ·")
    child.expect("›")
    return child


def test_type_stream_interrupt_command_and_quit(tiny_model_path):
    child = spawn(tiny_model_path, "-n", "100000", "--seed", "1")
    child.send("the will\r")
    child.expect(r"\x1b\[36m")  # generated characters arrive, in the model's colour
    child.expect(r"T 0\.8")  # the status bar while streaming
    child.send("+")  # raise the temperature mid-stream
    child.expect(r"T 0\.9")
    child.send("\x03")  # Ctrl+C mid-stream
    child.expect(r"\(stopped\)")
    child.expect("›")
    child.send("/temp 1.2\r")
    child.expect("temperature 1.2")
    child.expect("›")
    child.send("/probs 3\r")
    child.expect("next character")
    child.expect("entropy")
    child.expect("›")
    child.send("\x04")  # Ctrl+D at an empty prompt
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Traceback" not in child.before


def test_keys_pressed_right_after_enter_reach_the_stream(tiny_model_path):
    # A terminal that never answers cursor-position requests: after Enter, prompt_toolkit
    # waits up to a second for the answer before the turn begins. Ctrl+C in that second must
    # still stop the turn, and + still raise the temperature.
    child = spawn(tiny_model_path, "-n", "100000", "--seed", "1", cpr=True)
    child.send("the will\r+\x03")
    child.expect(r"\(stopped\)", timeout=10)
    child.expect("›")
    child.send("/mode sample\r")
    child.expect("temperature 0.9, mode sample")
    child.send("\x04")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_ctrl_c_at_the_prompt_clears_then_hints(tiny_model_path):
    child = spawn(tiny_model_path, "-n", "5")
    child.send("abc")
    child.send("\x03")
    child.send("\x03")
    child.expect("Ctrl\\+D or /quit")
    child.send("/quit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_sweep_in_a_terminal(tiny_model_path):
    child = spawn(tiny_model_path, "-n", "30", "--seed", "4")
    child.send("/sweep 0.2 1.2\r")
    child.expect(r"T=0\.2\s+(\S[^\r\n]*)")  # each temperature with its own text
    cold = child.match.group(1)
    child.expect(r"T=1\.2\s+(\S[^\r\n]*)")
    assert cold != child.match.group(1)
    child.expect("›")
    child.send("\x04")
    child.expect(pexpect.EOF)


def test_model_output_never_puts_a_raw_escape_on_the_terminal(tmp_path):
    model = random_model(chars="ab\x1b[]0;", seed=1)
    bias = np.where(np.array(model.vocab.chars) == "\x1b", 20.0, 0.0)
    model.tensors["head.bias"] = bias.astype(np.float32)
    path = save_model(model, tmp_path / "esc.safetensors")
    child = spawn(path, "-n", "40", "--seed", "1", env={"NO_COLOR": "1"})
    child.send("a\r")
    child.expect("›")
    shown = child.before
    child.send("\x04")
    child.expect(pexpect.EOF)
    # our own sequences: the status bar (between ESC 7 and ESC 8) and SGR resets; the model's
    # vocabulary has no 7, 8 or m, so whatever ESC is left would be a raw one from the model
    ours = re.compile(r"\x1b7.*?\x1b8|\x1b\[[0-9;]*m", re.S)
    streamed = ours.sub("", shown[shown.index("␛") : shown.rindex("␛") + 1])
    assert "␛" * 10 in streamed and "\x1b" not in streamed


def test_color_and_score_in_a_narrow_terminal(tiny_model_path):
    child = spawn(tiny_model_path, "-n", "20", "--seed", "2", columns=60)
    child.send("/color on\r")
    child.expect("colour by surprise on")
    child.expect("›")
    child.send("the will\r")
    # generated characters coloured by surprise: one of the scale's colours (none of which is
    # the model's own) right after the previous character's reset (a prompt's are bold first)
    child.expect(r"\x1b\[0m\x1b\[3[1-5]m")
    child.expect("›")
    child.send("/probs 4\r")
    child.expect("entropy")
    lines = [line for line in child.before.splitlines() if "█" in line or "▏" in line]
    assert lines and all(len(re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", line)) <= 60 for line in lines)
    child.expect("›")
    child.send("/score the will\r")
    child.expect(r"bits/char over 8 characters")
    child.expect("most surprising")
    child.send("\x04")
    child.expect(pexpect.EOF)


def test_pace_endless_writing_and_keys_in_a_terminal(tiny_model_path, tmp_path):
    child = spawn(tiny_model_path, "--seed", "3")
    child.send("/len inf\r")
    child.expect("until Ctrl\\+C or Esc")
    child.expect("›")
    child.send("the will\r")
    child.expect("pace 60/s")  # a readable pace by default, in the status bar
    child.send("\x1b[C")  # Right: faster
    child.expect("pace 90/s")
    child.send("\t")  # Tab: the next sampling mode
    child.expect("top-k 40")
    child.send("\x03")  # Ctrl+C ends the endless turn, not charchat
    child.expect(r"\(stopped\)")
    child.expect("›")
    child.send("/len 5\r")
    child.expect("length 5")
    child.expect("›")
    child.send("/regen\r")  # the last turn again, from the state before it: 5 characters now
    child.expect("›")
    child.send(f"/save {tmp_path / 't.txt'}\r")
    child.expect(r"saved 13 characters")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8").startswith("the will")
    child.send("\x04")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before


def test_novelty_underlines_copies_and_the_status_bar_counts_them(tmp_path):
    from charchat.chat.session import Session
    from charchat.events import Generated
    from charchat.settings import Settings

    model = random_model()
    session = Session(model, Settings(mode="greedy"), length=200)
    corpus = tmp_path / "own.txt"
    corpus.write_text("".join(e.char for e in session.turn("") if isinstance(e, Generated)))
    path = save_model(model, tmp_path / "m.safetensors")
    child = spawn(path, "-n", "80", "--mode", "greedy", env={"CHARCHAT_CACHE": str(tmp_path)})
    child.send(f"/novelty on {corpus}\r")
    child.expect("novelty on")
    child.expect("›")
    child.send("\r")  # continue from the start: the model writes its own greedy text again
    child.expect(r"\x1b\[4m")  # copied characters underlined
    child.expect(r"longest copy [2-9]\d")  # the status bar counts the copy as it grows
    child.expect(r"longest copy this turn is (\d+) characters")
    assert child.match.group(1) == "80", child.before[-300:]
    child.expect("›")
    child.send("\x04")
    child.expect(pexpect.EOF)
    assert "Traceback" not in child.before


def test_a_cell_colours_the_text_and_the_status_bar_has_its_legend(tiny_model_path):
    child = spawn(tiny_model_path, "-n", "40", "--seed", "1")
    child.send("/cells 2 3\r")
    child.expect("colouring the text by layer 2 cell 3")
    child.expect("›")
    child.send("the will\r")
    child.expect(r"\x1b\[38;5;\d+m")  # characters in the cell's colour scale
    child.expect(r"cell 2:3 \(blue -1, red \+1\)")
    child.expect("›")
    child.send("/cells find word\r")
    child.expect(r"layer \d cell \d+  r = [+-]\d\.\d\d")
    child.expect("›")
    child.send("\x04")
    child.expect(pexpect.EOF)
    assert "Traceback" not in child.before


def test_eval_shows_a_progress_bar_on_a_terminal_and_clears_it(tiny_model_path, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the will to power, said the philosopher.\n" * 500)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "charchat", "eval", str(tiny_model_path), str(text)],
        env={**os.environ, "TERM": "xterm-256color"},
        dimensions=(24, 100),
        timeout=30,
        encoding="utf-8",
    )
    child.expect("score")
    child.expect("bits/char")
    assert "20,500/20,500 characters" in child.before  # the bar reached the end...
    assert "\x1b[2K" in child.before.rsplit("characters", 1)[1]  # ...and was erased after
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and "Traceback" not in child.before
