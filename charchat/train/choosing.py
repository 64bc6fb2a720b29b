"""Choosing a run's model and recipe: from the flags, or planned from a time budget."""

from __future__ import annotations

import time
from dataclasses import replace

from charchat.errors import CharchatError
from charchat.modelfile import ModelConfig


def choose_recipe(
    text,
    preset,
    arch_overrides,
    given,
    explicit_arch,
    preset_given,
    resume,
    launched,
    parent: ModelConfig | None = None,
):
    """(model config or None, TrainConfig, plan card or None) for this run.

    With --minutes and no size flags, the planner chooses the model and recipe from the
    budget, the text's size and a throughput probe; every flag given overrides the plan.
    Otherwise the preset and TrainConfig's defaults apply. Either way, precision and threads
    left to chance are measured. With a parent (fine-tuning), its architecture is kept and
    the planner's fine-tuning rule (or, without --minutes, its defaults) applies.
    """
    from charchat.train.finetune import child_config
    from charchat.train.plan import FINE_TUNE_DEFAULTS, plan_fine_tuning, plan_for
    from charchat.train.probe import PROBE_MOST_SECONDS, PROBE_SHARE, probe
    from charchat.train.recipe import PRESETS, TrainConfig, check_precision, pick_device

    TrainConfig(**{**given, "precision": "fp32"}).check()  # bad numbers fail before probing
    precision = given.pop("precision", "auto")
    planning = "minutes" in given and not resume
    if "val_fraction" in given:
        given.setdefault("val_pieces", 1)  # a share given by hand is held out from the end
    if parent is not None:
        fixed = child_config(parent, arch_overrides, preset_given)
        if not planning:
            given = FINE_TUNE_DEFAULTS | given
    if precision != "auto" and given.get("threads") and not planning:
        given["precision"] = precision  # nothing left to measure
        if parent is not None:
            return fixed, TrainConfig(**given), None
        config = model_config_for(preset, arch_overrides) if explicit_arch or not resume else None
        return config, TrainConfig(**given), None
    device = pick_device(given.get("device", "auto"))
    check_precision(precision, device)
    vocab_size = len(text.vocab)
    allowance = PROBE_MOST_SECONDS
    if "minutes" in given:
        allowance = min(allowance, PROBE_SHARE * given["minutes"] * 60)
    deadline = time.monotonic() + allowance
    measured = probe(vocab_size, device, precision, given.get("threads"), deadline=deadline)
    given |= {"precision": measured.precision, "threads": measured.threads}
    if not planning:
        if parent is not None:
            return fixed, TrainConfig(**given), None
        config = model_config_for(preset, arch_overrides) if explicit_arch or not resume else None
        return config, TrainConfig(**given), None
    if parent is not None:
        speed = measured.speed_of(fixed, vocab_size, device, deadline=deadline)
    else:
        speeds = measured.speeds(vocab_size, device, deadline=deadline)
    left = given["minutes"] * 60 - (time.monotonic() - launched)
    if left < 1:
        raise CharchatError(
            f"--minutes {given['minutes']:g} is spent before training could start "
            f"(reading the text and measuring this machine took {time.monotonic() - launched:.0f} s)"
        )
    if parent is not None:
        plan = plan_fine_tuning(
            left, len(text.ids), speed, parent, measured.precision, measured.threads
        )
        chosen = {k: v for k, v in arch_overrides.items() if v is not None}
        config = replace(plan.model, **chosen)  # flags override the plan
    else:
        plan = plan_for(left, len(text.ids), speeds, measured.precision, measured.threads)
        sized = {k: v for k, v in arch_overrides.items() if v is not None}
        base = PRESETS[preset] if preset_given else plan.model  # flags override the plan
        config = replace(base, **sized)
    config.check()
    cfg = TrainConfig(**{**plan.train, **given, "minutes": left / 60})
    line = plan.line(config, {k: v for k, v in given.items() if k in plan.train})
    card = plan.card() | {"line": line, "budget_minutes": given["minutes"], "probe": measured.table}
    return config, cfg, card


def model_config_for(preset: str, overrides: dict) -> ModelConfig:
    from charchat.train.recipe import PRESETS

    config = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    config.check()
    return config
