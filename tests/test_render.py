"""The one rendering layer: every event type, on a terminal and in a pipe."""

import dataclasses
import io

import numpy as np
import pytest

from charchat import events
from charchat.chat.cells import FoundCell
from charchat.style import MODEL, SURPRISE_SCALE, UNDERLINE, USER, cell_colour
from charchat.terminal.render import Renderer

ALL_EVENTS = [
    events.PromptRead("the\x1bwill", {"é": "e"}, ["😀"], None),
    events.Generated("x", 0.5, 1.0),
    events.Generated("\x07", 0.001, 1.0),
    events.TurnDone(2, 0.1),
    events.Info("temperature 1.2"),
    events.ModelCard([("model", "tiny"), ("corpus", "c\x1b.txt")]),
    events.Probs(
        [events.ProbRow("a", 0.7, 0.6, True), events.ProbRow("\n", 0.3, 0.4, False)],
        0.8,
        0.9,
        1.0,
        "sample: all 2 can be chosen",
    ),
    events.SweepLine(0.2, "ab\ncd", 0.4, 1.1),
    events.Reading(2048, 10000),
    events.Searching(8, 400),
    events.Score("ab", [0.5, 9.0], 4.75, ["😀"]),
    events.SurpriseColours(True),
    events.SurpriseColours(False),
    events.CellStrips("cells\x1b", "a\x1bb", [FoundCell(1, 2, 0.5, np.array([0.1, -0.2, 0.9]))]),
    events.Generated("y", 0.5, 1.0, copied=True, cell=0.3),
    events.Quit(),
]


def test_every_event_type_is_listed_here():
    defined = {
        c
        for c in vars(events).values()
        if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == events.__name__
    }
    parts = {events.ProbRow, *events.TRAINING}  # rows inside Probs; training's own view
    assert defined - parts == {type(e) for e in ALL_EVENTS}


def render_all(terminal: bool, colour: bool = False):
    out, err = io.StringIO(), io.StringIO()
    renderer = Renderer(out, err, terminal=terminal, colour=colour)
    for event in ALL_EVENTS:
        renderer.show(event)
    return out.getvalue(), err.getvalue()


def test_plain_mode_puts_only_what_was_asked_for_on_stdout():
    out, err = render_all(terminal=False)
    assert "\x1b" not in out + err  # no colour, and the model's ESC is shown as a symbol
    assert out.startswith("x␇\n")  # the generated text, then the turn's newline
    assert "the" not in out.split("\n")[0]  # the prompt is not echoed unless asked
    assert "next character" in out and "entropy 1.11" not in out
    assert "T=0.2  entropy 0.40 bits/char" in out and "ab␊cd" in out
    assert "4.750 bits/char over 2 characters" in out
    assert "c␛.txt" in out
    assert "charchat: temperature 1.2" in err
    assert "read as: 'é'→'e'" in err and "dropped: '😀'" in err
    assert "colour by surprise on (piped output stays plain)" in err
    assert "colour by surprise off" in err


def test_plain_mode_echo_writes_the_prompt_first():
    out = io.StringIO()
    renderer = Renderer(out, io.StringIO(), echo=True)
    renderer.show(ALL_EVENTS[0])
    renderer.show(events.Generated("x", 0.5, 1.0))
    renderer.show(events.TurnDone(1, 0.1))
    assert out.getvalue() == "the␛willx\n"


def test_terminal_mode_colours_and_keeps_one_stream():
    out, err = render_all(terminal=True, colour=True)
    assert err == ""  # a terminal is one screen
    assert f"{USER}the␛will" in out and f"{MODEL}x" in out
    assert "\x1b[2mtemperature 1.2" in out  # info is dim
    legend = [colour for _, colour, _ in SURPRISE_SCALE]
    assert all(colour in out for colour in legend)
    raw = out
    cell_scale = [cell_colour(v) for v in np.linspace(-1, 1, 41)]
    for code in ("\x1b[0m", "\x1b[1m", "\x1b[2m", "\x1b[7m", "\x1b[2K", MODEL, *legend):
        raw = raw.replace(code, "")
    for code in (UNDERLINE, *cell_scale):
        raw = raw.replace(code, "")
    assert "\x1b" not in raw  # every ESC is one of ours


def test_surprise_colours_follow_the_event():
    out = io.StringIO()
    renderer = Renderer(out, terminal=True, colour=True)
    renderer.show(events.SurpriseColours(True))
    out.seek(0)
    out.truncate(0)
    renderer.show(events.Generated("a", 0.9, 1.0))  # 0.15 bits: the "<1 bit" colour
    renderer.show(events.Generated("b", 2**-8, 1.0))  # 8 bits: the "7+ bits" colour
    assert out.getvalue().startswith(SURPRISE_SCALE[0][1] + "a")
    assert SURPRISE_SCALE[-1][1] + "b" in out.getvalue() and MODEL not in out.getvalue()


@pytest.mark.parametrize("terminal", [True, False])
def test_a_stopped_turn_ends_its_line_and_says_so(terminal):
    out, err = io.StringIO(), io.StringIO()
    renderer = Renderer(out, err, terminal=terminal)
    renderer.show(events.Generated("a", 0.5, 1.0))
    renderer.end_turn(stopped=True)
    assert out.getvalue().startswith("a\n")
    assert "(stopped)" in (out.getvalue() if terminal else err.getvalue())


SILENT = {
    (events.TurnDone, True),  # ends the line, which nothing opened here
    (events.TurnDone, False),
    (events.Reading, False),  # progress is for terminals
    (events.Searching, True),  # shown in the status bar, which only a stream opens
    (events.Searching, False),
    (events.Quit, True),
    (events.Quit, False),
}


@pytest.mark.parametrize("terminal", [True, False])
def test_every_event_shows_something_unless_it_is_meant_to_be_silent(terminal):
    for event in ALL_EVENTS:
        out, err = io.StringIO(), io.StringIO()
        Renderer(out, err, terminal=terminal).show(event)
        said = bool(out.getvalue() or err.getvalue())
        assert said != ((type(event), terminal) in SILENT), type(event).__name__


def test_every_training_event_is_drawn_by_the_training_view(capsys):
    from charchat.terminal.trainview import TrainingView

    shown = [
        events.TrainingStarted(10, 12_345, 40, "cpu"),
        events.ScheduleFitted(12),
        events.StepDone(1, 3.5, 1000),
        events.Validated(1, 2.0, float("nan"), 2.0),
        events.Samples("the", {0.5: "the\x1b[2J will"}, False),
        events.StepSkipped(2, 1),
        events.RolledBack(0.5),
        events.Resumed(3),
        events.StartingStateFitted(7),
        events.PlanChosen("plan: 1x64 LSTM"),
        events.TrainingStopped("stopped at step 3", "charchat train t.txt --resume"),
        events.TrainingFinished("m.safetensors", 3, 3000, 1.0, 1, 2.5),
    ]
    assert {type(e) for e in shown} == set(events.TRAINING)
    with TrainingView() as view:
        for event in shown:
            view(event)
    err = capsys.readouterr().err
    for words in (
        "0.01M parameters",
        "fitted to 12 steps",
        "T=0.5",
        "␛[2J",
        "step skipped",
        "halved",
        "resumed at step 3",
        "(7 steps)",
        "plan: 1x64",
        "resume with: charchat train t.txt --resume",
        "saved m.safetensors (3 steps, 3,000 characters",
    ):
        assert words in err, words
    assert "\x1b[2J" not in err
