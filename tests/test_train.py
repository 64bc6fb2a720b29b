import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TEXT, random_model

from charchat.chat.engine import Engine
from charchat.chat.sampling import log_softmax, sample
from charchat.errors import CharchatError
from charchat.events import RolledBack, Samples, StepDone, StepSkipped
from charchat.modelfile import ModelConfig, load_model
from charchat.settings import Settings
from charchat.train.checkpoint import checkpoint_path
from charchat.train.evaluate import evaluate_text, parallel_nats_per_char, sequential_nats
from charchat.train.loop import Trainer
from charchat.train.model import CharLSTM
from charchat.train.progress_samples import temperature_samples
from charchat.train.recipe import TrainConfig, TrainingInterrupted
from charchat.train.run import make_trainer

TINY = ModelConfig(layers=2, hidden=16, embedding=8, dropout=0.1)
FAST = TrainConfig(
    seq_len=16, batch_size=4, lr=1e-2, epochs=3, eval_every=10, warmup_steps=5, sample_length=20
)


def run(tmp_path, text=TEXT, config=TINY, cfg=FAST, stop_after=None, resume=False, name="m"):
    losses = []
    trainer_box = {}

    def on_event(event):
        if isinstance(event, StepDone):
            losses.append(event.loss)
            if stop_after is not None and event.step == stop_after:
                trainer_box["t"].request_stop()

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text)
    out = tmp_path / f"{name}.safetensors"
    if resume:
        trainer = make_trainer(corpus, out, None, cfg, resume=True, on_event=on_event)
    else:
        trainer = Trainer(text, "corpus.txt", out, config, cfg, on_event)
    trainer_box["t"] = trainer
    return trainer.run(resume=resume), losses


def test_loss_at_init_is_about_ln_vocab():
    torch.manual_seed(0)
    module = CharLSTM(40, TINY)
    ids = torch.randint(0, 40, (4, 50))
    logits, _ = module(ids)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 40), ids.reshape(-1)).item()
    assert abs(loss - math.log(40)) < 0.15


def test_tiny_model_overfits_a_short_text(tmp_path):
    text = "abcabdabe " * 60
    cfg = TrainConfig(
        seq_len=16,
        batch_size=4,
        lr=2e-2,
        epochs=40,
        eval_every=1000,
        val_fraction=0.0,
        warmup_steps=5,
    )
    model, losses = run(tmp_path, text, ModelConfig(1, 32, 8, 0.0), cfg)
    assert losses[0] > 1.5
    assert np.mean(losses[-5:]) < 0.6  # the only uncertainty left: which of d/e/c follows "ab"


def test_weight_drop_masks_recurrent_weights_in_training_only():
    torch.manual_seed(2)
    config = ModelConfig(2, 16, 8, dropout=0.0, weight_drop=0.5)
    module = CharLSTM(20, config)
    plain = CharLSTM(20, ModelConfig(2, 16, 8, dropout=0.0))
    plain.load_state_dict(module.state_dict())
    ids = torch.randint(0, 20, (2, 12))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    first, _ = module.train()(ids)
    second, _ = module(ids)
    assert not torch.allclose(first, second)  # a fresh mask per forward pass
    assert not torch.allclose(first, plain.train()(ids)[0])
    first.sum().backward()
    assert module.lstm.weight_hh_l1.grad.abs().sum() > 0  # gradients reach the real weights
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())
    assert torch.equal(module.eval()(ids)[0], plain.eval()(ids)[0])  # inference: no mask


def test_input_dropout_in_training_only():
    torch.manual_seed(3)
    module = CharLSTM(20, ModelConfig(1, 16, 8, dropout=0.0, input_dropout=0.5))
    plain = CharLSTM(20, ModelConfig(1, 16, 8, dropout=0.0))
    plain.load_state_dict(module.state_dict())
    ids = torch.randint(0, 20, (2, 12))
    assert not torch.allclose(module.train()(ids)[0], plain.train()(ids)[0])
    assert torch.equal(module.eval()(ids)[0], plain.eval()(ids)[0])


def test_locked_dropout_keeps_one_mask_for_every_step_of_a_window():
    torch.manual_seed(4)
    config = ModelConfig(2, 16, 8, dropout=0.5, input_dropout=0.5, locked_dropout=True)
    module = CharLSTM(20, config).train()
    x = torch.ones(3, 10, 16)
    dropped = module._dropout(x, 0.5)
    assert torch.equal(dropped, dropped[:, :1].expand_as(dropped))  # the same at every step
    assert (dropped == 0).any() and (dropped == 2).any()
    assert not torch.equal(dropped[0], dropped[1])  # each stream its own mask
    step = CharLSTM(20, replace(config, locked_dropout=False)).train()
    stepwise = step._dropout(x, 0.5)
    assert not torch.equal(stepwise, stepwise[:, :1].expand_as(stepwise))


def test_layer_by_layer_run_is_the_stacked_lstm_without_dropout():
    torch.manual_seed(5)
    config = ModelConfig(3, 16, 8, dropout=0.0, weight_drop=0.0, locked_dropout=True)
    module = CharLSTM(20, config)
    stacked = CharLSTM(20, replace(config, locked_dropout=False))
    stacked.load_state_dict(module.state_dict())
    ids = torch.randint(0, 20, (2, 12))
    state = (torch.randn(3, 2, 16), torch.randn(3, 2, 16))
    logits, (h, c) = module.train()(ids, state)
    expected, (h2, c2) = stacked.eval()(ids, state)
    assert torch.allclose(logits, expected, atol=1e-5)
    assert torch.allclose(h, h2, atol=1e-5) and torch.allclose(c, c2, atol=1e-5)
    logits.sum().backward()
    assert module.lstm.weight_ih_l2.grad.abs().sum() > 0
    assert list(module.state_dict()) == list(stacked.state_dict())  # the same file layout


def test_locked_dropout_in_training_only():
    torch.manual_seed(6)
    config = ModelConfig(2, 16, 8, dropout=0.5, weight_drop=0.3, locked_dropout=True)
    module = CharLSTM(20, config)
    plain = CharLSTM(20, ModelConfig(2, 16, 8, dropout=0.0))
    plain.load_state_dict(module.state_dict())
    ids = torch.randint(0, 20, (2, 12))
    assert not torch.allclose(module.train()(ids)[0], plain.eval()(ids)[0])
    assert torch.equal(module.eval()(ids)[0], plain.eval()(ids)[0])


AVERAGING = replace(FAST, average_from=0.5)


def test_averaged_weights_are_the_mean_from_the_start_fraction_on(tmp_path):
    seen = []
    corpus_text = TEXT
    trainer = Trainer(corpus_text, "c.txt", tmp_path / "m.safetensors", TINY, AVERAGING)

    def on_event(event):
        if isinstance(event, StepDone):
            seen.append({k: v.clone() for k, v in trainer.module.state_dict().items()})

    trainer.on_event = on_event
    trainer.run()
    start = math.ceil(0.5 * trainer.progress.schedule_steps)
    tail = seen[start - 1 :]  # seen[i] holds the weights after step i + 1
    assert int(trainer.average.n_averaged) == len(tail) > 1
    for name, mean in trainer.average.module.state_dict().items():
        expected = torch.stack([w[name] for w in tail]).mean(dim=0)
        assert torch.allclose(mean, expected, atol=1e-6), name
    rows = trainer.progress.history
    assert all(len(row) == 4 for row in rows)
    assert rows[0][3] is None and rows[-1][3] is not None


def test_the_better_of_raw_and_averaged_weights_is_saved(tmp_path):
    trainer = Trainer(TEXT, "c.txt", tmp_path / "m.safetensors", TINY, AVERAGING)
    trainer.run()
    rows = trainer.progress.history
    best_raw = min(row[2] for row in rows)
    best_avg = min(row[3] for row in rows if row[3] is not None)
    card = load_model(tmp_path / "m.safetensors").card
    assert card["best_val_bits_per_char"] == pytest.approx(min(best_raw, best_avg), abs=2e-5)
    assert (card["averaged_over_steps"] > 0) == (best_avg < best_raw)
    saved = evaluate_text(load_model(tmp_path / "m.safetensors"), TEXT[-len(TEXT) // 10 :])
    assert saved.bits_per_char == pytest.approx(card["best_val_bits_per_char"], abs=0.05)


def test_with_nothing_held_out_averaging_saves_the_mean(tmp_path):
    cfg = replace(AVERAGING, val_fraction=0.0)
    trainer = Trainer(TEXT, "c.txt", tmp_path / "m.safetensors", TINY, cfg)
    trainer.run()
    saved = load_model(tmp_path / "m.safetensors")
    assert saved.card["averaged_over_steps"] > 0
    mean = trainer.average.module.state_dict()
    weights = [k for k in saved.tensors if k not in ("initial_h", "initial_c")]
    assert all(np.array_equal(saved.tensors[k], mean[k].numpy()) for k in weights)
    # the mean's starting state is then fitted to where texts start, like any model's
    assert not np.array_equal(saved.tensors["initial_h"], mean["initial_h"].numpy())
    assert "fitted to where texts start" in saved.card["initial_state"]


def test_resume_with_averaging_continues_bit_for_bit(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, straight = run(tmp_path / "a", cfg=AVERAGING)
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "b", cfg=AVERAGING, stop_after=16)
    _, rest = run(tmp_path / "b", cfg=AVERAGING, resume=True)
    assert straight[:16] + rest == straight
    a = load_model(tmp_path / "a" / "m.safetensors")
    b = load_model(tmp_path / "b" / "m.safetensors")

    def scores(card):  # each row without its wall-clock seconds
        return [[step, *vals] for step, _, *vals in card["val_curve"]]

    assert scores(a.card) == scores(b.card)
    assert all(np.array_equal(a.tensors[k], b.tensors[k]) for k in a.tensors)


def test_a_time_budget_alone_is_not_capped_by_epochs():
    assert TrainConfig(minutes=5).schedule_epochs > 1000
    assert TrainConfig().schedule_epochs == 20
    assert TrainConfig(minutes=5, epochs=3).schedule_epochs == 3


def test_threads_option_sets_torch_threads(tmp_path):
    before = torch.get_num_threads()
    try:
        Trainer(TEXT, "c.txt", tmp_path / "m.safetensors", TINY, replace(FAST, threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_training_writes_a_loadable_model_with_a_card(tmp_path):
    model, losses = run(tmp_path)
    saved = load_model(tmp_path / "m.safetensors")
    card = saved.card
    assert card["corpus"] == "corpus.txt" and len(card["corpus_sha256"]) == 64
    assert card["steps"] > 0 and card["chars_trained_on"] == card["steps"] * 64
    train_curve = card["train_curve"]  # mean training loss between validations
    assert [row[0] for row in train_curve] == [row[0] for row in card["val_curve"]]
    assert train_curve[-1][2] < train_curve[0][2]
    assert card["best_val_bits_per_char"] < math.log2(len(saved.vocab))
    for key in ("train_seconds", "device", "torch_version", "charchat_version", "date"):
        assert key in card
    assert losses[-1] < losses[0]


def test_resume_continues_bit_for_bit(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, straight = run(tmp_path / "a")
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "b", stop_after=13)
    assert checkpoint_path(tmp_path / "b" / "m.safetensors").is_file()
    _, rest = run(tmp_path / "b", resume=True)
    first = straight[:13]
    assert len(straight) == 13 + len(rest)
    assert first + rest == straight  # exact float equality, not approximate


def test_resume_test_would_catch_a_lost_rng_state(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, straight = run(tmp_path / "a")
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "b", stop_after=13)
    monkeypatch.setattr(
        torch, "set_rng_state", lambda state: None
    )  # the control: forget dropout RNG
    torch.manual_seed(999)
    _, rest = run(tmp_path / "b", resume=True)
    assert straight[13:] != rest


def test_resume_with_other_corpus_or_architecture_is_refused(tmp_path):
    with pytest.raises(TrainingInterrupted):
        run(tmp_path, stop_after=3)
    corpus = tmp_path / "corpus.txt"
    out = tmp_path / "m.safetensors"
    with pytest.raises(CharchatError, match="different architecture"):
        make_trainer(corpus, out, ModelConfig(1, 16, 8, 0.1), FAST, resume=True)
    corpus.write_text(TEXT.upper())
    with pytest.raises(CharchatError, match="different corpus"):
        make_trainer(corpus, out, None, FAST, resume=True).run(resume=True)


def test_nonfinite_steps_are_skipped_then_rolled_back(tmp_path, monkeypatch):
    events = []
    calls = {"n": 0}
    real = torch.nn.functional.cross_entropy

    def flaky(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if 5 <= calls["n"] <= 8 else loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", flaky)
    cfg = TrainConfig(
        seq_len=16, batch_size=4, epochs=2, eval_every=1000, val_fraction=0.0, warmup_steps=2
    )
    trainer = Trainer(TEXT, "c.txt", tmp_path / "m.safetensors", TINY, cfg, events.append)
    trainer.run()
    kinds = [type(e) for e in events]
    assert kinds.count(StepSkipped) == 4 and kinds.count(RolledBack) == 1
    assert trainer.progress.lr_scale == 0.5
    for tensor in load_model(tmp_path / "m.safetensors").tensors.values():
        assert np.isfinite(tensor).all()


def test_eval_matches_a_hand_computation():
    model = random_model(layers=2, hidden=8, embedding=4, seed=5)
    text = "the will to power."
    result = evaluate_text(model, text + "Q")  # Q is not in the vocabulary: skipped
    ids = model.vocab.encode_known(text)
    # by hand: numpy LSTM equations, one character at a time
    t = model.tensors
    h = [t["initial_h"][k].astype(np.float64) for k in range(2)]  # the learned starting state
    c = [t["initial_c"][k].astype(np.float64) for k in range(2)]
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    total = -log_softmax(t["head.weight"] @ h[1] + t["head.bias"])[ids[0]]  # the first too
    for pos, i in enumerate(ids[:-1]):
        x = t["embedding.weight"][i].astype(np.float64)
        for k in range(2):
            g = (
                t[f"lstm.weight_ih_l{k}"] @ x
                + t[f"lstm.bias_ih_l{k}"]
                + t[f"lstm.weight_hh_l{k}"] @ h[k]
                + t[f"lstm.bias_hh_l{k}"]
            )
            ig, fg, gg, og = np.split(g, 4)
            c[k] = sig(fg) * c[k] + sig(ig) * np.tanh(gg)
            h[k] = sig(og) * np.tanh(c[k])
            x = h[k]
        logits = t["head.weight"] @ h[1] + t["head.bias"]
        total -= log_softmax(logits)[ids[pos + 1]]
    assert result.skipped == 1 and result.scored == len(text)
    assert result.nats_per_char == pytest.approx(total / len(text), rel=1e-5)
    assert result.bits_per_char == pytest.approx(result.nats_per_char / math.log(2))


def test_eval_reads_a_file_in_chunks_and_scores_it_as_one_text(tmp_path, monkeypatch):
    import charchat.reading
    from charchat.modelfile import save_model
    from charchat.train.evaluate import evaluate_file

    model = random_model(layers=1, hidden=8, embedding=4, seed=6)
    path = tmp_path / "m.safetensors"
    save_model(model, path)
    # A text with characters of 1 to 3 bytes and CRLF line ends, in chunks of 7 bytes: chunk
    # edges fall inside characters and between "\r" and "\n".
    text = "the will — to power, naïve\r\nthe will to power.\r\n" * 20
    corpus_file = tmp_path / "t.txt"
    corpus_file.write_bytes(text.encode("utf-8"))
    expected = evaluate_text(model, text.replace("\r\n", "\n"))
    monkeypatch.setattr(charchat.reading, "CHUNK_BYTES", 7)

    def whole_file(*args, **kwargs):
        raise AssertionError("eval read the whole file at once")

    monkeypatch.setattr(charchat.reading, "read_text", whole_file)
    result = evaluate_file(str(path), corpus_file)
    assert (result.characters, result.scored, result.skipped) == (
        expected.characters,
        expected.scored,
        expected.skipped,
    )
    assert result.skipped > 0  # "—" and "ï" are outside the tiny vocabulary
    assert result.nats_per_char == pytest.approx(expected.nats_per_char, rel=1e-5)
    tail = text.replace("\r\n", "\n")
    tail = tail[len(tail) - int(len(tail) * 0.3) :]
    tailed = evaluate_file(str(path), corpus_file, tail=0.3)
    assert tailed.nats_per_char == pytest.approx(evaluate_text(model, tail).nats_per_char, rel=1e-5)
    assert tailed.characters == len(tail)
    told = []
    evaluate_file(str(path), corpus_file, 0.3, None, told.append, told.append)
    assert told[0] == len(tail) and told[-1] == len(tail)  # the total, then progress up to it
    assert told[1:] == sorted(told[1:]) and len(told) > 2


def test_parallel_validation_matches_sequential():
    torch.manual_seed(2)
    module = CharLSTM(30, TINY).eval()
    ids = np.random.default_rng(0).integers(0, 30, 6_000)
    exact = sequential_nats(module, ids, torch.device("cpu")) / (len(ids) - 1)
    assert parallel_nats_per_char(module, ids, torch.device("cpu")) == pytest.approx(
        exact, rel=1e-3
    )


def test_samples_at_each_temperature_are_reported(tmp_path):
    events = []
    cfg = TrainConfig(seq_len=16, batch_size=4, epochs=1, eval_every=1000, sample_length=30)
    Trainer(TEXT, "c.txt", tmp_path / "m.safetensors", TINY, cfg, events.append).run()
    samples = [e for e in events if isinstance(e, Samples)][-1].samples
    assert list(samples) == [0.2, 0.5, 1.0, 1.2] and all(len(s) == 30 for s in samples.values())


def test_temperature_samples_share_one_state_and_random_stream():
    model = random_model()
    samples = temperature_samples(model, "the ", 30, seed=5)
    assert list(samples) == [0.2, 0.5, 1.0, 1.2] and len(set(samples.values())) > 1
    for temperature, text in samples.items():  # each is plain sampling from the prompt's state
        engine, rng = Engine(model), np.random.default_rng(5)
        engine.feed_many(model.vocab.encode("the ").ids)
        expected = ""
        for _ in range(30):
            i = sample(engine.logits(), Settings(temperature=temperature), rng)
            expected += model.vocab.chars[i]
            engine.feed(i)
        assert text == expected


def test_the_initial_state_is_learnt_saved_and_where_a_session_starts(tmp_path):
    model, _ = run(tmp_path)
    saved = load_model(tmp_path / "m.safetensors")
    assert np.abs(saved.tensors["initial_h"]).max() > 1e-3  # moved away from zero
    engine = Engine(saved)
    np.testing.assert_array_equal(engine.state[0], saved.tensors["initial_h"])
    engine.feed_many([1, 2, 3])
    engine.reset()
    np.testing.assert_array_equal(engine.state[1], saved.tensors["initial_c"])


def test_restarted_streams_begin_at_the_initial_state():
    trainer = Trainer(TEXT, "c.txt", "/dev/null", TINY, replace(FAST, restart_share=0.5))
    hidden = (torch.ones(2, 64, 16), torch.ones(2, 64, 16))
    torch.manual_seed(3)
    h, c = trainer.stepper.restart_some_streams(hidden)
    restarted = [b for b in range(64) if not torch.equal(h[:, b], hidden[0][:, b])]
    assert 16 < len(restarted) < 48
    for b in restarted:
        assert torch.equal(h[:, b], trainer.module.initial_h) and torch.equal(
            c[:, b], trainer.module.initial_c
        )
    assert h.requires_grad  # the initial state learns from the streams that start at it


def test_a_checkpoint_from_before_a_new_setting_resumes_with_its_default():
    from dataclasses import asdict

    from charchat.train.checkpoint import check_identity

    now = {"model_config": asdict(ModelConfig(2, 16, 8, 0.1)), "seed": 1}
    older = {
        "model_config": {k: v for k, v in now["model_config"].items() if k != "locked_dropout"}
    }
    check_identity({"identity": older | {"seed": 1}}, now)  # no error
    locked = {"model_config": asdict(ModelConfig(2, 16, 8, 0.1, locked_dropout=True)), "seed": 1}
    with pytest.raises(CharchatError, match="different model config"):
        check_identity({"identity": older | {"seed": 1}}, locked)
