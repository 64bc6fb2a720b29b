import numpy as np
import pytest
from conftest import random_model

from charchat.chat.engine import Engine
from charchat.chat.sampling import sample
from charchat.chat.session import Session
from charchat.errors import CharchatError, CommandError
from charchat.events import Generated, Probs, PromptRead, Quit, Score, SweepLine, TurnDone
from charchat.settings import Settings


def consume(events, stop_after=None):
    out = []
    for event in events:
        out.append(event)
        if stop_after is not None and sum(isinstance(e, Generated) for e in out) >= stop_after:
            break
    if hasattr(events, "close"):
        events.close()
    return out


def fresh_state_for(session):
    engine = Engine(session.model)
    engine.feed_many(session.model.vocab.encode_known(session.transcript))
    return engine


def assert_invariant(session):
    expected = fresh_state_for(session)
    np.testing.assert_allclose(session.engine.state, expected.state, rtol=1e-4, atol=1e-5)


@pytest.fixture
def session():
    return Session(random_model(), Settings(temperature=1.0), length=30, seed=7)


def test_turn_feeds_the_prompt_then_generates(session):
    events = consume(session.handle("the will"))
    assert isinstance(events[0], PromptRead) and events[0].text == "the will"
    generated = "".join(e.char for e in events if isinstance(e, Generated))
    assert len(generated) == 30 and isinstance(events[-1], TurnDone)
    assert session.transcript == "the will" + generated
    assert_invariant(session)


def test_invariant_through_seeds_commands_undo_reset_and_interruptions(session):
    consume(session.handle("the will to"))
    consume(session.handle("/temp 0.3"))
    consume(session.handle(""))  # continue
    consume(session.handle("power is"), stop_after=5)  # Ctrl+C after 5 characters shown
    assert_invariant(session)
    before_undo = session.transcript
    consume(session.handle("more text"), stop_after=1)
    consume(session.handle("/undo"))
    assert session.transcript == before_undo
    assert_invariant(session)
    consume(session.handle("/reset"))
    assert session.transcript == ""
    np.testing.assert_array_equal(session.engine.state, Engine(session.model).state)
    consume(session.handle("again"), stop_after=0)
    assert session.transcript == "again"
    assert_invariant(session)


def test_interrupt_keeps_exactly_the_shown_characters(session):
    events = consume(session.handle("ab"), stop_after=3)
    shown = "".join(e.char for e in events if isinstance(e, Generated))
    assert session.transcript == "ab" + shown and len(shown) == 3
    assert_invariant(session)


def test_same_random_seed_same_text():
    a = Session(random_model(), length=50, seed=3)
    b = Session(random_model(), length=50, seed=3)
    c = Session(random_model(), length=50, seed=4)
    text = lambda s: "".join(e.char for e in consume(s.handle("the ")) if isinstance(e, Generated))  # noqa: E731
    assert text(a) == text(b) != text(c)  # the seed is what makes them equal


@pytest.mark.parametrize(
    "line, message",
    [
        ("/temp abc", "temperature"),
        ("/temp -1", "from 0"),
        ("/temp 1e9", "100"),
        ("/temp nan", "temperature"),
        ("/temp inf", "temperature"),
        ("/mode fancy", "greedy"),
        ("/topk 0", "top-k must be a whole number from 1 to 10000, not 0"),
        ("/topp 0", "above 0"),
        ("/topp 1.5", "top-p must be a number above 0, up to 1, not 1.5"),
        ("/len 0", "length"),
        ("/tmep 1", "did you mean /temp"),
        ("/undo", "nothing to undo"),
        ("/reset now", "no argument"),
        ("/save", "file name"),
    ],
)
def test_bad_commands_change_nothing(session, line, message):
    consume(session.handle("x"), stop_after=2)
    if line == "/undo":
        session.turns.clear()
    before = (session.settings, session.length, session.transcript, session.engine.snapshot())
    with pytest.raises(CommandError, match=message):
        consume(session.handle(line))
    assert (session.settings, session.length, session.transcript) == before[:3]
    np.testing.assert_array_equal(session.engine.state, before[3])


def test_commands_apply(session, tmp_path):
    consume(session.handle("/temp 0"))
    assert session.settings.temperature == 0 and session.settings.is_greedy
    consume(session.handle("/mode top-k"))
    consume(session.handle("/topk 3"))
    consume(session.handle("/topp 0.5"))
    consume(session.handle("/len 12"))
    consume(session.handle("/minp 0.2"))
    assert session.settings.min_p == 0.2 and "top-k 3" in session.describe_settings()
    assert (
        session.settings.mode,
        session.settings.top_k,
        session.settings.top_p,
        session.length,
    ) == ("top-k", 3, 0.5, 12)
    assert isinstance(consume(session.handle("/quit"))[0], Quit)
    assert isinstance(consume(session.handle("/exit"))[0], Quit)
    consume(session.handle("hello"))
    consume(session.handle(f"/save {tmp_path / 't.txt'}"))
    assert (tmp_path / "t.txt").read_text() == session.transcript
    with pytest.raises(CommandError, match="exists"):
        consume(session.handle(f"/save {tmp_path / 't.txt'}"))
    help_text = consume(session.handle("/help"))[0].text
    assert "/temp" in help_text and "/sweep" in help_text
    assert "temperature" in consume(session.handle("/help temp"))[0].text


def test_model_switch_restarts_and_bad_model_changes_nothing(session, tmp_path):
    from charchat.modelfile import save_model

    consume(session.handle("abc"))
    with pytest.raises(CharchatError, match="no such model file"):
        consume(session.handle(f"/model {tmp_path / 'missing.safetensors'}"))
    assert session.transcript.startswith("abc")
    path = save_model(random_model(layers=1, seed=9), tmp_path / "other.safetensors")
    consume(session.handle(f"/model {path}"))
    assert session.transcript == "" and session.model.config.layers == 1


def test_paste_with_newlines_is_a_prompt_not_a_command(session):
    events = consume(session.handle("/temp 2\nthe will"))
    assert isinstance(events[0], PromptRead) and session.settings.temperature == 1.0


def test_double_slash_escapes_a_prompt():
    session = Session(random_model(chars="ab /"), length=3, seed=1)
    events = consume(session.handle("//a b"))
    assert isinstance(events[0], PromptRead) and events[0].text == "/a b"
    assert session.transcript.startswith("/a b")


def test_unknown_prompt_characters_are_reported(session):
    events = consume(session.handle("é😀a"))
    assert events[0].mapped == {"é": "e"} and events[0].dropped == ["😀"]


# ------------------------------------------------------------ seeing the idea


def rng_state(session):
    return session.rng.bit_generator.state


def test_probs_sum_to_one_and_change_nothing(session):
    consume(session.handle("the "), stop_after=3)
    before = (session.transcript, session.engine.snapshot(), rng_state(session))
    full = session.probs(len(session.model.vocab))
    assert isinstance(full, Probs)
    assert sum(r.p_temp for r in full.rows) == pytest.approx(1.0, abs=1e-6)
    assert sum(r.p_one for r in full.rows) == pytest.approx(1.0, abs=1e-6)
    assert (session.transcript, rng_state(session)) == (before[0], before[2])
    np.testing.assert_array_equal(session.engine.state, before[1])


def test_entropy_matches_a_hand_computation(session):
    consume(session.handle("/temp 0.5"))
    logits = session.engine.logits().astype(np.float64)
    z = logits / 0.5
    p = np.exp(z - z.max())
    p /= p.sum()
    by_hand = -(p * np.log2(p)).sum()
    assert session.probs().entropy_temp == pytest.approx(by_hand, rel=1e-9)


def test_sweep_is_reproducible_changes_nothing_and_its_1_0_line_is_plain_sampling(session):
    consume(session.handle("the will"), stop_after=2)
    before = (session.transcript, session.engine.snapshot(), rng_state(session))
    sweep = session.sweep([0.2, 1.0])
    assert all(isinstance(line, SweepLine) for line in sweep)
    assert [line.temperature for line in sweep] == [0.2, 1.0]
    assert session.sweep([0.2, 1.0]) == sweep
    assert (session.transcript, rng_state(session)) == (before[0], before[2])
    np.testing.assert_array_equal(session.engine.state, before[1])
    # the 1.0 line is exactly what plain sampling at T=1 produces next from this state
    consume(session.handle("/temp 1"))
    plain = "".join(e.char for e in consume(session.handle("")) if isinstance(e, Generated))
    assert sweep[1].text == plain[: len(sweep[1].text)]


def test_score_changes_nothing_and_matches_eval_maths(session):
    consume(session.handle("the "), stop_after=0)
    before = session.engine.snapshot()
    score = session.score("will")
    assert isinstance(score, Score) and len(score.bits) == 4
    np.testing.assert_array_equal(session.engine.state, before)
    engine = Engine(session.model)
    engine.feed_many(session.model.vocab.encode_known("the "))
    bits = []
    for ch in "will":
        logits = engine.logits().astype(np.float64)
        lp = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        i = session.model.vocab.index[ch]
        bits.append(-lp[i] / np.log(2))
        engine.feed(i)
    assert score.mean_bits == pytest.approx(np.mean(bits), rel=1e-5)


def test_colour_by_surprise_reports_the_prompt_surprisal(session):
    consume(session.handle("/color on"))
    events = consume(session.handle("the"), stop_after=0)
    engine = Engine(session.model)
    expected = []
    for ch in "the":
        logits = engine.logits().astype(np.float64)
        lp = logits - logits.max() - np.log(np.exp(logits - logits.max()).sum())
        expected.append(-lp[session.model.vocab.index[ch]] / np.log(2))
        engine.feed(session.model.vocab.index[ch])
    assert events[0].surprisal == pytest.approx(expected, rel=1e-5)
    assert_invariant(session)


def test_generated_probability_is_the_models(session):
    engine = Engine(session.model)
    logits = engine.logits().astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    first = consume(session.handle(""), stop_after=1)[0]
    assert first.probability == pytest.approx(p[session.model.vocab.index[first.char]], rel=1e-5)


def test_mid_stream_temperature_change_applies_to_the_next_character():
    s = Session(random_model(), Settings(temperature=1.0), length=20, seed=1)
    events = s.handle("a")
    out = []
    for event in events:
        out.append(event)
        if isinstance(event, Generated):
            s.settings = s.settings.with_(temperature=0)
    greedy_chars = [e.char for e in out if isinstance(e, Generated)][1:]
    # from the second character on, greedy: each is the argmax from its state
    engine = Engine(s.model)
    engine.feed_many(
        s.model.vocab.encode_known("a" + [e.char for e in out if isinstance(e, Generated)][0])
    )
    for ch in greedy_chars:
        assert s.model.vocab.chars[sample(engine.logits(), Settings(temperature=0), None)] == ch
        engine.feed(s.model.vocab.index[ch])
    assert isinstance(out[-1], TurnDone)


def test_transcript_appends_truncates_and_counts():
    from charchat.chat.transcript import Transcript

    t = Transcript()
    for ch in "the will to power":
        t.append(ch)
    assert len(t) == 17 and t.text() == "the will to power"
    t.append(" is")
    t.truncate(8)
    assert (len(t), t.text()) == (8, "the will")
    t.append("!")
    assert (len(t), t.text()) == (9, "the will!")
