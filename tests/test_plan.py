"""The budget planner (a pure function), bf16 training, and the plan on the command line."""

import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TEXT

from charchat.errors import CharchatError
from charchat.events import StepDone
from charchat.modelfile import ModelConfig, load_model
from charchat.train.loop import Trainer
from charchat.train.plan import VAL_CHARS, plan_for
from charchat.train.probe import half_precision_for
from charchat.train.recipe import TrainConfig

SHAKESPEARE = 1_003_836
SPEEDS = {"1x512": 28_000, "2x512": 8_500}  # bf16, two threads, measured on the race machine


def test_a_short_budget_gets_a_fast_model_without_dropout():
    plan = plan_for(90, SHAKESPEARE, SPEEDS, "bf16", 2)
    assert (plan.model.layers, plan.model.hidden, plan.model.dropout) == (1, 512, 0.0)
    assert 2 < plan.passes < 3.5 and plan.precision == "bf16" and plan.threads == 2
    assert plan.train["batch_size"] == 32 and plan.train["seq_len"] == 64


def test_more_time_means_more_passes_then_dropout_then_depth():
    plans = [plan_for(minutes * 60, SHAKESPEARE, SPEEDS) for minutes in (1.5, 5, 15, 60)]
    dropouts = [p.model.dropout for p in plans]
    assert dropouts == sorted(dropouts) and dropouts[0] == 0 < dropouts[1]
    assert [p.model.layers for p in plans] == [1, 1, 2, 2]
    assert plans[2].chars_per_second < 28_000  # the deeper model is slower per character
    assert plans[3].passes > plans[2].passes


def test_a_slower_machine_plans_like_a_shorter_budget():
    slow = plan_for(600, SHAKESPEARE, {"1x512": 10_000, "2x512": 3_000})
    fast = plan_for(200, SHAKESPEARE, {"1x512": 30_000, "2x512": 9_000})
    assert (slow.model, slow.train, slow.passes) == (fast.model, fast.train, fast.passes)


def test_validation_is_a_bounded_sample():
    big = plan_for(300, 10 * SHAKESPEARE, SPEEDS)
    assert big.train["val_fraction"] * 10 * SHAKESPEARE == pytest.approx(VAL_CHARS, rel=1e-3)
    assert plan_for(300, 50_000, SPEEDS).train["val_fraction"] == 0.1  # small texts keep 10 %


def test_the_plan_is_a_valid_recipe():
    for seconds in (5, 90, 900, 5400):
        plan = plan_for(seconds, SHAKESPEARE, SPEEDS)
        plan.model.check()
        TrainConfig(**plan.train).check()
        assert plan.train["eval_every"] >= 50 and "LSTM" in plan.line()


def losses(precision: str) -> list[float]:
    seen = []
    cfg = TrainConfig(
        seq_len=16, batch_size=8, lr=1e-2, epochs=6, eval_every=10_000, warmup_steps=5,
        precision=precision, val_fraction=0.0,
    )  # fmt: skip
    trainer = Trainer(TEXT, "c.txt", "/dev/null", ModelConfig(1, 32, 8, 0.0), cfg)
    trainer.on_event = lambda e: seen.append(e.loss) if isinstance(e, StepDone) else None
    trainer.save_checkpoint = lambda: None
    trainer.validate = lambda: 0.0
    trainer._checkpoint_round = lambda final=False: None
    trainer.run()
    return seen


def test_bf16_tracks_fp32_loss():
    torch.manual_seed(0)
    fp32, bf16 = losses("fp32"), losses("bf16")
    assert len(fp32) == len(bf16) > 20
    assert fp32 != bf16  # the forward pass really ran in bf16
    assert fp32[-1] < fp32[0] - 0.5 and bf16[-1] < bf16[0] - 0.5  # both learn
    # Stated tolerance: the mean loss of the last five steps within 0.05 nats.
    assert abs(sum(fp32[-5:]) - sum(bf16[-5:])) / 5 < 0.05


def test_loss_scaling_skips_overflowing_steps_and_still_learns(monkeypatch):
    """fp16 runs only on CUDA; the scaled step itself is checked here with fp32 compute."""
    torch.manual_seed(0)
    plain = losses("fp32")
    real_init = Trainer.__init__
    trainers = []

    def scaled(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.stepper.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        overflows = iter(range(3))  # the first three backward passes overflow, as fp16 would
        self.module.head.weight.register_hook(
            lambda g: g * math.inf if next(overflows, None) is not None else g
        )
        trainers.append(self)

    monkeypatch.setattr(Trainer, "__init__", scaled)
    torch.manual_seed(0)
    with_scaling = losses("fp32")
    trainer = trainers[0]
    assert len(with_scaling) == len(plain) > 20
    assert trainer.scaler.get_scale() == 1024.0 / 2**3  # lowered once per overflow
    assert trainer.progress.skipped_steps == 0  # routine for fp16, not a bad step
    assert abs(sum(plain[-5:]) - sum(with_scaling[-5:])) / 5 < 0.1


def test_fp16_is_refused_without_a_gpu():
    cfg = TrainConfig(seq_len=16, batch_size=4, precision="fp16", device="cpu")
    with pytest.raises(CharchatError, match="fp16 needs a CUDA GPU"):
        Trainer(TEXT, "c.txt", "/dev/null", ModelConfig(1, 32, 8, 0.0), cfg)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_model_trained_on_a_gpu_samples_on_the_cpu(tmp_path):
    from charchat.chat.engine import Engine

    cfg = TrainConfig(seq_len=16, batch_size=4, epochs=1, eval_every=10, device="cuda")
    cfg = replace(cfg, precision=half_precision_for(torch.device("cuda")))
    out = tmp_path / "m.safetensors"
    Trainer(TEXT, "c.txt", out, ModelConfig(1, 32, 8, 0.0), cfg).run()
    model = load_model(out)
    assert model.card["device"].startswith("cuda")
    engine = Engine(model)
    engine.feed_many(model.vocab.encode_known(TEXT[:50]))
    assert np.isfinite(engine.logits()).all()  # read on the CPU, no conversion


def test_the_plan_is_printed_and_kept_in_the_card(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 20)
    out = tmp_path / "m.safetensors"
    args = ["train", str(corpus), "--minutes", "0.2", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "charchat", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("plan: "))
    card = load_model(out).card
    assert card["plan"]["line"] == line and card["plan"]["budget_minutes"] == 0.2
    assert f"{card['train_config']['batch_size']}x" in line
    assert "chars/s measured" in line and card["plan"]["probe"]
    assert done.stdout == ""


def test_a_spread_validation_sample_leaves_the_end_of_the_text_to_learn():
    from charchat.train.corpus import Corpus

    text = "".join(chr(97 + i % 26) for i in range(100_000))
    spread = Corpus.from_text(text, "t", 0.02, pieces=16)
    end = Corpus.from_text(text, "t", 0.02)
    assert spread.val_chars == 16 * (2000 // 16) and spread.chars == 100_000
    ids = np.array(spread.vocab.encode_known(text))
    assert np.array_equal(spread.train[-100:], ids[-100:])  # the end is learnt
    assert len(end.val) == 1 and np.array_equal(
        end.val[0].scored, ids[-2000:]
    )  # one piece: the end
    assert plan_for(300, SHAKESPEARE, SPEEDS).train["val_pieces"] == 16


def test_flags_override_the_plan_and_the_line_says_so(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT * 20)
    out = tmp_path / "m.safetensors"
    args = ["train", str(corpus), "--minutes", "0.3", "--out", str(out)]
    args += ["--hidden", "32", "--dropout", "0.3", "--batch-size", "8", "--val-fraction", "0.1"]
    done = subprocess.run(
        [sys.executable, "-m", "charchat", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    card = load_model(out).card
    assert card["plan"]["line"].startswith("plan: ") and "x32 LSTM" in card["plan"]["line"]
    assert "dropout 0.3" in card["plan"]["line"] and "batch 8x64" in card["plan"]["line"]
    assert card["train_config"]["batch_size"] == 8 and card["train_config"]["lr"] in (3e-3, 4e-3)
    assert card["train_config"]["val_pieces"] == 1 and "10.0 % (the end)" in card["plan"]["line"]


def test_a_busy_machine_gets_a_probe_bounded_in_time():
    import time

    from charchat.train.probe import TWO_LAYER_SHARE, probe

    before = torch.get_num_threads()
    try:
        measured = probe(65, torch.device("cpu"), deadline=time.monotonic())  # already late
        assert len(measured.table) == 1 and measured.threads == 1  # one thread measured first
        assert measured.precision == "fp32"
        speeds = measured.speeds(65, torch.device("cpu"), deadline=time.monotonic())
        assert speeds["2x512"] == speeds["1x512"] * TWO_LAYER_SHARE  # estimated, not measured
    finally:
        torch.set_num_threads(before)
