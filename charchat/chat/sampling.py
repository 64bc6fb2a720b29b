"""Choosing the next character: pure functions of logits, settings and an explicit generator.

Temperature T reweights the model's distribution as softmax(logits / T), computed in log
space so that T -> 0 becomes greedy and a huge T becomes uniform without overflow or NaN.
"""

from __future__ import annotations

import math

import numpy as np

from charchat.settings import CUTTING_MODES, GREEDY_BELOW, Settings

LOG2E = 1 / math.log(2)  # bits per nat


def _clean(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if np.isfinite(z).all():
        return z
    return np.nan_to_num(z, nan=-np.inf, posinf=np.finfo(np.float64).max, neginf=-np.inf)


def most_likely(logits: np.ndarray) -> int:
    """The greedy choice: the first of the largest logits (before any rounding)."""
    return int(np.argmax(_clean(logits)))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = _clean(logits)
    z = z - z.max()
    return z - np.log(np.exp(z).sum())


def tempered_logprobs(logits: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(logits / T); for T below GREEDY_BELOW, all mass on the (first) maximum."""
    if temperature < GREEDY_BELOW:
        out = np.full(len(logits), -np.inf)
        out[most_likely(logits)] = 0.0
        return out
    z = _clean(logits)
    return log_softmax((z - z.max()) / temperature)


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(tempered_logprobs(logits, temperature))


def kept_mask(probs: np.ndarray, settings: Settings) -> np.ndarray:
    """Which characters the mode lets through (top-k / top-p / min-p cut the tail; ties by
    index)."""
    if settings.mode == "min-p":
        return (probs >= settings.min_p * probs.max()) & (probs > 0)
    if settings.mode not in CUTTING_MODES:
        return probs > 0
    order = np.argsort(-probs, kind="stable")
    keep = np.zeros(len(probs), dtype=bool)
    if settings.mode == "top-k":
        keep[order[: settings.top_k]] = True
    else:
        cumulative = np.cumsum(probs[order])
        count = int(np.searchsorted(cumulative, settings.top_p * cumulative[-1])) + 1
        keep[order[:count]] = True
    return keep & (probs > 0)


def distribution(logits: np.ndarray, settings: Settings) -> np.ndarray:
    """The distribution the next character is actually drawn from."""
    if settings.is_greedy:
        probs = np.zeros(len(logits))
        probs[most_likely(logits)] = 1.0
        return probs
    probs = probabilities(logits, settings.temperature)
    if settings.mode in CUTTING_MODES:
        probs = np.where(kept_mask(probs, settings), probs, 0.0)
        probs /= probs.sum()
    return probs


def draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """Inverse-CDF draw: one uniform number per character, never a zero-probability index."""
    cdf = np.cumsum(probs)
    index = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    if index >= len(probs) or probs[index] <= 0:
        index = int(np.flatnonzero(probs > 0)[-1])
    return index


def choose(probs: np.ndarray, settings: Settings, rng: np.random.Generator) -> int:
    """The next character from the distribution `distribution` gave (greedy draws nothing)."""
    if settings.is_greedy:
        return int(np.argmax(probs))
    return draw(probs, rng)


def sample(logits: np.ndarray, settings: Settings, rng: np.random.Generator) -> int:
    return next_char(logits, settings, rng)[0]


def next_char(
    logits: np.ndarray, settings: Settings, rng: np.random.Generator, banned=None
) -> tuple[int, float, float]:
    """The next character; its log-probability (nats) under the model at T=1; the entropy in
    bits of the distribution it was drawn from. The same as `choose(distribution(...))` and
    friends, but plain sampling, once per generated character, takes a third of the calls.
    Characters in `banned` (ids) are never chosen; the log-probability stays the model's."""
    model_logits = logits
    if banned is not None and len(banned):
        logits = _clean(logits).copy()
        logits[banned] = -np.inf
    index, logprob, entropy = _next_char(logits, settings, rng)
    if logits is not model_logits:
        logprob = float(log_softmax(model_logits)[index])
    return index, logprob, entropy


def _next_char(logits, settings, rng):
    if settings.mode != "sample" or settings.is_greedy:
        probs = distribution(logits, settings)
        index = choose(probs, settings, rng)
        return index, float(log_softmax(logits)[index]), entropy_bits(probs)
    z = _clean(logits)
    z = z - z.max()
    scaled = z / settings.temperature
    weights = np.exp(scaled)  # unnormalised: the largest is exactly 1
    index = draw(weights, rng)
    total = weights.sum()
    # Entropy of weights / total in nats: ln(total) - sum(w * scaled) / total. A weight of
    # zero contributes nothing, also where scaled is -inf (a NaN logit), hence the floor.
    spread = np.dot(weights, np.maximum(scaled, -1e300)) / total
    entropy = max(float(np.log(total) - spread), 0.0) / np.log(2)
    at_one = total if settings.temperature == 1.0 else np.exp(z).sum()
    return index, float(z[index] - np.log(at_one)), entropy + 0.0


def entropy_bits(probs: np.ndarray) -> float:
    p = np.asarray(probs, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()) + 0.0  # never -0.0


def next_chars(logits: np.ndarray, temperatures: np.ndarray, uniforms: np.ndarray):
    """next_char's plain sampling for many rows at once (streams stepped together): row r is
    drawn with uniforms[r], as next_char draws with its generator's next number, so the same
    logits give the same characters. Returns indices, log-probabilities at T=1 (nats) and
    entropies (bits) of the distributions drawn from."""
    z = _clean(logits)
    z = z - z.max(axis=1, keepdims=True)
    scaled = z / temperatures[:, None]
    weights = np.exp(scaled)
    cdf = np.cumsum(weights, axis=1)
    index = (cdf <= (uniforms * cdf[:, -1])[:, None]).sum(axis=1)
    rows = np.arange(len(z))
    for r in np.flatnonzero(
        (index >= z.shape[1]) | (weights[rows, np.minimum(index, z.shape[1] - 1)] <= 0)
    ):
        index[r] = np.flatnonzero(weights[r] > 0)[-1]  # never a zero-probability character
    total = weights.sum(axis=1)
    spread = (weights * np.maximum(scaled, -1e300)).sum(axis=1) / total
    entropy = np.maximum(np.log(total) - spread, 0.0) / np.log(2) + 0.0
    at_one = np.where(temperatures == 1.0, total, np.exp(z).sum(axis=1))
    return index, z[rows, index] - np.log(at_one), entropy
