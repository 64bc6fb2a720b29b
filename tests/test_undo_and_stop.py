"""Going back and stopping: /undo and /regen, and Ctrl+C (as a signal, where the terminal is
not raw) that stops an action but never the session."""

import io
import os
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import random_model
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from charchat import settings as spec
from charchat.chat import looking
from charchat.chat.engine import Engine
from charchat.chat.session import Session
from charchat.events import Info
from charchat.settings import Settings
from charchat.terminal.repl import Repl


def test_undo_points_are_bounded(monkeypatch):
    monkeypatch.setattr(spec, "UNDO_KEEP", 3)
    s = Session(random_model(), Settings(temperature=1.0), 2, 1)
    for _ in range(6):
        list(s.handle("a"))
    assert len(s.turns) == 3


# ---------------------------------------------------------------- /regen


def test_regen_writes_the_last_turn_again_from_the_same_state():
    s = Session(random_model(), Settings(temperature=1.5), 40, 1)
    list(s.handle("the "))
    first = s.transcript
    events = list(s.handle("/regen"))
    again = s.transcript
    assert again.startswith("the ") and again != first and len(again) == len(first)
    assert len(s.turns) == 1
    fresh = Engine(s.model)
    fresh.feed_many(s.model.vocab.encode_known(again))
    np.testing.assert_allclose(s.engine.state, fresh.state, rtol=1e-4, atol=1e-5)
    assert not any(isinstance(e, Info) for e in events)


def test_regen_in_a_deterministic_mode_says_so():
    s = Session(random_model(), Settings(temperature=0), 10, 1)
    list(s.handle("the "))
    first = s.transcript
    events = list(s.handle("/regen"))
    assert s.transcript == first and "deterministic" in events[0].text


# ---------------------------------------------------------------- Ctrl+C stops an action


def run_repl_with_sigint(session, typed):
    out = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text(typed)
        inp.close()
        repl = Repl(session, input=inp, output=DummyOutput(), out=out, colour=False)
        repl.prompt.history = InMemoryHistory()
        code = repl.run()
    return code, out.getvalue()


def ctrl_c_soon():
    """A real SIGINT to this process a moment after the action starts, as a terminal sends."""
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.parametrize(
    "command, action, words",
    [
        ("/sweep 0.5 1 1.5 2", "sweep", "/sweep stopped"),
        ("/score " + "ab " * 20000, "score", "/score stopped"),
    ],
)
def test_ctrl_c_stops_a_long_command_and_keeps_the_session(monkeypatch, command, action, words):
    monkeypatch.setattr(spec, "SWEEP_CHARS", 10**6)
    real = getattr(looking, action)
    started = []

    def watched(*args):
        started.append(ctrl_c_soon())
        return real(*args)

    monkeypatch.setattr(looking, action, watched)
    s = Session(random_model(hidden=256), Settings(temperature=1.0), 10**5, 1)
    list(s.handle("ab"))
    before = (s.transcript, s.engine.snapshot(), s.rng.bit_generator.state)
    code, shown = run_repl_with_sigint(s, command + "\r/temp 0.5\r")
    started[0].join()
    assert code == 0 and words in shown
    assert (s.transcript, s.rng.bit_generator.state) == (before[0], before[2])
    np.testing.assert_array_equal(s.engine.state, before[1])
    assert s.settings.temperature == 0.5  # the session went on


def test_a_stopped_prompt_keeps_what_was_read():
    s = Session(random_model(), Settings(temperature=1.0), 5, 1)
    events = s.handle("ab " * 5000)
    for event in events:
        if type(event).__name__ == "Reading":
            s.request_stop()
    assert 0 < len(s.transcript) < 15000
    fresh = Engine(s.model)
    fresh.feed_many(s.model.vocab.encode_known(s.transcript))
    np.testing.assert_allclose(s.engine.state, fresh.state, rtol=1e-4, atol=1e-5)


def test_regen_in_a_piped_script(one_line_model_path):

    args = [sys.executable, "-m", "charchat", "-m", str(one_line_model_path), "-n", "20"]
    done = subprocess.run([*args, "--seed", "5"], input=b"the \n/regen\n", capture_output=True)
    first, again, rest = done.stdout.decode().split("\n")
    assert done.returncode == 0 and len(first) == len(again) == 20 and first != again
