"""The REPL with prompt_toolkit's pipe input and a dummy output (no terminal needed)."""

import io
import threading

import pytest
from conftest import random_model
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from charchat.chat.session import Session
from charchat.settings import Settings
from charchat.terminal.completion import CommandCompleter
from charchat.terminal.repl import Repl


@pytest.fixture
def session():
    return Session(random_model(), Settings(temperature=1.0), length=25, seed=3)


def run_repl(session, typed: str, history=None, keys=None, later: str = "", colour=False):
    """Type `typed`; `later` is typed half a second on, after async work such as completion."""
    out = io.StringIO()
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        inp.send_text(typed)

        def type_later():
            inp.send_text(later)
            inp.close()

        timer = threading.Timer(0.5 if later else 0, type_later)
        timer.start()
        repl = Repl(
            session,
            input=inp,
            output=DummyOutput(),
            out=out,
            colour=colour,
            history=history or InMemoryHistory(),
            keys=keys,
        )
        code = repl.run()
        timer.join()
    return code, out.getvalue()


def test_prompt_streams_and_commands_apply(session):
    code, shown = run_repl(session, "the will\r/temp 1.2\r/len 5\r\r")
    assert code == 0  # end of input = Ctrl+D
    assert session.settings.temperature == 1.2 and session.length == 5
    assert "temperature 1.2" in shown
    assert len(session.transcript) == len("the will") + 25 + 5
    first_turn, second_turn = session.transcript[:33], session.transcript[33:]
    assert first_turn + "\n" in shown and second_turn + "\n" in shown  # each turn shown whole


def test_bad_command_shows_a_message_and_changes_nothing(session):
    code, shown = run_repl(session, "/temp hot\r/tmep 2\r")
    assert code == 0 and session.settings.temperature == 1.0
    assert "error: /temp" in shown and "did you mean /temp" in shown


def test_quit_command(session):
    code, shown = run_repl(session, "/quit\rthe will\r")
    assert code == 0 and session.transcript == ""


def test_completion_of_commands_and_arguments():
    completer = CommandCompleter()

    def complete(text):
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    assert complete("/te") == ["/temp "]
    assert complete("/mode t") == ["top-k", "top-p"]
    assert "/model " in complete("/mo")
    assert complete("plain text") == []


def test_tab_completes_in_the_prompt(session):
    code, shown = run_repl(session, "/te\t", later="0.3\r")
    assert session.settings.temperature == 0.3


def test_history_is_kept_in_a_file(session, tmp_path):
    history = FileHistory(str(tmp_path / "history"))
    run_repl(session, "/temp 0.5\r", history=history)
    assert "/temp 0.5" in (tmp_path / "history").read_text()
    session2 = Session(random_model(), length=5, seed=1)
    # Up recalls the last line from the file
    run_repl(session2, "\x1b[A\r", history=FileHistory(str(tmp_path / "history")))
    assert session2.settings.temperature == 0.5


def test_multiline_paste_is_one_prompt():
    session = Session(random_model(chars="abcdefghijklmnopqrstuvwxyz /3\n"), length=5, seed=1)
    run_repl(session, "\x1b[200~/temp 3\nthe will\x1b[201~\r")
    assert session.settings.temperature == 0.8  # the command inside the paste did not run
    assert session.transcript.startswith("/temp 3\nthe will")


def test_keys_while_streaming_change_temperature_and_stop(session):
    with create_pipe_input() as keys:
        keys.send_text("+++")  # three steps up, then Ctrl+C
        keys.send_text("\x03")
        out = io.StringIO()
        repl = Repl(
            session,
            input=None,
            output=DummyOutput(),
            out=out,
            colour=False,
            history=InMemoryHistory(),
            keys=keys,
        )
        repl.stream(session.handle("ab"))
    assert session.settings.temperature == pytest.approx(1.3)
    assert "(stopped)" in out.getvalue()
    shown = out.getvalue().split("\n")[0]
    assert session.transcript == shown  # only what was shown is in the transcript


def test_control_characters_are_shown_as_symbols(tmp_path):
    import numpy as np

    model = random_model(chars="ab\x1b[", seed=1)
    model.tensors["head.bias"] = np.where(np.array(model.vocab.chars) == "\x1b", 20.0, 0.0).astype(
        np.float32
    )
    session = Session(model, length=10, seed=1)
    code, shown = run_repl(session, "a\r")
    assert "\x1b" not in shown and "␛" * 5 in shown


def test_color_on_explains_itself(session):
    code, shown = run_repl(session, "/color on\rthe\r")
    assert session.surprise_colours and "colour by surprise on" in shown


def test_a_loaded_session_colours_by_surprise_as_it_was_saved(tmp_path):
    """The renderer follows the session's flag: /session load turns the colours on."""
    from charchat.modelfile import load_model, save_model
    from charchat.style import MODEL, SURPRISE_SCALE

    model = load_model(save_model(random_model(), tmp_path / "m.safetensors"))
    saved = Session(model, Settings(temperature=1.0), length=30, seed=3)
    list(saved.handle("/color on"))
    path = tmp_path / "s.json"
    list(saved.handle(f"/session save {path}"))
    session = Session(saved.model, Settings(temperature=1.0), length=30, seed=3)
    code, shown = run_repl(session, f"/session load {path}\rthe\r", colour=True)
    assert code == 0 and session.surprise_colours
    written = shown[shown.index("session loaded") :]
    assert any(colour in written for _, colour, _ in SURPRISE_SCALE)
    assert MODEL not in written
