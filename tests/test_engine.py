import numpy as np
import pytest
import torch
from conftest import random_model

from charchat.chat.engine import Engine
from charchat.train.model import CharLSTM


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_engine_matches_torch_over_1000_steps(layers):
    model = random_model(layers=layers, hidden=24, embedding=8, seed=layers)
    ids = np.random.default_rng(layers).integers(0, len(model.vocab), 1000)
    with torch.no_grad():
        expected, _ = CharLSTM.from_file(model).eval()(torch.as_tensor(ids)[None])
    expected = expected[0].numpy()
    engine = Engine(model)
    got = engine.logits_after(ids)
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= 1e-5 * scale


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("length", [31, 32, 47, 300, 1000])
def test_feed_many_equals_feeding_one_by_one(layers, length):
    model = random_model(layers=layers, seed=7)
    ids = np.random.default_rng(length).integers(0, len(model.vocab), length)
    one, many = Engine(model), Engine(model)
    for i in ids:
        one.feed(int(i))
    many.feed_many(ids)
    np.testing.assert_allclose(many.state, one.state, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(many.logits(), one.logits(), rtol=1e-5, atol=1e-5)


def test_snapshot_and_restore():
    model = random_model()
    engine = Engine(model)
    engine.feed_many([1, 2, 3])
    snap = engine.snapshot()
    before = engine.logits().copy()
    engine.feed_many([4, 5, 6])
    assert not np.allclose(engine.logits(), before)
    engine.restore(snap)
    np.testing.assert_array_equal(engine.logits(), before)
    engine.reset()
    np.testing.assert_array_equal(engine.state[0], model.tensors["initial_h"])
    assert engine.state.any()


def test_a_model_without_a_learned_initial_state_starts_at_zero():
    model = random_model(initial_state=False)
    engine = Engine(model)
    assert not engine.state.any()
    engine.feed_many([1, 2, 3])
    engine.reset()
    assert not engine.state.any()


def test_twins_share_the_weights_and_step_apart(tiny_model):
    first = Engine(tiny_model)
    twin, alone = first.twin(), Engine(tiny_model)
    assert twin.w_first is first.w_first and twin.state is not first.state
    ids = tiny_model.vocab.encode("the will to power").ids
    for i in ids:
        twin.feed(i)
        alone.feed(i)
    assert np.array_equal(twin.state, alone.state)
    assert np.array_equal(twin.logits(), alone.logits())
    assert np.array_equal(first.state, first.initial)  # untouched by its twin's stepping
