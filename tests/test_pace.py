"""Watching the text be written: pacing on an injected clock, endless writing in flat memory,
/regen, Ctrl+C that stops an action but never the session, and cheap colour codes."""

import io
import math
import os
import signal
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
from charchat.events import Generated, Info
from charchat.settings import Settings
from charchat.style import MODEL
from charchat.terminal.pace import Pacer
from charchat.terminal.render import Renderer
from charchat.terminal.repl import Repl


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_the_pacer_shows_characters_at_its_rate():
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(6):
        assert pacer.wait(lambda: False) is False
    assert clock.now - start == pytest.approx(0.5)  # the first at once, then every 0.1 s
    assert max(clock.slept) <= 0.03 + 1e-9  # keys are polled while it waits


def test_a_key_stops_the_wait_at_once_and_no_pace_never_sleeps():
    clock = FakeClock()
    pacer = Pacer(1, clock=clock, sleep=clock.sleep)
    pacer.wait(lambda: False)
    polls = iter([False, False, True])
    assert pacer.wait(lambda: next(polls)) is True
    assert clock.now - 100.0 < 0.1
    unpaced = Pacer(0, clock=clock, sleep=clock.sleep)
    before = len(clock.slept)
    for _ in range(100):
        unpaced.wait(lambda: False)
    assert len(clock.slept) == before


def test_left_and_right_change_the_pace():
    pacer = Pacer(60)
    pacer.faster()
    assert pacer.rate == 90
    pacer.slower()
    pacer.slower()
    assert pacer.rate == 40


@pytest.fixture
def keys():
    with create_pipe_input() as pipe:
        yield pipe


def repl_for(session, keys, keys_text="", clock=None):
    keys.send_text(keys_text)
    out = io.StringIO()
    clock = clock or FakeClock()
    repl = Repl(
        session,
        output=DummyOutput(),
        out=out,
        colour=False,
        history=InMemoryHistory(),
        keys=keys,
        pacer=Pacer(session.speed, clock=clock, sleep=clock.sleep),
    )
    return repl, keys, out, clock


def test_a_paced_turn_takes_its_time_on_the_clock_and_keys_steer_it(keys):
    s = Session(random_model(), Settings(temperature=1.0), 30, 1, speed=20)
    repl, keys, out, clock = repl_for(s, keys, "\x1b[C")  # Right: faster
    repl.stream(s.handle("ab"))
    assert len(s.transcript) == 32
    assert s.speed == 30  # 20 x 1.5
    assert 0.9 < clock.now - 100.0 < 1.6  # 30 characters at 20-30 a second


def test_space_pauses_and_resumes(monkeypatch, keys):
    s = Session(random_model(), Settings(temperature=1.0), 10, 1, speed=0)
    repl, keys, out, clock = repl_for(s, keys, " ")
    reads = {"n": 0}
    real = repl._apply_keys

    def apply_keys(steering):
        reads["n"] += 1
        if reads["n"] == 5:
            keys.send_text(" ")  # resume after a few polls
        return real(steering)

    monkeypatch.setattr(repl, "_apply_keys", apply_keys)
    repl.stream(s.handle("ab"))
    assert reads["n"] > 5 and len(s.transcript) == 12 and not repl.paused


def test_tab_cycles_the_sampling_mode(keys):
    s = Session(random_model(), Settings(temperature=1.0), 5, 1)
    repl, keys, out, clock = repl_for(s, keys, "\t")
    repl.stream(s.handle("ab"))
    assert s.settings.mode == "top-k"


# ---------------------------------------------------------------- endless writing


def test_endless_writing_runs_until_stopped_in_bounded_memory(monkeypatch):
    monkeypatch.setattr(spec, "TRANSCRIPT_KEEP", 500)
    s = Session(random_model(), Settings(temperature=1.0), 5, 1)
    list(s.handle("/len inf"))
    assert math.isinf(s.length)
    shown = 0
    events = s.handle("ab")
    for event in events:
        shown += isinstance(event, Generated)
        if shown == 5000:
            s.request_stop()
    assert len(s.transcript) <= 500 + 125 and s.transcript_length == 5002
    assert s._transcript.start > 0
    engine = Engine(s.model)  # the state is still that of having read everything
    engine.feed_many(s.model.vocab.encode_known("ab"))
    assert not np.allclose(engine.state, s.engine.state)


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


# ---------------------------------------------------------------- cheaper rendering


def test_a_colour_code_only_where_the_colour_changes():
    out = io.StringIO()
    render = Renderer(out, terminal=True, colour=True)
    for char in "abcdefghij":
        render.show(Generated(char, 0.5, 1.0))
    render.end_turn()
    assert out.getvalue().count(MODEL) == 1 and "abcdefghij" in out.getvalue()


def test_help_says_the_keys_and_the_limits():
    s = Session(random_model())
    text = next(iter(s.handle("/help"))).text
    assert "←/→ pace" in text and "space pause" in text
    assert f"{spec.TRANSCRIPT_KEEP:,}" in text and f"{spec.UNDO_KEEP} undo points" in text


def test_regen_in_a_piped_script(one_line_model_path):
    import subprocess
    import sys

    args = [sys.executable, "-m", "charchat", "-m", str(one_line_model_path), "-n", "20"]
    done = subprocess.run([*args, "--seed", "5"], input=b"the \n/regen\n", capture_output=True)
    first, again, rest = done.stdout.decode().split("\n")
    assert done.returncode == 0 and len(first) == len(again) == 20 and first != again
