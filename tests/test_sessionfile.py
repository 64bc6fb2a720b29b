"""Saved sessions continue exactly, across processes; bad files change nothing."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_model

from charchat.commands import CommandError
from charchat.modelfile import save_model
from charchat.session import Session
from charchat.settings import Settings


def charchat(*args, input=b""):
    done = subprocess.run(
        [sys.executable, "-m", "charchat", *args], input=input, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def test_a_loaded_session_writes_what_the_uninterrupted_one_would(one_line_model_path, tmp_path):
    saved = tmp_path / "s.json"
    common = ["-m", str(one_line_model_path), "--seed", "9", "-n", "60", "--norepeat", "3"]
    straight = charchat(*common, input=b"/temp 1.3\nthe will\n/stop e\n\n\n")
    charchat(*common, input=f"/temp 1.3\nthe will\n/stop e\n/session save {saved}\n".encode())
    resumed = charchat("--session", str(saved), input=b"\n\n")
    assert straight.split("\n")[1:3] == resumed.split("\n")[:2]
    assert straight.split("\n")[0] != resumed.split("\n")[0]  # the first turn is not repeated


def test_save_and_load_in_one_process_restore_everything(tiny_model_path, tmp_path):
    from charchat.modelfile import load_model

    model = load_model(tiny_model_path)
    a = Session(model, Settings(temperature=0.7, mode="min-p", min_p=0.1), 20, 4, stops=("x",))
    list(a.handle("the will"))
    list(a.handle("/session save " + str(tmp_path / "s.json")))
    b = Session(load_model(tiny_model_path))
    list(b.handle("/session load " + str(tmp_path / "s.json")))
    assert (b.settings, b.length, b.stops, b.transcript) == (a.settings, 20, ("x",), a.transcript)
    np.testing.assert_array_equal(a.engine.state, b.engine.state)
    assert b.turns and len(b.turns) == len(a.turns)  # the undo points came along
    assert written(a) == written(b)  # and the random stream
    list(b.handle("/undo"))
    list(b.handle("/undo"))
    assert b.transcript == ""


def written(session):
    return "".join(e.char for e in session.handle("") if hasattr(e, "char"))


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda d: "not json at all", "not JSON"),
        (lambda d: json.dumps({**d, "format_version": 99}), "format 99"),
        (lambda d: json.dumps({**d, "state": "!!!"}), "damaged"),
        (lambda d: json.dumps({**d, "settings": {**d["settings"], "temperature": -5}}), "damaged"),
        (lambda d: json.dumps({**d, "rng": {"bit_generator": "nope"}}), "damaged"),
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "length"}), "damaged"),
    ],
)
def test_a_damaged_file_is_one_clear_line_and_changes_nothing(
    tiny_model_path, tmp_path, damage, words
):
    from charchat.modelfile import load_model

    s = Session(load_model(tiny_model_path), length=10, seed=1)
    list(s.handle("abc"))
    path = tmp_path / "s.json"
    list(s.handle(f"/session save {path}"))
    path.write_text(damage(json.loads(path.read_text())))
    before = (s.transcript, s.settings, s.engine.snapshot(), s.rng.bit_generator.state)
    with pytest.raises(CommandError, match=words):
        list(s.handle(f"/session load {path}"))
    assert (s.transcript, s.settings) == before[:2] and s.rng.bit_generator.state == before[3]
    np.testing.assert_array_equal(s.engine.state, before[2])


def test_another_model_needs_reread(tiny_model_path, tmp_path):
    from charchat.modelfile import load_model

    s = Session(load_model(tiny_model_path), length=10, seed=1)
    list(s.handle("abc"))
    list(s.handle(f"/session save {tmp_path / 's.json'}"))
    other = save_model(random_model(seed=11), tmp_path / "other.safetensors")
    t = Session(load_model(other), length=10, seed=2)
    with pytest.raises(CommandError, match="switch with /model"):
        list(t.handle(f"/session load {tmp_path / 's.json'}"))
    assert t.transcript == ""
    list(t.handle(f"/session load {tmp_path / 's.json'} reread"))
    assert t.transcript == s.transcript and not t.turns
