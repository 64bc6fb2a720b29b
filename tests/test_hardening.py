"""Bad input never costs memory or a traceback: long prompts, full disks, bad numbers, two
writers of one model file, and the small cases of the adversarial audit."""

import os
import signal
import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest
from conftest import TEXT, random_model

from charchat import settings as spec
from charchat.chat.engine import PRIME_CHUNK, Engine
from charchat.chat.session import Session
from charchat.errors import CharchatError, CommandError


def charchat(*args, input=b"", stdout=subprocess.PIPE, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "charchat", *args],
        input=input,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=timeout,
    )


def one_line_error(result, code=None):
    assert result.returncode != 0 if code is None else result.returncode == code
    assert b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---------------------------------------------------------------- priming in bounded memory


def test_long_prompts_are_primed_in_fixed_chunks(monkeypatch):
    engine = Engine(random_model(hidden=16))
    sizes = []
    real = engine._feed_chunk
    monkeypatch.setattr(engine, "_feed_chunk", lambda ids: (sizes.append(len(ids)), real(ids)))
    engine.feed_many(np.zeros(5 * PRIME_CHUNK + 7, dtype=np.int64))
    assert sizes == [PRIME_CHUNK] * 5 + [7]


def peak_bytes_priming(engine, length):
    ids = np.random.default_rng(0).integers(0, len(engine.vocab), length)
    tracemalloc.start()
    engine.feed_many(ids)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_priming_memory_does_not_grow_with_the_prompt():
    engine = Engine(random_model(hidden=128, layers=2))
    short = peak_bytes_priming(engine, 2 * PRIME_CHUNK)
    long = peak_bytes_priming(engine, 12 * PRIME_CHUNK)
    assert long < short + 100_000  # six times the text, the same working memory


def test_a_prompt_over_the_limit_is_refused_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(spec, "MAX_PROMPT_CHARS", 50)
    session = Session(random_model(), length=5, seed=1)
    before = session.engine.snapshot()
    with pytest.raises(CommandError, match="at most 50"):
        session.handle("a" * 51)
    assert session.transcript == "" and not session.turns
    np.testing.assert_array_equal(session.engine.state, before)


# ---------------------------------------------------------------- output that cannot be written


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["models"], ["--version"], ["-n", "100"]])
def test_a_full_disk_is_one_line_not_a_traceback(args, tiny_model_path):
    if args == ["-n", "100"]:
        args = ["-m", str(tiny_model_path), *args]
    with open("/dev/full", "wb") as full:
        result = charchat(*args, input=b"the\n", stdout=full)
    one_line_error(result, 1)
    assert b"No space left on device" in result.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_eval_to_a_full_disk(tmp_path, tiny_model_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    with open("/dev/full", "wb") as full:
        result = charchat("eval", str(tiny_model_path), str(text), stdout=full)
    one_line_error(result, 1)


# ---------------------------------------------------------------- numbers


TINY_TRAIN = ["--layers", "1", "--hidden", "8", "--embedding", "4", "--seq-len", "8"]
TINY_TRAIN += ["--batch-size", "2", "--precision", "fp32", "--threads", "1"]


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--minutes", "inf", b"--minutes must be a finite number above 0"),
        ("--epochs", "inf", b"--epochs must be a finite number above 0"),
        ("--lr", "inf", b"--lr must be a finite number above 0"),
        ("--lr", "nan", b"--lr must be a finite number above 0"),
        ("--weight-decay", "nan", b"--weight-decay must be from 0"),
        ("--dropout", "nan", b"dropout must be at least 0"),
    ],
)
def test_bad_numbers_are_refused_before_anything_runs(tmp_path, option, value, words):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "m.safetensors"
    result = charchat("train", str(corpus), "--out", str(out), *TINY_TRAIN, option, value)
    one_line_error(result, 1)
    assert words in result.stderr and not out.exists()


def test_a_budget_too_small_for_one_step_saves_nothing(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "m.safetensors"
    result = charchat("train", str(corpus), "--out", str(out), *TINY_TRAIN, "--minutes", "1e-9")
    one_line_error(result, 1)
    assert b"too short to take a step" in result.stderr and not out.exists()


# ---------------------------------------------------------------- one writer per file


def test_a_second_training_to_the_same_file_is_refused_at_once(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 30)
    out = tmp_path / "m.safetensors"
    args = ["train", str(corpus), "--out", str(out), *TINY_TRAIN, "--epochs", "400"]
    first = subprocess.Popen(
        [sys.executable, "-m", "charchat", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lock = tmp_path / ".m.safetensors.lock"
        deadline = time.monotonic() + 60
        while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = charchat(*args, "--force")
        one_line_error(second, 1)
        assert f"process {first.pid}".encode() in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert not lock.exists()  # the first run let go of it


# ---------------------------------------------------------------- the small cases


def test_bad_utf8_in_a_script_is_a_usage_error(tiny_model_path):
    result = charchat("-m", str(tiny_model_path), input=b"abc\n\xff\xfe\n")
    one_line_error(result, 2)
    assert b"line 2" in result.stderr and b"UTF-8" in result.stderr


def test_eval_of_an_empty_file_speaks_of_scoring(tmp_path, tiny_model_path):
    empty = tmp_path / "e.txt"
    empty.write_text("")
    result = charchat("eval", str(tiny_model_path), str(empty))
    one_line_error(result, 1)
    assert b"scoring needs" in result.stderr and b"training" not in result.stderr


def test_a_git_lfs_pointer_is_named_as_such(tmp_path):
    pointer = tmp_path / "nietzsche.safetensors"
    pointer.write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:3d0f\nsize 13337216\n"
    )
    result = charchat("-m", str(pointer), input=b"the\n")
    one_line_error(result, 1)
    assert b"Git LFS pointer" in result.stderr


def test_undo_says_how_many_characters_it_removed():
    s = Session(random_model(), length=12, seed=1)
    list(s.handle("ab"))
    (info,) = list(s.handle("/undo"))
    assert info.text == "undone: 14 characters removed" and s.transcript == ""


def test_norepeat_1_leaks_no_numpy_warning(tiny_model_path):
    result = charchat("-m", str(tiny_model_path), "-n", "30", input=b"/norepeat 1\nab\n")
    assert result.returncode == 0
    lines = result.stderr.decode().splitlines()
    assert lines[0] == "charchat: never writing a 1-character sequence the text already has"
    assert all(line.startswith("charchat: ") for line in lines) and "Warning" not in lines[1]


def test_stop_strings_are_listed_as_typed():
    s = Session(random_model(), length=5)
    list(s.handle(r"/stop \n"))
    (info,) = list(s.handle("/stop"))
    assert info.text == r"a turn ends right after any of: '\n'"


def test_minus_zero_is_zero():
    s = Session(random_model(), length=5)
    (info,) = list(s.handle("/temp -0"))
    assert info.text.startswith("temperature 0 (greedy)")


def test_calibrate_with_text_and_a_temperature_says_not_both(tmp_path, tiny_model_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    out = tmp_path / "c.safetensors"
    result = charchat(
        "calibrate", str(tiny_model_path), str(text), "--temperature", "1.2", "-o", str(out)
    )
    one_line_error(result, 1)
    assert b"not both" in result.stderr and not out.exists()


# ---------------------------------------------------------------- inputs without an end


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize(
    "args",
    [
        ["train", "/dev/zero", "--minutes", "0.1"],
        ["eval", "MODEL", "/dev/zero"],
        ["calibrate", "MODEL", "/dev/zero"],
    ],
)
def test_a_device_as_a_text_is_refused_at_once(args, tmp_path, tiny_model_path):
    args = [str(tiny_model_path) if a == "MODEL" else a for a in args]
    if args[0] != "eval":
        args += ["-o", str(tmp_path / "out.safetensors")]
    result = charchat(*args, timeout=60)
    one_line_error(result, 1)
    assert b"/dev/zero is a device, not a text file" in result.stderr
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_as_a_novelty_corpus_or_session_is_refused_and_changes_nothing():
    s = Session(random_model(), length=5, seed=1)
    for line in ("/novelty on /dev/zero", "/session load /dev/zero"):
        with pytest.raises(CommandError, match="/dev/zero is a device, not a text file"):
            list(s.handle(line))
    assert s.novelty is None and s.transcript == ""


def test_endless_piped_input_is_refused_in_bounded_memory(tiny_model_path):
    """A stream with no newline: refused at the line limit, not read to its end."""
    with subprocess.Popen(
        [sys.executable, "-c", "import sys\nwhile True: sys.stdout.buffer.write(b'a' * 65536)"],
        stdout=subprocess.PIPE,
    ) as endless:
        result = subprocess.run(
            [sys.executable, "-m", "charchat", "-m", str(tiny_model_path), "-n", "5"],
            stdin=endless.stdout,
            capture_output=True,
            timeout=120,
        )
        endless.kill()
    one_line_error(result, 2)
    assert b"longer than" in result.stderr


def test_a_catastrophic_pattern_is_ended_and_ctrl_c_stops_one(monkeypatch):
    from charchat.chat import cells
    from charchat.errors import Stopped

    text = "a" * 40 + "!"
    with pytest.raises(CharchatError, match=r"took more than 1 s .* backtracks too much"):
        cells.match_spans(r"([a-z]+\s?)*$", text)
    presses = iter([False, False, True])
    with pytest.raises(Stopped):
        cells.match_spans(r"([a-z]+\s?)*$", text, lambda: next(presses, True))
    s = Session(random_model(), length=5, seed=1)
    list(s.handle("ab"))
    with pytest.raises(CommandError, match="backtracks too much"):
        list(s.handle(r"/cells find ([a-z]+\s?)*$"))
    assert s.cell is None and s.transcript.startswith("ab")
