"""Watching the text be written: pacing on an injected clock, keys that steer it, endless
writing in flat memory, and cheap colour codes."""

import io
import math

import numpy as np
import pytest
from conftest import random_model
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from charchat import settings as spec
from charchat.chat.engine import Engine
from charchat.chat.session import Session
from charchat.events import Generated
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
    written = []
    events = s.handle("ab")
    for event in events:
        if isinstance(event, Generated):
            written.append(event.char)
        if len(written) == 5000:
            s.request_stop()
    assert len(s.transcript) <= 500 + 125 and s.transcript_length == 5002
    assert (
        s._transcript.start > 0 and s.transcript == ("ab" + "".join(written))[-len(s.transcript) :]
    )
    engine = Engine(s.model)  # the state is still that of having read everything
    engine.feed_many(s.model.vocab.encode_known("ab" + "".join(written)))
    np.testing.assert_allclose(engine.state, s.engine.state, atol=1e-5)


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
