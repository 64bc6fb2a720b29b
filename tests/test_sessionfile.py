"""Saved sessions continue exactly, across processes; bad files change nothing."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_model

from charchat.chat.session import Session
from charchat.errors import CommandError
from charchat.modelfile import save_model
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
        (lambda d: json.dumps({k: v for k, v in d.items() if k != "length"}), "has no length"),
        (lambda d: json.dumps({**d, "rng": {**d["rng"], "state": -1}}), "damaged: rng: "),
        (lambda d: json.dumps({**d, "rng": {**d["rng"], "state": "x"}}), "damaged: rng: "),
        (lambda d: json.dumps({**d, "length": 10**12}), "damaged: length: length must be"),
        (lambda d: json.dumps({**d, "length": 2.5}), "damaged: length: "),
        (lambda d: json.dumps({**d, "stops": "abc"}), "damaged: stops: not a list"),
        (lambda d: json.dumps({**d, "stops": ["a"] * 17}), "damaged: stops: more than 16"),
        (lambda d: json.dumps({**d, "stops": [""]}), "damaged: stops: each must be text"),
        (
            lambda d: json.dumps({**d, "turns": d["turns"] * 500}),
            "damaged: turns: more than the 100",
        ),
        (lambda d: json.dumps({**d, "turns": [{"state": 1, "length": 0}]}), "damaged: turns: "),
        (lambda d: json.dumps({**d, "turns": [{**d["turns"][0], "length": 99}]}), "past the end"),
        (lambda d: json.dumps({**d, "transcript": "a" * 1_000_001}), "damaged: transcript: long"),
        (lambda d: json.dumps({**d, "transcript": 5}), "damaged: transcript: not text"),
        (lambda d: json.dumps({**d, "surprise_colours": "yes"}), "damaged: surprise_colours"),
        (lambda d: json.dumps({**d, "settings": [1]}), "damaged: settings: not a mapping"),
        (lambda d: json.dumps({**d, "settings": {"heat": 1}}), "damaged: settings: "),
        (lambda d: json.dumps({**d, "speed": "fast"}), "damaged: speed: speed must be"),
        (lambda d: "[" * 100_000 + "]" * 100_000, "not JSON"),
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


def test_every_refusal_says_what_is_wrong(tiny_model_path, tmp_path):
    """No "damaged ()": the field and a reason, whatever the field holds."""
    from charchat.modelfile import load_model

    s = Session(load_model(tiny_model_path), length=10, seed=1)
    path = tmp_path / "s.json"
    list(s.handle(f"/session save {path}"))
    good = json.loads(path.read_text())
    for field in ("settings", "length", "seed", "stops", "norepeat", "speed", "rng", "state"):
        for value in (None, [], {}, "x", -1, 10**30):
            if (field, value) in (("seed", None), ("stops", []), ("settings", {})):
                continue  # valid
            path.write_text(json.dumps({**good, field: value}))
            with pytest.raises(CommandError) as refused:
                list(s.handle(f"/session load {path}"))
            assert f"damaged: {field}: " in str(refused.value) and "()" not in str(refused.value)


@pytest.mark.parametrize("mode", ["piped", "repl"])
def test_a_session_with_a_bad_generator_state_is_refused_in_one_line(
    tiny_model_path, tmp_path, mode
):
    """Was an OverflowError from numpy, a traceback, and the unsaved session gone."""
    path = tmp_path / "s.json"
    charchat("-m", str(tiny_model_path), "-n", "5", input=f"ab\n/session save {path}\n".encode())
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "rng": {**data["rng"], "state": -1}}))
    if mode == "piped":
        done = subprocess.run(
            [sys.executable, "-m", "charchat", "-m", str(tiny_model_path)],
            input=f"/session load {path}\n".encode(),
            capture_output=True,
            timeout=120,
        )
        assert done.returncode != 0 and b"Traceback" not in done.stderr
        assert done.stderr.decode().strip().splitlines() == [
            f"charchat: error: line 1: {path}: the session file is damaged: rng: not valid"
        ]
        return
    from test_repl import run_repl

    from charchat.modelfile import load_model

    s = Session(load_model(tiny_model_path), length=5, seed=1)
    code, shown = run_repl(s, f"the\r/session load {path}\r/len 3\r")
    assert code == 0 and "damaged: rng: not valid" in shown and s.length == 3
    assert s.transcript.startswith("the") and len(s.transcript) == 8  # the session went on


def test_a_cut_transcript_keeps_its_undo_points_in_place(tiny_model_path, tmp_path, monkeypatch):
    """Undo points count from the start of the kept text, so they still fit after loading."""
    from charchat.chat import transcript
    from charchat.modelfile import load_model

    monkeypatch.setattr(transcript.spec, "TRANSCRIPT_KEEP", 40)
    s = Session(load_model(tiny_model_path), length=20, seed=1)
    for prompt in ("ab", "cd", "ef", "gh"):
        list(s.handle(prompt))
    path = tmp_path / "s.json"
    list(s.handle(f"/session save {path}"))
    t = Session(load_model(tiny_model_path), length=20, seed=1)
    list(t.handle(f"/session load {path}"))
    list(s.handle("/undo"))
    list(t.handle("/undo"))
    assert t.transcript == s.transcript[-len(t.transcript) :] and t.transcript


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_saving_onto_a_fifo_is_refused_and_loading_one_does_not_wait(tiny_model_path, tmp_path):
    import os
    import stat

    from charchat.modelfile import load_model

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    s = Session(load_model(tiny_model_path), length=5, seed=1)
    with pytest.raises(CommandError, match=r"/session save: .*pipe \(FIFO\), not a file"):
        list(s.handle(f"/session save {fifo}"))
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    with pytest.raises(CommandError, match="is a pipe, not a file"):
        list(s.handle(f"/session load {fifo}"))


def test_regen_after_loading_writes_the_last_turn_again_from_its_prompt(tiny_model_path, tmp_path):
    """Undo points are saved with their prompts: /regen after a load reads the prompt again."""
    from charchat.modelfile import load_model

    s = Session(load_model(tiny_model_path), length=10, seed=1)
    list(s.handle("ab"))
    list(s.handle("cd"))
    path = tmp_path / "s.json"
    list(s.handle(f"/session save {path}"))
    t = Session(load_model(tiny_model_path), length=10, seed=5)
    list(t.handle(f"/session load {path}"))
    before = t.transcript[: len(t.transcript) - 12]
    list(t.handle("/regen"))
    assert t.transcript.startswith(before + "cd") and len(t.transcript) == len(s.transcript)
