"""Progress samples: one prompt continued at several temperatures from the identical state."""

from __future__ import annotations

import numpy as np

from charchat.chat.engine import Engine
from charchat.chat.sampling import sample
from charchat.modelfile import Model
from charchat.settings import Settings

SAMPLE_TEMPERATURES = (0.2, 0.5, 1.0, 1.2)


def temperature_samples(model: Model, prompt: str, length: int, seed: int) -> dict[float, str]:
    """A continuation of prompt at each temperature, each from the same state and random
    numbers, so the temperature is the only difference."""
    engine = Engine(model)
    engine.feed_many(model.vocab.encode(prompt).ids)
    start = engine.snapshot()
    out = {}
    for temperature in SAMPLE_TEMPERATURES:
        engine.restore(start)
        rng = np.random.default_rng(seed)
        settings = Settings(temperature=temperature, mode="sample")
        chars = []
        for _ in range(length):
            i = sample(engine.logits(), settings, rng)
            chars.append(model.vocab.chars[i])
            engine.feed(i)
        out[temperature] = "".join(chars)
    return out


def sample_prompt(text: str) -> str:
    """A natural prompt for the progress samples: the start of the corpus's first real line."""
    for line in text.splitlines():
        words = line.strip().split()
        if len(words) >= 3:
            return " ".join(words[:3]) + " "
    return text[:20]
