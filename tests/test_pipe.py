"""Piped sessions through a real subprocess: stdout carries only generated text."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import random_model

from charchat.modelfile import save_model


def charchat(*args, input=b"", env=None):
    return subprocess.run(
        [sys.executable, "-m", "charchat", *args],
        input=input,
        capture_output=True,
        timeout=120,
        env=env,
    )


def test_same_seed_same_bytes(tiny_model_path):
    a = charchat("-m", str(tiny_model_path), "-n", "80", "--seed", "5", input=b"the will to\n")
    b = charchat("-m", str(tiny_model_path), "-n", "80", "--seed", "5", input=b"the will to\n")
    assert a.returncode == 0 and a.stdout == b.stdout
    assert len(a.stdout.decode()) == 81 and a.stdout.endswith(b"\n")
    assert b"\x1b[" not in a.stdout  # no colour codes when piped


def test_each_prompt_gets_a_block_and_state_carries(one_line_model_path):
    script = b"the will\n/len 10\n/temp 0\npower\n\n"
    result = charchat("-m", str(one_line_model_path), "-n", "20", "--seed", "1", input=script)
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.decode().split("\n")
    assert [len(b) for b in blocks[:3]] == [20, 10, 10] and blocks[3] == ""
    assert b"temperature 0" in result.stderr


def test_echo_writes_each_seed_first(tiny_model_path):
    result = charchat(
        "-m", str(tiny_model_path), "-n", "5", "--echo", "--seed", "1", input=b"abc\n"
    )
    assert result.stdout.decode().startswith("abc") and len(result.stdout.decode()) == 9


def test_whole_reads_all_of_stdin_as_one_seed(tiny_model_path):
    result = charchat(
        "-m",
        str(tiny_model_path),
        "-n",
        "7",
        "--whole",
        "--seed",
        "1",
        input=b"line one\n/temp 5\nline two\n",
    )
    assert result.returncode == 0
    assert len(result.stdout.decode()) == 8 and b"temperature" not in result.stderr


def test_bad_script_line_names_the_line_and_exits_2(tiny_model_path):
    result = charchat("-m", str(tiny_model_path), "-n", "5", input=b"abc\n/temp hot\nmore\n")
    assert result.returncode == 2
    assert b"line 2" in result.stderr and b"Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_head_closes_the_pipe_quietly(tiny_model_path):
    cmd = f"{sys.executable} -m charchat -m {tiny_model_path} -n 100000 | head -c 10"
    result = subprocess.run(
        ["bash", "-c", "set -o pipefail; echo abc | " + cmd], capture_output=True, timeout=120
    )
    assert len(result.stdout) == 10
    assert result.stderr == b""


def test_probs_and_sweep_go_to_stdout_as_plain_text(tiny_model_path):
    result = charchat(
        "-m", str(tiny_model_path), "-n", "12", "--seed", "2", input=b"/probs 3\n/sweep 0.5 1\n"
    )
    out = result.stdout.decode()
    assert result.returncode == 0
    assert "next character" in out and "entropy" in out and "T=0.5" in out and "T=1" in out
    assert "\x1b" not in out


def test_escape_from_the_model_never_reaches_stdout_raw(tmp_path):
    model = random_model(chars="ab\x1b[", seed=1)
    model.tensors["head.bias"] = np.where(np.array(model.vocab.chars) == "\x1b", 20.0, 0.0).astype(
        np.float32
    )
    path = save_model(model, tmp_path / "esc.safetensors")
    result = charchat("-m", str(path), "-n", "20", "--seed", "1", input=b"a\n")
    assert result.returncode == 0
    assert b"\x1b" not in result.stdout and "␛".encode() in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temp", "-1"], b"temperature"),
        (["--length", "0"], b"--length"),
        (["-m", "/nonexistent/m.safetensors"], b"no such model file"),
        (["-m", "nosuchname"], b"no model named"),
    ],
)
def test_bad_options_are_one_line_and_non_zero(args, message):
    result = charchat(*args, input=b"x\n")
    assert result.returncode != 0 and message in result.stderr
    assert b"Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_huge_line_is_a_clear_error_not_a_memory_blow_up(tiny_model_path):
    from charchat.terminal.pipe import MAX_LINE_BYTES

    huge = b"a" * (MAX_LINE_BYTES + 10) + b"\n"
    result = charchat("-m", str(tiny_model_path), "-n", "5", input=huge)
    limit = f"longer than {MAX_LINE_BYTES // 2**20} MiB".encode()
    assert result.returncode == 2 and limit in result.stderr
    assert b"Traceback" not in result.stderr
