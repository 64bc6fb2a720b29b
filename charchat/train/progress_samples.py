"""Progress samples while training: one prompt continued at the sweep's temperatures, from the
identical state and random numbers (looking.sweep), so the temperature is the only difference."""

from __future__ import annotations

from charchat import settings as spec
from charchat.chat import looking
from charchat.chat.session import Session
from charchat.modelfile import Model
from charchat.settings import Settings


def temperature_samples(model: Model, prompt: str, length: int, seed: int) -> dict[float, str]:
    session = Session(model, Settings(mode="sample"), length=length, seed=seed)
    for _ in session.turn(prompt, length=0):
        pass  # the prompt is read; nothing is written
    lines = looking.sweep(session, spec.SWEEP_TEMPERATURES, most=length)
    return {line.temperature: line.text for line in lines}


def sample_prompt(text: str) -> str:
    """A natural prompt for the progress samples: the start of the corpus's first real line."""
    for line in text.splitlines():
        words = line.strip().split()
        if len(words) >= 3:
            return " ".join(words[:3]) + " "
    return text[:20]
