import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from charchat.chat.sampling import (
    choose,
    distribution,
    entropy_bits,
    log_softmax,
    next_char,
    probabilities,
    sample,
    tempered_logprobs,
)
from charchat.errors import CharchatError
from charchat.settings import Settings

logits_strategy = arrays(
    np.float32,
    st.integers(1, 60),
    elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
)
temperatures = st.one_of(st.just(0.0), st.floats(1e-12, 100.0))
modes = st.sampled_from(["greedy", "sample", "top-k", "top-p", "min-p"])


@settings(max_examples=300, deadline=None)
@given(
    logits_strategy,
    temperatures,
    modes,
    st.integers(1, 80),
    st.floats(0.01, 1.0),
    st.integers(0, 2**32),
)
def test_any_logits_and_settings_give_a_valid_draw(logits, t, mode, k, p, seed):
    s = Settings(temperature=t, mode=mode, top_k=k, top_p=p).check()
    probs = distribution(logits, s)
    assert np.isfinite(probs).all() and (probs >= 0).all()
    assert probs.sum() == pytest.approx(1.0)
    index = sample(logits, s, np.random.default_rng(seed))
    assert 0 <= index < len(logits)
    assert probs[index] > 0  # never a character of probability zero
    assert np.isfinite(entropy_bits(probs))


@settings(max_examples=400, deadline=None)
@given(logits_strategy, temperatures, st.integers(0, 2**32))
def test_next_char_fast_path_agrees_with_the_general_one(logits, t, seed):
    # plain sampling has its own code path in next_char; the other modes go through
    # distribution() and choose(), which the frequency test below checks on its own
    s = Settings(temperature=t, mode="sample").check()
    index, logprob, entropy = next_char(logits, s, np.random.default_rng(seed))
    probs = distribution(logits, s)
    assert index == choose(probs, s, np.random.default_rng(seed))
    assert logprob == pytest.approx(float(log_softmax(logits)[index]), rel=1e-9, abs=1e-9)
    assert entropy == pytest.approx(entropy_bits(probs), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    "settings, expected",
    [  # by hand, for p = (0.5, 0.3, 0.15, 0.05) at T = 1
        (Settings(temperature=1.0, mode="sample"), [0.5, 0.3, 0.15, 0.05]),
        (Settings(temperature=1.0, mode="greedy"), [1.0, 0, 0, 0]),
        (Settings(temperature=1.0, mode="top-k", top_k=2), [0.625, 0.375, 0, 0]),
        (
            Settings(temperature=1.0, mode="min-p", min_p=0.25),
            [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0],
        ),
        (Settings(temperature=1.0, mode="min-p", min_p=0.5), [0.625, 0.375, 0, 0]),
        (Settings(temperature=1.0, mode="min-p", min_p=1.0), [1.0, 0, 0, 0]),
        (
            Settings(temperature=1.0, mode="top-p", top_p=0.9),
            [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0],
        ),
    ],
)
def test_next_char_draws_follow_each_mode(settings, expected):
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(0)
    draws = [next_char(logits, settings, rng) for _ in range(20000)]
    counts = np.bincount([d[0] for d in draws], minlength=4) / len(draws)
    np.testing.assert_allclose(counts, expected, atol=0.012)
    p = np.array(expected)
    by_hand = -(p[p > 0] * np.log2(p[p > 0])).sum()
    assert draws[0][2] == pytest.approx(by_hand, abs=1e-9)  # the entropy drawn from
    assert draws[0][1] == pytest.approx(np.log([0.5, 0.3, 0.15, 0.05])[draws[0][0]])  # T=1


def test_next_char_survives_nan_logits():
    logits = np.array([np.nan, 1.0, 0.5, np.nan], dtype=np.float32)
    for t in (0.5, 1.0, 3.0):
        index, logprob, entropy = next_char(
            logits, Settings(temperature=t), np.random.default_rng(1)
        )
        assert index in (1, 2) and np.isfinite(logprob) and np.isfinite(entropy)


@given(logits_strategy)
def test_tiny_temperature_is_greedy_and_ties_go_to_the_first(logits):
    first_max = int(np.argmax(logits))
    for t in (0.0, 1e-9, 1e-5):
        assert sample(logits, Settings(temperature=t), np.random.default_rng(0)) == first_max


def test_temperature_is_softmax_of_logits_over_t():
    logits = np.array([2.0, 1.0, 0.5, -3.0])
    for t in (0.3, 1.0, 2.5):
        expected = np.exp(logits / t) / np.exp(logits / t).sum()
        np.testing.assert_allclose(probabilities(logits, t), expected, rtol=1e-12)


def test_low_temperature_lowers_entropy_high_raises_it():
    logits = np.array([3.0, 1.0, 0.2, -1.0, 0.0])
    entropies = [entropy_bits(probabilities(logits, t)) for t in (0.2, 0.5, 1.0, 2.0, 100.0)]
    assert entropies == sorted(entropies)
    assert entropies[-1] == pytest.approx(np.log2(5), abs=1e-2)


def test_huge_logits_do_not_overflow():
    logits = np.array([1e38, -1e38, 3e38], dtype=np.float32)
    z = logits.astype(np.float64)
    np.testing.assert_allclose(log_softmax(logits), z - z.max(), rtol=1e-12)
    tempered = tempered_logprobs(logits, 1e-3)
    assert tempered[2] == 0.0 and (tempered[:2] < -1e38).all()
    np.testing.assert_array_equal(probabilities(logits, 100.0), [0.0, 0.0, 1.0])


def test_top_k_and_top_p_cut_the_tail():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert (distribution(logits, Settings(temperature=1, mode="top-k", top_k=2)) > 0).sum() == 2
    kept = distribution(logits, Settings(temperature=1, mode="top-p", top_p=0.8)) > 0
    assert kept.tolist() == [True, True, False, False]


def test_sampling_follows_the_distribution():
    logits = np.log(np.array([0.7, 0.2, 0.1]))
    rng = np.random.default_rng(0)
    draws = [sample(logits, Settings(temperature=1.0), rng) for _ in range(20000)]
    np.testing.assert_allclose(np.bincount(draws) / len(draws), [0.7, 0.2, 0.1], atol=0.01)


@pytest.mark.parametrize(
    "bad",
    [
        dict(temperature=-1),
        dict(temperature=float("nan")),
        dict(temperature=1e6),
        dict(mode="x"),
        dict(top_k=0),
        dict(top_p=0),
    ],
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(CharchatError):
        Settings(**bad).check()
