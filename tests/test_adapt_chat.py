"""/adapt in the chat: what a person types is learnt from once read, never the model's own
text; /undo, /adapt reset and /session save|load restore exactly (weights and next text)."""

import json
import subprocess
import sys

import numpy as np
import pexpect
import pytest
from conftest import random_model
from test_keys import finish, paste
from test_terminal import spawn

from charchat.chat import adapting
from charchat.chat.session import Session
from charchat.errors import CommandError
from charchat.events import Generated
from charchat.modelfile import load_model, save_model
from charchat.train.adapt import chat_learner

TEXT = "a big cat sat on the mat. " * 12
LATER = "a big cat sat on the mat. a big cat"


@pytest.fixture
def model(tmp_path):
    return load_model(save_model(random_model(seed=3), tmp_path / "m.safetensors"))


def session_on(model, seed=1, learner=chat_learner, **kwargs) -> Session:
    session = Session(model, seed=seed, length=30, **kwargs)
    session.make_learner = learner
    session.adapt_settings = (3e-3, 50)
    return session


def run(session, line) -> list:
    return list(session.handle(line))


def written(session, line="") -> str:
    return "".join(e.char for e in session.handle(line) if isinstance(e, Generated))


def weights(session) -> list[np.ndarray]:
    e = session.engine
    return [e.input_table.copy(), e.w_first.copy(), e.head_w.copy(), e.head_b.copy()] + [
        w.copy() for w in e.w_upper
    ]


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_what_is_typed_is_learnt_and_lowers_the_score(model):
    plain, learning = session_on(model), session_on(model)
    run(learning, "/adapt on")
    for s in (plain, learning):
        run(s, TEXT)
    assert learning.score(LATER).mean_bits < plain.score(LATER).mean_bits - 1.0
    assert learning.adapting.learnt == len(TEXT)
    assert "learning · 312 chars learnt" in run(learning, "/adapt")[0].text


def test_the_learner_never_sees_the_models_own_text(model):
    seen = []

    class Recording:
        def __init__(self, model, lr, stretch):
            self.inner = chat_learner(model, lr, stretch)

        def learn(self, ids, state):
            seen.extend(ids.tolist())
            return self.inner.learn(ids, state)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    session = session_on(model, learner=Recording)
    run(session, "/adapt on")
    prompts = ["the cat sat", "", "on the mat, and then the dog " * 5, "/probs", "a"]
    for prompt in prompts:
        run(session, prompt)
    typed = "".join(p for p in prompts if not p.startswith("/"))
    assert seen == model.vocab.encode(typed).ids
    assert len(session.transcript) > len(typed)  # the model wrote in between: not learnt


def test_off_keeps_what_was_learnt_and_reset_forgets_it(model):
    fresh = session_on(model)
    untouched = weights(fresh)
    session = session_on(model)
    run(session, "/adapt on")
    run(session, TEXT)
    learnt = weights(session)
    run(session, "/adapt off")
    run(session, "the cat")
    assert same(weights(session), learnt)  # off: nothing more learnt, nothing forgotten
    assert not same(learnt, untouched)
    run(session, "/reset")
    assert same(weights(session), learnt)  # /reset clears the transcript, keeps the learning
    assert "nothing learnt" in run(session, "/adapt reset")[0].text
    assert same(weights(session), untouched)
    for s in (session, fresh):
        run(s, "/reset")
        run(s, "/seed 5")
    assert written(session, "the") == written(fresh, "the")


def test_undo_takes_back_what_the_turn_taught(model):
    reference = session_on(model)
    session = session_on(model)
    for s in (reference, session):
        run(s, "/adapt on")
        run(s, "the cat sat")
    before = weights(session)
    rng_state = session.rng.bit_generator.state
    run(session, TEXT)
    assert not same(weights(session), before)
    run(session, "/undo")
    assert same(weights(session), before)
    assert session.adapting.learnt == len("the cat sat")
    session.rng.bit_generator.state = rng_state
    reference.rng.bit_generator.state = rng_state
    assert written(session, "on the") == written(reference, "on the")
    assert same(weights(session), weights(reference))


def test_regen_learns_the_prompt_again_the_same_way(model):
    session = session_on(model)
    run(session, "/adapt on")
    run(session, TEXT)
    after_first = weights(session)
    run(session, "/regen")
    assert same(weights(session), after_first)
    assert session.adapting.learnt == len(TEXT)


def test_undo_points_of_learning_are_bounded_and_the_oldest_cannot_be_undone(model, monkeypatch):
    session = session_on(model)
    run(session, "/adapt on")
    size = sum(a.nbytes for a in session.adapting.learner.snapshot().values())
    monkeypatch.setattr(adapting, "SNAPSHOT_BYTES", 2 * size)
    for prompt in ("one cat", "two cats", "three cats"):
        run(session, prompt)
    assert [t.learning == adapting.GONE for t in session.turns] == [True, False, False]
    run(session, "/undo")
    run(session, "/undo")
    transcript, state = session.transcript, session.engine.state.copy()
    with pytest.raises(CommandError, match="can no longer be taken back"):
        run(session, "/undo")
    assert session.transcript == transcript and np.array_equal(session.engine.state, state)


def test_a_saved_session_continues_exactly_with_what_it_learnt(model, tmp_path):
    session = session_on(model)
    run(session, "/adapt on")
    run(session, TEXT)
    path = tmp_path / "s.json"
    run(session, f"/session save {path}")
    assert (tmp_path / "s.json.learnt.safetensors").is_file()
    loaded = session_on(model, seed=99)
    assert "continuing exactly" in run(loaded, f"/session load {path}")[0].text
    assert same(weights(loaded), weights(session))
    assert loaded.adapting.learnt == len(TEXT) and loaded.adapting.on
    assert written(loaded, "the dog") == written(session, "the dog")
    assert same(weights(loaded), weights(session))  # both learnt "the dog" the same way
    run(loaded, "/undo")  # "the dog", learnt after the load, can be taken back
    with pytest.raises(CommandError, match="can no longer be taken back"):
        run(loaded, "/undo")  # a loaded session keeps no undo points of its earlier learning


def test_loading_a_session_that_learnt_nothing_drops_what_this_one_learnt(model, tmp_path):
    path = tmp_path / "plain.json"
    run(session_on(model), "the cat")
    plain = session_on(model)
    run(plain, "the cat")
    run(plain, f"/session save {path}")
    session = session_on(model)
    run(session, "/adapt on")
    run(session, TEXT)
    run(session, f"/session load {path}")
    assert session.adapting is None
    assert same(weights(session), weights(session_on(model)))


def test_a_damaged_or_missing_learnt_file_is_one_line_and_nothing_changes(model, tmp_path):
    session = session_on(model)
    run(session, "/adapt on")
    run(session, TEXT)
    path = tmp_path / "s.json"
    run(session, f"/session save {path}")
    learnt_file = tmp_path / "s.json.learnt.safetensors"
    other = session_on(model)
    run(other, "something else")
    before = (other.transcript, weights(other))
    data = learnt_file.read_bytes()
    learnt_file.write_bytes(data[:-8] + b"\0" * 8)
    with pytest.raises(CommandError, match="adapt: .*not the file this session saved"):
        run(other, f"/session load {path}")
    learnt_file.unlink()
    with pytest.raises(CommandError, match="adapt: .*is missing"):
        run(other, f"/session load {path}")
    saved = json.loads(path.read_text())
    saved["adapt"]["file"] = "../../etc/passwd"
    path.write_text(json.dumps(saved))
    with pytest.raises(CommandError, match="adapt: file is not the name of a learnt-state"):
        run(other, f"/session load {path}")
    assert (other.transcript, weights(other))[0] == before[0]
    assert same(weights(other), before[1])


def test_without_torch_a_learning_session_is_refused_in_one_line(model, tmp_path):
    session = session_on(model)
    run(session, "/adapt on")
    run(session, TEXT)
    run(session, f"/session save {tmp_path / 's.json'}")
    bare = Session(model, seed=1)
    with pytest.raises(CommandError, match="needs the training part"):
        run(bare, "/adapt on")
    with pytest.raises(CommandError, match="learnt from its text .* needs torch"):
        run(bare, f"/session load {tmp_path / 's.json'}")
    assert bare.adapting is None and bare.transcript == ""


def test_adapt_save_writes_a_model_whose_card_names_its_parent(model, tmp_path, monkeypatch):
    monkeypatch.setenv("CHARCHAT_MODELS_DIR", str(tmp_path / "models"))
    session = session_on(model)
    with pytest.raises(CommandError, match="nothing learnt yet"):
        run(session, "/adapt save mine")
    run(session, "/adapt on")
    run(session, TEXT)
    assert "312 characters learnt" in run(session, "/adapt save mine")[0].text
    saved = load_model(tmp_path / "models" / "mine.safetensors")
    assert saved.card["adapted_from"]["name"] == "m"
    assert saved.card["adapted_from"]["characters"] == len(TEXT)
    child = session_on(saved)
    assert ("adapted", "from m on 312 chars") in run(child, "/info")[0].rows
    session.engine.reset()
    child.engine.reset()
    assert np.allclose(session.engine.logits(), child.engine.logits(), atol=1e-5)
    with pytest.raises(CommandError, match="exists; choose another name"):
        run(session, "/adapt save mine")
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(CommandError, match="^/adapt save: cannot write .*x.safetensors"):
        run(session, f"/adapt save {tmp_path / 'a-file' / 'x.safetensors'}")
    assert session.adapting.learnt == len(TEXT)


def test_stopping_a_long_paste_keeps_what_was_learnt_of_the_part_read(model):
    session = session_on(model)
    run(session, "/adapt on")
    events = []
    for event in session.turn(TEXT * 4):
        events.append(event)
        if getattr(event, "done", 0) >= 100:
            session.request_stop()
    assert session.adapting.learnt == len(session.transcript) == 100
    assert not any(isinstance(e, Generated) for e in events)


def charchat(*args, input=b""):
    return subprocess.run(
        [sys.executable, "-m", "charchat", *args], input=input, capture_output=True, timeout=120
    )


def test_the_pipe_learns_with_adapt(model):
    script = f"{TEXT}\n/score {LATER}\n".encode()
    plain = charchat("-m", str(model.path), "-n", "5", "--seed", "1", input=script)
    learning = charchat(
        "-m", str(model.path), "-n", "5", "--seed", "1", "--adapt", "--adapt-lr", "0.003", "--adapt-stretch", "50",
        input=script,
    )  # fmt: skip
    assert plain.returncode == learning.returncode == 0, learning.stderr

    def bits(done) -> float:
        return float(done.stdout.decode().split(" bits/char")[0].split()[-1])

    assert bits(learning) < bits(plain) - 1.0
    bad = charchat("-m", str(model.path), "--adapt", "--adapt-stretch", "0", input=b"x\n")
    assert bad.returncode != 0
    assert bad.stderr.decode().strip().splitlines() == [
        "charchat: error: --adapt-stretch: the stretch must be a whole number from 1 to 100000 "
        "(characters), not 0"
    ]


def test_a_long_paste_learns_in_a_real_terminal_and_ctrl_c_stops_it(model, tmp_path):
    child = spawn(model.path, "-n", "10", "--seed", "1", "--speed", "0", "--adapt")
    child.send("/adapt\r")
    child.expect(r"learning · 0 chars learnt")
    child.expect("›")
    paste(child, "the cat sat on the mat. " * 8000)
    child.send("\r")
    child.expect("reading the prompt")
    child.send("\x03")
    child.expect(r"stopped after reading ([\d,]+) of 192,000 characters")
    read = int(child.match.group(1).replace(",", ""))
    child.expect("›")
    child.send("/adapt\r")
    child.expect(r"learning · ([\d,]+) chars learnt")
    assert int(child.match.group(1).replace(",", "")) == read
    child.send("/undo\r")
    child.expect(r"undone")
    child.send("/adapt\r")
    child.expect(r"learning · 0 chars learnt")
    finish(child)


def test_the_status_bar_says_it_is_learning(model):
    from charchat.style import status_text

    session = session_on(model)
    assert "learn" not in status_text(session)
    run(session, "/adapt on")
    run(session, "the cat")
    assert "learning · 7 chars learnt" in status_text(session)
    run(session, "/adapt off")
    assert "learnt from 7 chars (off)" in status_text(session)
    with pytest.raises(CommandError, match="say /adapt on"):
        run(session, "/adapt sideways")
    assert pexpect  # the real-terminal test above uses it


def test_text_the_model_does_not_know_is_not_learnt_and_a_new_model_starts_afresh(model):
    session = session_on(model)
    run(session, "/adapt on")
    events = run(session, "日本語")
    assert session.adapting.learnt == 0
    assert events[0].text == "" and events[0].dropped == ["日", "本", "語"]
    run(session, "the cat")
    assert session.adapting.learnt == len("the cat")
    message = run(session, f"/model {model.path}")[0].text
    assert "adapt off (what was learnt belongs to the other model" in message
    assert session.adapting is None
    assert same(weights(session), weights(session_on(model)))


def test_the_learners_state_is_the_engines_when_nothing_is_shown_per_character(model):
    """With colours off the learner alone reads each stretch and hands the engine its state;
    with them on the engine reads it too: both states and weights agree."""
    alone, shown = session_on(model), session_on(model, surprise_colours=True)
    for s in (alone, shown):
        run(s, "/adapt on")
        run(s, TEXT)
    assert np.allclose(alone.engine.state, shown.engine.state, atol=1e-5)
    pairs = zip(weights(alone), weights(shown), strict=True)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in pairs)
    assert not np.allclose(alone.engine.state, session_on(model).engine.state, atol=1e-3)


def test_reread_into_another_model_says_what_was_learnt_stays_behind(model, tmp_path):
    session = session_on(model)
    run(session, "/adapt on")
    run(session, TEXT)
    run(session, f"/session save {tmp_path / 's.json'}")
    other = load_model(save_model(random_model(seed=8), tmp_path / "other.safetensors"))
    elsewhere = session_on(other)
    message = run(elsewhere, f"/session load {tmp_path / 's.json'} reread")[0].text
    assert "read into this model (what it learnt with /adapt stays with its own model)" in message
    assert elsewhere.adapting is None and elsewhere.transcript == session.transcript
