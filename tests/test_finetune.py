"""Fine-tuning (`charchat train TEXT --from MODEL`): the vocabulary grows without touching
what the parent knew, the planner's rule, exact resume, the lineage on the card."""

import math
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TEXT, random_model

from charchat.chat.engine import Engine
from charchat.errors import CharchatError
from charchat.events import StepDone
from charchat.modelfile import ModelConfig, load_model, save_model
from charchat.train.finetune import (
    Parent,
    child_config,
    extended_tensors,
    merged_vocab,
    read_with,
)
from charchat.train.loop import Trainer
from charchat.train.model import CharLSTM
from charchat.train.plan import FINE_TUNE_LR, FINE_TUNE_PATIENCE, plan_fine_tuning, plan_for
from charchat.train.recipe import TrainConfig, TrainingInterrupted
from charchat.train.textfiles import EncodedText
from charchat.vocab import Vocab

FAST = TrainConfig(
    seq_len=16, batch_size=4, lr=1e-2, epochs=3, eval_every=10, warmup_steps=5, sample_length=20
)
GREEK = "η θέληση για δύναμη είναι η θέληση για ζωή. τι είναι καλό;\n" * 12


def parent_of(model, tmp_path) -> Parent:
    path = save_model(model, tmp_path / "parent.safetensors")
    return Parent(load_model(path), path, "0" * 64)


def test_new_characters_join_and_every_old_row_stays_exactly():
    parent = random_model(chars="abc .\n", seed=3)
    vocab = merged_vocab(parent.vocab, Vocab(sorted(set("cab?!é"))))
    assert vocab.chars == sorted(set("abc .\n?!é"))  # old and new, by code point
    grown = extended_tensors(parent, vocab, seed=0)
    for char, old in parent.vocab.index.items():
        new = vocab.index[char]
        for name in ("embedding.weight", "head.weight", "head.bias"):
            assert np.array_equal(grown[name][new], parent.tensors[name][old])
    for name in ("lstm.weight_hh_l0", "initial_h"):
        assert np.array_equal(grown[name], parent.tensors[name])
    added = [vocab.index[c] for c in "?!é"]
    bias = parent.tensors["head.bias"]
    assert np.all(grown["head.bias"][added] == bias.min())  # rare at first
    embeddings = grown["embedding.weight"][added]
    assert np.all(np.isfinite(embeddings)) and len({row.tobytes() for row in embeddings}) == 3
    assert 0.5 < embeddings.std() / parent.tensors["embedding.weight"].std() < 2


def test_the_text_is_renumbered_for_the_merged_vocabulary():
    encoded = EncodedText.from_text("cab?c", "t.txt")
    vocab = merged_vocab(Vocab(list("abcz")), encoded.vocab)
    again = read_with(encoded, vocab)
    assert again.vocab.decode(again.ids.tolist()) == "cab?c"
    assert again.sha256 == encoded.sha256 and again.ids.dtype == np.uint8


def test_new_characters_are_learnt(tmp_path):
    parent = random_model(chars=TEXT, seed=1, scale=0.3)
    text = TEXT.replace("power", "pöwer!")
    encoded = EncodedText.from_text(text, "t.txt")
    encoded = read_with(encoded, merged_vocab(parent.vocab, encoded.vocab))
    cfg = TrainConfig(**{**FAST.__dict__, "epochs": 20})
    trainer = Trainer(encoded, "t.txt", tmp_path / "c.safetensors", parent.config, cfg)
    start, lineage = parent_of(parent, tmp_path).start_for(trainer.corpus.vocab, 0)
    trainer.start_from(start, lineage)
    assert lineage["added"] == ["!", "ö"]
    before = CharLSTM.from_file(trainer.model_file())
    child = CharLSTM.from_file(trainer.run())
    vocab = trainer.corpus.vocab
    ids = torch.tensor([vocab.encode_known(text[:400])])

    def new_char_nats(module):
        module.eval()
        with torch.no_grad():
            logits, _ = module(ids[:, :-1])
        nats = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:], reduction="none")
        wanted = torch.isin(ids[0, 1:], torch.tensor([vocab.index["ö"], vocab.index["!"]]))
        return nats[wanted].mean().item()

    assert new_char_nats(child) < new_char_nats(before) - 2


def test_a_flag_that_changes_the_shape_is_refused_and_regularisation_may_change():
    parent = ModelConfig(layers=2, hidden=16, embedding=8, dropout=0.4, weight_drop=0.3)
    with pytest.raises(CharchatError, match="--hidden 32 contradicts the parent model's hidden"):
        child_config(parent, {"hidden": 32}, False)
    with pytest.raises(CharchatError, match="--preset"):
        child_config(parent, {}, True)
    same = child_config(parent, {"hidden": 16, "layers": 2, "dropout": 0.1}, False)
    assert same == ModelConfig(layers=2, hidden=16, embedding=8, dropout=0.1, weight_drop=0.3)


def test_the_fine_tuning_rule():
    parent = ModelConfig(layers=2, hidden=512, embedding=64, dropout=0.4, weight_drop=0.3)
    small = plan_fine_tuning(90, 20_000, 12_000, parent, "bf16", 2)
    large = plan_fine_tuning(90, 1_000_000, 12_000, parent, "bf16", 2)
    assert small.model == parent  # read 80 times: the parent's own regularisation
    assert large.model == replace(parent, dropout=0.052, weight_drop=0.042)  # about once: little
    for plan in (small, large):
        assert plan.chars_per_second == 12_000
        assert plan.train["lr"] == FINE_TUNE_LR and plan.train["patience"] == FINE_TUNE_PATIENCE
        assert plan.line().startswith("plan: fine-tune the 2x512 LSTM")
    assert small.passes > 40 * large.passes  # the small text is read many times over...
    assert small.train["eval_every"] == large.train["eval_every"]  # ...and scored as often
    assert small.train["val_fraction"] == 0.1 and large.train["val_fraction"] == 0.025
    scratch = plan_for(90, 20_000, {"1x512": 28_000, "2x512": 8_500})
    assert scratch.train["lr"] > FINE_TUNE_LR and "patience" not in scratch.train


def test_validation_that_stops_improving_stops_the_run_and_the_card_says_why(tmp_path, monkeypatch):
    scores = iter([2.0, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0, 2.1])
    monkeypatch.setattr(Trainer, "_validation_nats", lambda self, module: next(scores))
    cfg = TrainConfig(**{**FAST.__dict__, "epochs": 30, "patience": 3})
    trainer = Trainer(TEXT, "t.txt", tmp_path / "m.safetensors", random_model().config, cfg)
    trainer.run()
    card = load_model(tmp_path / "m.safetensors").card
    assert trainer.progress.step == 50 < trainer.progress.schedule_steps
    assert card["kept"].startswith("the weights of step 20 of 50: the best validation round")
    assert "stopped after 3 rounds without a better one" in card["kept"]


def fine_tune(tmp_path, parent, stop_after=None, resume=False):
    losses, box = [], {}

    def on_event(event):
        if isinstance(event, StepDone):
            losses.append(event.loss)
            if event.step == stop_after:
                box["t"].request_stop()

    encoded = EncodedText.from_text(GREEK, "greek.txt")
    encoded = read_with(encoded, merged_vocab(parent.model.vocab, encoded.vocab))
    config = child_config(parent.model.config, {"dropout": 0.1}, False)
    cfg = TrainConfig(**{**FAST.__dict__, "epochs": 15})
    trainer = Trainer(encoded, "greek.txt", tmp_path / "c.safetensors", config, cfg, on_event)
    trainer.start_from(*parent.start_for(trainer.corpus.vocab, cfg.seed))
    box["t"] = trainer
    return trainer.run(resume=resume), losses


def test_a_fine_tuning_run_resumed_after_an_interruption_matches_one_that_was_not(tmp_path):
    parent = parent_of(random_model(), tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    model, straight = fine_tune(tmp_path / "a", parent)
    with pytest.raises(TrainingInterrupted):
        fine_tune(tmp_path / "b", parent, stop_after=7)
    resumed, rest = fine_tune(tmp_path / "b", parent, resume=True)
    assert straight[:7] + rest == straight  # exact
    for name, tensor in model.tensors.items():
        assert np.array_equal(tensor, resumed.tensors[name])
    other = Parent(parent.model, parent.path, "1" * 64)
    with pytest.raises(CharchatError, match="different --from model"):
        fine_tune(tmp_path / "b", other, resume=True)


def test_a_greek_text_fine_tuned_from_a_latin_model_writes_greek(tmp_path):
    parent = parent_of(random_model(), tmp_path)
    model, _ = fine_tune(tmp_path, parent)
    greek = set(GREEK) - set(" .;\n")
    assert greek <= set(model.vocab.chars) and set(parent.model.vocab.chars) <= set(
        model.vocab.chars
    )
    engine = Engine(load_model(tmp_path / "c.safetensors"))
    rng = np.random.default_rng(0)
    engine.feed_many([model.vocab.index[c] for c in "η θέ"])
    written = []
    for _ in range(200):
        logits = engine.logits()
        probs = np.exp(logits - logits.max())
        index = int(rng.choice(len(probs), p=probs / probs.sum()))
        written.append(model.vocab.chars[index])
        engine.feed(index)
    letters = [c for c in written if c.isalpha()]
    assert sum(c in greek for c in letters) > 0.9 * len(letters)


def charchat(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "charchat", *args],
        capture_output=True,
        timeout=300,
        input=b"",
        env={**os.environ, **(env or {})},
    )


def test_train_from_a_model_on_the_command_line_and_the_lineage_shown(tmp_path):
    (tmp_path / "models").mkdir()
    parent = save_model(random_model(), tmp_path / "models" / "elder.safetensors")
    env = {"CHARCHAT_MODELS_DIR": str(tmp_path / "models"), "COLUMNS": "200"}
    corpus = tmp_path / "greek.txt"
    corpus.write_text(GREEK, encoding="utf-8")
    fast = ["--seq-len", "16", "--batch-size", "4", "--epochs", "1", "--threads", "1"]
    args = ["train", str(corpus), "--from", "elder", "--name", "younger", *fast]
    result = charchat(*args, "--precision", "fp32", env=env)
    assert result.returncode == 0, result.stderr
    card = load_model(tmp_path / "models" / "younger.safetensors").card
    lineage = card["fine_tuned_from"]
    assert lineage["name"] == "elder" and lineage["architecture"] == "2x16 LSTM"
    from charchat.files import file_sha256

    assert lineage["sha256"] == file_sha256(parent) and "θ" in lineage["added"]
    assert card["train_config"]["lr"] == FINE_TUNE_LR  # the fine-tuning defaults
    listing = charchat("models", env=env)
    assert b"fine-tuned from elder on greek.txt" in listing.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "charchat", "-m", "younger"],
        input=b"/info\n",
        capture_output=True,
        timeout=120,
        env={**os.environ, **env},
    )
    out = shown.stdout + shown.stderr
    assert b"fine-tuned" in out and b"from elder (2x16 LSTM" in out and b"on greek.txt" in out
    for bad, message in (
        (["--from", "elder", "--hidden", "32"], b"contradicts the parent model's hidden"),
        (["--from", "nosuch"], b"no model named 'nosuch'"),
        (["--from", "elder", "--preset", "small"], b"--preset"),
    ):
        result = charchat("train", str(corpus), "-o", str(tmp_path / "x"), *bad, env=env)
        assert result.returncode != 0 and b"Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert math.isfinite(card["best_val_bits_per_char"])
