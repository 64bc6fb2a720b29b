"""Is it copying? Verbatim matches of generated text in the training text."""

import hashlib
import io
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_model

from charchat.chat.novelty import TextIndex, find_corpus, novelty_of, suffix_array
from charchat.chat.session import Session
from charchat.errors import CommandError
from charchat.events import Generated, Info
from charchat.modelfile import save_model
from charchat.settings import Settings
from charchat.style import UNDERLINE
from charchat.terminal.render import Renderer
from charchat.vocab import Vocab


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARCHAT_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("seed", range(5))
def test_suffix_array_sorts_every_suffix(seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 3, int(rng.integers(1, 400))).astype(np.uint8)
    data = ids.tobytes()
    assert suffix_array(ids).tolist() == sorted(range(len(ids)), key=lambda i: data[i:])


def test_each_length_is_the_longest_verbatim_stretch_ending_there():
    corpus = "the will to power is the will to life. what is good?\n" * 3 + "the wall"
    vocab = Vocab(sorted(set(corpus)))
    index = TextIndex.build(corpus, vocab)
    written = "a will to power is good? the will to lift"
    found = novelty_of(index, vocab.encode(written).ids, min_chars=8)
    for end, length in enumerate(found.lengths, start=1):
        assert written[end - length : end] in corpus
        assert end - length == 0 or written[end - length - 1 : end] not in corpus
    covered = set()
    for end, length in enumerate(found.lengths, start=1):
        if length >= 8:
            covered |= set(range(end - length, end))
    assert {j for a, b in found.spans for j in range(a, b)} == covered
    assert 0 not in covered and found.longest == len(" will to power is ")
    assert found.copied_share == len(covered) / len(written)


def greedy_text(model, n=120) -> str:
    session = Session(model, Settings(mode="greedy"), length=n)
    return "".join(e.char for e in session.turn("") if isinstance(e, Generated))


def test_the_session_marks_what_it_copies(tmp_path):
    model = random_model()
    corpus = tmp_path / "own.txt"
    corpus.write_text("zzz " + greedy_text(model))  # the model's own greedy writing
    session = Session(model, Settings(mode="greedy"), length=60)
    events = list(session.handle(f"/novelty on {corpus}"))
    assert "novelty on" in events[0].text and "own.txt" in events[0].text
    events = list(session.handle(""))
    copied = [e.copied for e in events if isinstance(e, Generated)]
    assert copied == [False] * 19 + [True] * 41  # from the 20th character of the copy on
    assert session.novelty.turn_longest == 60
    assert any(isinstance(e, Info) and "60 characters" in e.text for e in events)
    list(session.handle("/novelty off"))
    events = list(session.handle(""))
    assert not any(e.copied for e in events if isinstance(e, Generated))


def test_novelty_follows_undo_and_reset(tmp_path):
    model = random_model()
    corpus = tmp_path / "own.txt"
    corpus.write_text(greedy_text(model))
    session = Session(model, Settings(mode="greedy"), length=30)
    list(session.handle(f"/novelty on {corpus}"))
    list(session.handle(""))
    first = session.novelty.matcher.match
    list(session.handle(""))
    list(session.handle("/undo"))
    assert session.novelty.matcher.match == first  # as if the undone turn never happened
    list(session.handle("/reset"))
    assert session.novelty.matcher.match == b""


def test_bad_novelty_commands_leave_the_session_unchanged(tmp_path):
    session = Session(random_model(), length=5)
    for line in ("/novelty", "/novelty maybe", "/novelty 2", "/novelty 30 40"):
        with pytest.raises(CommandError, match="/novelty on"):
            list(session.handle(line))
    with pytest.raises(CommandError, match="turn it on first"):
        list(session.handle("/novelty 30"))
    with pytest.raises(CommandError, match="no such file"):
        list(session.handle(f"/novelty on {tmp_path / 'missing.txt'}"))
    with pytest.raises(CommandError, match="does not name its training text"):
        list(session.handle("/novelty on"))
    assert session.novelty is None and session.transcript == ""


def test_the_corpus_is_found_by_the_name_and_hash_in_the_card(tmp_path, monkeypatch):
    text = "some training text\n"
    card = {"corpus": "train.txt", "corpus_sha256": hashlib.sha256(text.encode()).hexdigest()}
    elsewhere = tmp_path / "corpora"
    elsewhere.mkdir()
    (elsewhere / "train.txt").write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARCHAT_CORPORA", str(elsewhere))
    assert find_corpus(card, None) == elsewhere / "train.txt"
    (elsewhere / "train.txt").write_text("changed")
    with pytest.raises(Exception, match="cannot find train.txt"):
        find_corpus(card, None)


def test_copied_characters_are_underlined_on_a_terminal_only():
    copied, plain = Generated("a", 0.5, 1.0, copied=True), Generated("b", 0.5, 1.0)
    out = io.StringIO()
    terminal = Renderer(out, terminal=True, colour=True)
    for event in (plain, copied):
        terminal.show(event)
    assert UNDERLINE + "a" in out.getvalue() and UNDERLINE not in out.getvalue().split("b")[0]
    out = io.StringIO()
    piped = Renderer(out, io.StringIO(), terminal=False)
    piped.show(copied)
    assert out.getvalue() == "a"


def test_novelty_command_reports_each_temperature(tmp_path):
    model = random_model()
    path = save_model(model, tmp_path / "m.safetensors")
    corpus = tmp_path / "own.txt"
    corpus.write_text(greedy_text(model, 300))
    args = [str(path), str(corpus), "--temp", "0.05", "--temp", "1.5", "-n", "200", "--min", "10"]
    done = subprocess.run(
        [sys.executable, "-m", "charchat", "novelty", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "CHARCHAT_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert rows[0].split()[:3] == ["T", "chars", "longest"] and len(rows) == 5
    cold, hot = rows[1].split(), rows[2].split()
    assert cold[0] == "0.05" and int(cold[2]) >= 100  # near-greedy writing copies its source
    assert int(hot[2].replace(",", "")) < int(cold[2].replace(",", ""))
    bad = subprocess.run(
        [sys.executable, "-m", "charchat", "novelty", str(path), str(corpus), "--min", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "--min" in bad.stderr


def test_a_long_text_is_indexed_apart_the_same_and_a_stop_ends_it_at_once():
    import itertools

    from charchat.chat.novelty import _suffix_array_apart, suffix_array
    from charchat.errors import Stopped

    ids = np.random.default_rng(0).integers(0, 4, 5000).astype(np.uint8)
    np.testing.assert_array_equal(_suffix_array_apart(ids, lambda: False), suffix_array(ids))
    asked = itertools.count()
    with pytest.raises(Stopped, match="stopped while indexing"):
        _suffix_array_apart(np.zeros(3_000_000, dtype=np.uint8), lambda: next(asked) >= 2)
