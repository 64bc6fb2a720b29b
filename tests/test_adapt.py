"""Learning while reading (dynamic evaluation): every stretch is scored before it is learnt
from, the count matches plain scoring, and on a text that repeats, learning wins."""

import subprocess
import sys

import pytest
import torch
from conftest import random_model

from charchat.errors import CharchatError
from charchat.modelfile import save_model
from charchat.train.adapt import AdaptSettings, Learner
from charchat.train.evaluate import Scorer, evaluate_text
from charchat.train.model import CharLSTM

TEXT = "a big cat sat on the mat. " * 40


def ids_of(model, text):
    return model.vocab.encode(text).ids


def test_on_a_text_that_repeats_learning_as_it_reads_wins():
    model = random_model(seed=3)
    result = evaluate_text(model, TEXT, adapt=AdaptSettings(lr=3e-3, stretch=50))
    assert result.adaptive_nats_per_char < result.nats_per_char - 0.5


def test_one_stretch_is_scored_before_anything_is_learnt():
    """With the whole text as one stretch, learning comes after all of it was scored: the
    adaptive figure is the static one."""
    model = random_model(seed=4)
    ids = ids_of(model, TEXT)
    learner = Learner(CharLSTM.from_file(model), torch.device("cpu"), AdaptSettings(stretch=5000))
    learner.add(ids)
    learner.finish()
    scorer = Scorer(CharLSTM.from_file(model), torch.device("cpu"))
    scorer.add(ids)
    assert learner.count == scorer.count == len(ids)
    assert learner.total == pytest.approx(scorer.total, rel=1e-5)
    assert learner.learnt == len(ids)


def test_stretches_fed_in_any_pieces_learn_the_same():
    model = random_model(seed=5)
    ids = ids_of(model, TEXT)
    whole = Learner(CharLSTM.from_file(model), torch.device("cpu"), AdaptSettings(stretch=64))
    whole.add(ids)
    whole.finish()
    pieces = Learner(CharLSTM.from_file(model), torch.device("cpu"), AdaptSettings(stretch=64))
    for start in range(0, len(ids), 37):
        pieces.add(ids[start : start + 37])
    pieces.finish()
    assert pieces.total == pytest.approx(whole.total, rel=1e-5)


def test_bad_settings_are_refused():
    with pytest.raises(CharchatError, match="^--adapt-lr: the learning rate must be"):
        AdaptSettings(lr=0).check()
    with pytest.raises(CharchatError, match="^--adapt-stretch: the stretch must be"):
        AdaptSettings(stretch=0).check()


def test_eval_adapt_names_each_figure(tmp_path):
    path = save_model(random_model(seed=3), tmp_path / "m.safetensors")
    text = tmp_path / "t.txt"
    text.write_text(TEXT)
    run = [sys.executable, "-m", "charchat", "eval", str(path), str(text)]
    done = subprocess.run([*run, "--adapt", "--adapt-lr", "0.003"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    static, adaptive = done.stdout.splitlines()[:2]
    assert static.startswith("static ") and "nats/char" in static and "bits)" in static
    assert adaptive.startswith("adaptive ")
    assert float(adaptive.split()[1]) < float(static.split()[1])
    bad = subprocess.run([*run, "--adapt", "--adapt-lr", "-1"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        "charchat: error: --adapt-lr: the learning rate must be a number above 0, up to 1, not -1"
    ]
