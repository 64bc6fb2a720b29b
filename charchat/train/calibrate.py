"""Temperature calibration: a model that learnt its text many times over is too sure of itself
on text it has not seen. Dividing its logits by one temperature, fitted on held-out text,
makes its probabilities honest; the temperature is baked into the output head, so the chat,
`eval` and sampling at /temp 1 all use the calibrated model.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from charchat.errors import CharchatError
from charchat.finding import resolve_model
from charchat.modelfile import Model, load_model, save_model

# Temperatures tried, all in one pass over the text; the loss is flat near its minimum, so
# a step of 0.01 loses nothing that matters.
GRID = tuple(round(0.5 + 0.01 * i, 2) for i in range(251))  # 0.5 ... 3.0
LOWEST, HIGHEST = 0.05, 20.0  # what --temperature accepts


@dataclass(frozen=True)
class Fit:
    temperature: float
    nats_before: float  # at temperature 1
    nats_after: float  # at the fitted temperature
    scored: int

    @property
    def bits_before(self) -> float:
        return self.nats_before / math.log(2)

    @property
    def bits_after(self) -> float:
        return self.nats_after / math.log(2)


def fit_temperature(
    model: Model, text_path: Path, tail=None, threads=None, on_start=None, on_progress=None
) -> Fit:
    """The temperature that minimises the model's nats/char on the text (or its last `tail`)."""
    from charchat.train.evaluate import evaluate_file

    result = evaluate_file(model, text_path, tail, threads, on_start, on_progress, GRID)
    nats = np.array(result.nats_at_temperatures)
    best = int(np.argmin(nats))
    if best in (0, len(GRID) - 1):
        raise CharchatError(
            f"the best temperature lies outside {GRID[0]}-{GRID[-1]}: this text is not "
            "held-out text of the kind the model learnt"
        )
    return Fit(GRID[best], result.nats_per_char, float(nats[best]), result.scored)


def with_temperature(model: Model, temperature: float, how: dict) -> Model:
    """The model with its logits divided by `temperature`, recorded in its card (a model
    calibrated twice records the product)."""
    if not (isinstance(temperature, (int, float)) and LOWEST <= temperature <= HIGHEST):
        raise CharchatError(f"the temperature must be from {LOWEST:g} to {HIGHEST:g}")
    tensors = dict(model.tensors)
    for name in ("head.weight", "head.bias"):
        tensors[name] = np.asarray(tensors[name], dtype=np.float32) / np.float32(temperature)
    earlier = model.card.get("calibration", {}).get("temperature", 1.0)
    total = round(float(earlier) * temperature, 6)
    card = model.card | {"calibration": {"temperature": total} | how}
    return replace(model, tensors=tensors, card=card, path=None)


def calibrate(
    model_name: str,
    out: Path,
    text_path: Path | None = None,
    tail: float | None = None,
    temperature: float | None = None,
    threads: int | None = None,
    on_start=None,
    on_progress=None,
) -> tuple[Model, Fit | None]:
    """Fit a temperature on held-out text (or take the one given) and write the model with
    it to `out`."""
    if text_path is not None and temperature is not None:
        raise CharchatError(
            "give held-out text to fit the temperature on, or --temperature, not both"
        )
    if text_path is None and temperature is None:
        raise CharchatError("give held-out text to fit the temperature on, or --temperature")
    model = load_model(resolve_model(model_name))
    if temperature is not None:
        if tail is not None:
            raise CharchatError("--tail picks held-out text; with --temperature there is none")
        calibrated = with_temperature(model, temperature, {"given": temperature})
        fit = None
    else:
        fit = fit_temperature(model, text_path, tail, threads, on_start, on_progress)
        how = {
            "fitted": fit.temperature,
            "text": text_path.name,
            "text_sha256": _sha256(text_path),
            "tail": tail,
            "scored": fit.scored,
            "bits_before": round(fit.bits_before, 5),
            "bits_after": round(fit.bits_after, 5),
        }
        calibrated = with_temperature(model, fit.temperature, how)
    save_model(calibrated, out)
    return calibrated, fit


def _sha256(path: Path) -> str:
    """Of the text as read (as the card's corpus_sha256 is), not of the file's bytes."""
    from charchat.reading import text_chunks

    digest = hashlib.sha256()
    for piece in text_chunks(path):
        digest.update(piece.encode("utf-8"))
    return digest.hexdigest()
