"""How each slash command's argument is read: text in, a value or a CommandError out."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from charchat import settings as spec
from charchat.chat.decoding import unescape
from charchat.errors import CommandError


def none(arg: str) -> None:
    if arg:
        raise CommandError("this command takes no argument")


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda arg: parse(arg) if arg else None


def required_text(what: str):
    def parse(arg: str) -> str:
        if not arg:
            raise CommandError(f"give {what}")
        return arg

    return parse


def optional_text(arg: str) -> str | None:
    return arg or None


def on_off(arg: str) -> bool:
    value = arg.strip().lower()
    if value not in ("on", "off"):
        raise CommandError("say on or off")
    return value == "on"


def length(arg: str) -> float:
    if arg.strip().lower() in ("inf", "endless", "∞"):
        return math.inf
    return spec.LENGTH.parse(arg)


def session(arg: str) -> tuple[str, str, bool]:
    action, _, rest = arg.partition(" ")
    rest = rest.strip()
    reread = action == "load" and rest.endswith(" reread")
    path = rest.removesuffix(" reread").strip() if reread else rest
    if action not in ("save", "load") or not path:
        raise CommandError("say /session save FILE or /session load FILE [reread]")
    return action, path, reread


def adapt(arg: str) -> tuple[str, str | None]:
    action, _, rest = arg.strip().partition(" ")
    if action in ("", "on", "off", "reset") and not rest:
        return action or "show", None
    if action == "save" and rest.strip():
        return "save", rest.strip()
    raise CommandError("say /adapt on, /adapt off, /adapt reset or /adapt save NAME")


def stop(arg: str) -> str | None:
    if not arg:
        return None
    if arg.lower() == "off":
        return "off"
    stop = unescape(arg)
    if len(stop) > spec.STOP_CHARS:
        raise CommandError(f"/stop: a stop string has at most {spec.STOP_CHARS:,} characters")
    return stop


def novelty(arg: str) -> tuple[str, Any]:
    action, _, rest = arg.strip().partition(" ")
    if action == "on":
        return "on", rest.strip() or None
    if action == "off" and not rest:
        return "off", None
    low, high = spec.NOVELTY_MIN.low, spec.NOVELTY_MIN.high
    try:
        n = int(action)
    except ValueError:
        n = None
    if n is None or rest or not low <= n <= high:
        raise CommandError(
            f"say /novelty on [CORPUS], /novelty off, or /novelty N (N from {low} to {high})"
        )
    return "min", n


def cells(arg: str) -> tuple[str, Any]:
    words = arg.split()
    if words == ["off"]:
        return "off", None
    if len(words) >= 2 and words[0] == "find":
        return "find", arg.split(None, 1)[1].strip()
    if len(words) == 2 and all(w.isdigit() for w in words):
        return "show", (int(words[0]), int(words[1]))
    raise CommandError(
        "say /cells LAYER CELL, /cells find FEATURE (quote, line, paren, word or a regular "
        "expression) or /cells off"
    )


def temperatures(arg: str) -> list[float] | None:
    if not arg:
        return None
    values = [spec.TEMPERATURE.parse(part) for part in arg.replace(",", " ").split()]
    if len(values) > spec.SWEEP_MOST:
        raise CommandError(f"give at most {spec.SWEEP_MOST} temperatures")
    return values
