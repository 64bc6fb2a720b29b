"""Seeing inside: one cell's activation as colour, and the cells that track a feature."""

import io
import math

import numpy as np
import pytest
from conftest import random_model

from charchat.chat.cells import FoundCell, activations, feature_values, rank_cells, strip_window
from charchat.chat.engine import Engine
from charchat.chat.session import Session
from charchat.errors import CharchatError, CommandError
from charchat.events import CellStrips, Generated, PromptRead
from charchat.style import cell_colour
from charchat.terminal.render import Renderer


def test_features_of_a_text():
    text = 'a "b c" (d) ef\ng'
    assert feature_values("quote", text).tolist() == [0, 0, 1, 1, 1, 1, 0] + [0] * 9
    assert feature_values("line", text)[-3:].tolist() == [14, 0, 1]
    assert feature_values("paren", text)[8:12].tolist() == [1, 1, 0, 0]
    assert feature_values("word", text)[12:14].tolist() == [1, 2]
    assert feature_values(r"\(.\)", text).tolist() == [0] * 8 + [1, 1, 1] + [0] * 5
    with pytest.raises(CharchatError, match="neither a feature"):
        feature_values("(unclosed", text)


def test_the_cell_that_is_the_feature_ranks_first_either_sign():
    rng = np.random.default_rng(0)
    values = rng.random(300)
    acts = rng.standard_normal((300, 2, 8)).astype(np.float32) * 0.1
    acts[:, 1, 2] = values  # layer 2, cell 3
    acts[:, 0, 5] = -values + rng.standard_normal(300) * 0.05  # layer 1, cell 6, inverted
    ranked = rank_cells(acts, values, top=3)
    assert ranked[0][:2] == (2, 3) and ranked[0][2] == pytest.approx(1.0)
    assert ranked[1][:2] == (1, 6) and ranked[1][2] < -0.9
    with pytest.raises(CharchatError, match="does not change"):
        rank_cells(acts, np.zeros(300))


def test_activations_are_tanh_of_the_cell_state_and_leave_the_engine_alone():
    engine = Engine(random_model())
    ids = engine.vocab.encode("the will to power").ids
    engine.feed_many(ids[:3])
    before = engine.snapshot()
    acts = activations(engine, ids)
    assert np.array_equal(engine.snapshot(), before)
    fresh = Engine(random_model())
    for t, i in enumerate(ids):
        fresh.feed(i)
        assert np.allclose(acts[t], np.tanh(fresh.state[1]))


def test_strip_window_shows_where_the_feature_changes():
    values = np.zeros(500)
    values[300:310] = 1
    window = strip_window(values, 72)
    assert window.start <= 300 and window.stop >= 310


def test_a_watched_cell_colours_what_is_read_and_written():
    session = Session(random_model(), length=20, seed=1)
    list(session.handle("/cells 2 3"))
    assert session.cell == (2, 3)
    events = list(session.handle("the will"))
    prompt = next(e for e in events if isinstance(e, PromptRead))
    written = [e for e in events if isinstance(e, Generated)]
    assert len(prompt.cells) == len("the will") and all(-1 <= v <= 1 for v in prompt.cells)
    assert written[-1].cell == pytest.approx(math.tanh(session.engine.state[1, 1, 2]))
    list(session.handle("/cells off"))
    assert all(e.cell is None for e in session.handle("") if isinstance(e, Generated))


def test_finding_cells_changes_nothing_and_ranks_by_correlation():
    session = Session(random_model(), length=5, seed=1)
    list(session.handle("the will to power is the will to life\n" * 12))
    transcript, state = session.transcript, session.engine.snapshot()
    (strips,) = list(session.handle("/cells find line"))
    assert isinstance(strips, CellStrips) and "transcript" in strips.title
    sizes = [abs(found.correlation) for found in strips.cells]
    assert len(sizes) == 5 and sizes == sorted(sizes, reverse=True)
    assert all(len(found.values) == len(strips.text) for found in strips.cells)
    assert session.transcript == transcript and np.array_equal(session.engine.snapshot(), state)


def test_bad_cells_commands_leave_the_session_unchanged():
    session = Session(random_model(), length=5)
    for line, message in (
        ("/cells", "say /cells"),
        ("/cells 1", "say /cells"),
        ("/cells 3 1", "layers 1 to 2"),
        ("/cells 1 17", "cells 1 to 16"),
        ("/cells 0 1", "layers 1 to 2"),
        ("/cells find (", "neither a feature"),
    ):
        with pytest.raises(CommandError, match=message):
            list(session.handle(line))
    with pytest.raises(CommandError, match="does not change"):
        list(session.handle("/cells find quote"))  # the model's own writing has no quotes
    assert session.cell is None and session.transcript == ""


def test_cells_are_coloured_on_a_terminal_and_plain_in_a_pipe():
    event = Generated("a", 0.5, 1.0, cell=-1.0)
    out = io.StringIO()
    Renderer(out, terminal=True, colour=True).show(event)
    assert out.getvalue().startswith(cell_colour(-1.0)) and "38;5;21m" in out.getvalue()
    out, err = io.StringIO(), io.StringIO()
    piped = Renderer(out, err, terminal=False)
    piped.show(event)
    piped.show(CellStrips("t", "ab", [FoundCell(1, 2, 0.5, np.array([0.1, -0.2]))]))
    assert "\x1b" not in out.getvalue() and "layer 1 cell 2  r = +0.50\nab\n" in out.getvalue()
