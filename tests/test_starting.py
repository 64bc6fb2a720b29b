"""The starting state, fitted at the end of training to where texts start."""

import numpy as np
import torch

from charchat.chat.engine import Engine
from charchat.chat.sampling import log_softmax
from charchat.modelfile import ModelConfig, load_model
from charchat.train.loop import Trainer
from charchat.train.recipe import TrainConfig
from charchat.train.starting import FEWEST_STARTS, FIT_LENGTH, text_starts


def ids_of(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64)


NL = ord("\n")


def test_texts_start_at_the_beginning_and_after_blank_lines():
    text = "".join(f"p{i} " + "x" * 80 + "\n\n" for i in range(FEWEST_STARTS + 4))
    starts = text_starts(ids_of(text), NL)
    assert starts[0] == 0 and len(starts) >= FEWEST_STARTS
    assert all(text[s] == "p" for s in starts)
    assert all(s + FIT_LENGTH + 1 <= len(text) for s in starts)  # a whole window after each


def test_without_blank_lines_lines_start_texts_and_without_lines_any_place_does():
    lines = "".join(f"l{i} " + "y" * 70 + "\n" for i in range(FEWEST_STARTS + 4))
    starts = text_starts(ids_of(lines), NL)
    assert len(starts) >= FEWEST_STARTS and all(lines[s] == "l" for s in starts)
    flat = "z" * 500
    assert len(text_starts(ids_of(flat), NL)) == 500 - FIT_LENGTH
    assert len(text_starts(ids_of(flat), None)) == 500 - FIT_LENGTH
    assert len(text_starts(ids_of("short"), NL)) == 0


def test_a_trained_model_starts_where_its_texts_start(tmp_path):
    # Every paragraph begins with "Q", which occurs nowhere else: the fitted starting state
    # should expect it, where one trained only "somewhere in a text" would not.
    rng = np.random.default_rng(0)
    words = ["the will", "to power", "is good", "and bad", "truth"]
    paragraphs = ["Q " + " ".join(rng.choice(words, 12)) + ".\n\n" for _ in range(60)]
    text = "".join(paragraphs)
    cfg = TrainConfig(
        seq_len=32, batch_size=8, lr=1e-2, epochs=2, val_fraction=0.1, seed=3, threads=1
    )
    torch.manual_seed(0)
    out = tmp_path / "m.safetensors"
    trainer = Trainer(text, "q.txt", out, ModelConfig(1, 32, 8, 0.0), cfg)
    trainer.run()
    saved = load_model(out)
    assert "fitted to where texts start" in saved.card["initial_state"]
    engine = Engine(saved)
    first = np.exp(log_softmax(engine.logits().astype(np.float64)))
    assert first[saved.vocab.index["Q"]] > 0.5


def test_info_says_how_the_starting_state_came_about():
    from conftest import random_model

    from charchat.chat.looking import starting_state_text

    model = random_model()
    assert starting_state_text(model) == "learned"
    model.card["initial_state"] = "fitted to where texts start (30 steps, other weights frozen)"
    assert starting_state_text(model).startswith("learned, fitted to where texts start")
    del model.tensors["initial_h"]
    assert starting_state_text(model) == "zero (an older file)"


def test_the_fit_never_runs_backward_in_eval_mode_and_still_has_no_dropout():
    # cuDNN refuses a backward pass through an LSTM in eval mode (every GPU run ended in that
    # traceback). The fit must run in training mode, with every dropout at zero.
    from charchat.train.model import CharLSTM
    from charchat.train.starting import fit_starting_state

    text = "".join(f"p{i} the will to power.\n\n" for i in range(40))
    ids = ids_of(text)

    def fitted(config):
        torch.manual_seed(0)
        module = CharLSTM(256, config)
        modes = []
        module.head.register_full_backward_hook(
            lambda *_: modes.append((module.training, module.lstm.training))
        )
        module.eval()
        fit_starting_state(module, ids, NL, torch.device("cpu"), "fp32", seed=1)
        assert module.training is False  # left as it was found
        return module.initial_h.detach().clone(), modes

    dropped, modes = fitted(ModelConfig(2, 16, 8, 0.5, 0.3, 0.2, True))
    plain, _ = fitted(ModelConfig(2, 16, 8, 0.0))
    assert modes and all(m == (True, True) for m in modes)
    torch.testing.assert_close(dropped, plain)  # the same fit: no dropout was drawn
