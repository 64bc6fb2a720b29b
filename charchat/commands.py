"""Slash commands: one table drives the parser, /help, Tab completion and the README."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from charchat.errors import CharchatError
from charchat.sampling import MAX_TEMPERATURE, MODES

MAX_LENGTH = 100_000


class CommandError(CharchatError):
    """A command line that cannot be applied; the session is left unchanged."""


@dataclass(frozen=True)
class Command:
    name: str
    usage: str  # argument placeholder shown in help, "" for none
    summary: str
    parse: Callable[[str], Any]  # argument text -> value, or raises CommandError
    aliases: tuple[str, ...] = ()


def _none(arg: str) -> None:
    if arg:
        raise CommandError("this command takes no argument")


def _number(kind, low, high, what: str, allow_empty=False, low_open=False):
    def parse(arg: str):
        if not arg and allow_empty:
            return None
        try:
            value = kind(arg)
        except ValueError:
            raise CommandError(
                f"{what} must be a {'whole ' if kind is int else ''}number from {low:g} to {high:g}"
            ) from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            bound = "above" if low_open else "from"
            raise CommandError(f"{what} must be {bound} {low:g} to {high:g}, not {arg}")
        return value

    return parse


def _mode(arg: str) -> str:
    value = arg.strip().lower().replace("_", "-")
    value = {"topk": "top-k", "topp": "top-p"}.get(value, value)
    if value not in MODES:
        raise CommandError(f"mode must be one of: {', '.join(MODES)}")
    return value


def _required_text(what: str):
    def parse(arg: str) -> str:
        if not arg:
            raise CommandError(f"give {what}")
        return arg

    return parse


def _optional_text(arg: str) -> str | None:
    return arg or None


def _on_off(arg: str) -> bool:
    value = arg.strip().lower()
    if value not in ("on", "off"):
        raise CommandError("say on or off")
    return value == "on"


def _temperatures(arg: str) -> list[float] | None:
    if not arg:
        return None
    parse_one = _number(float, 0, MAX_TEMPERATURE, "each temperature")
    values = [parse_one(part) for part in arg.replace(",", " ").split()]
    if len(values) > 8:
        raise CommandError("give at most 8 temperatures")
    return values


COMMANDS: tuple[Command, ...] = (
    Command(
        "temp",
        "T",
        f"softmax temperature, 0 to {MAX_TEMPERATURE:g} (0 = greedy)",
        _number(float, 0, MAX_TEMPERATURE, "temperature"),
    ),
    Command("mode", "MODE", "greedy | sample | top-k | top-p", _mode),
    Command("topk", "K", "characters kept in top-k mode (1 to 10000)", _number(int, 1, 10000, "K")),
    Command(
        "topp",
        "P",
        "probability mass kept in top-p mode (above 0, up to 1)",
        _number(float, 0, 1, "P", low_open=True),
    ),
    Command(
        "len",
        "N",
        f"characters generated per turn (1 to {MAX_LENGTH})",
        _number(int, 1, MAX_LENGTH, "length"),
    ),
    Command(
        "seed", "N", "reseed the sampler (same seed, same text)", _number(int, 0, 2**63 - 1, "seed")
    ),
    Command(
        "probs",
        "[N]",
        "the N most likely next characters, as bars (nothing is sampled)",
        _number(int, 1, 200, "N", allow_empty=True),
    ),
    Command(
        "sweep",
        "[T …]",
        "continue the same state at several temperatures, side by side",
        _temperatures,
    ),
    Command(
        "score",
        "TEXT",
        "bits per character of TEXT from here (nothing changes)",
        _required_text("the text to score"),
    ),
    Command(
        "color",
        "on|off",
        "colour characters by how surprising they were",
        _on_off,
        aliases=("colour",),
    ),
    Command("reset", "", "empty transcript, fresh state", _none),
    Command("undo", "", "back to the state before the last turn", _none),
    Command(
        "model",
        "NAME|PATH",
        "switch model (the transcript restarts)",
        _required_text("a model name or path"),
    ),
    Command("info", "", "the model card: architecture, vocabulary, training", _none),
    Command("save", "FILE", "save the transcript as text", _required_text("a file name")),
    Command("help", "[COMMAND]", "list commands, or explain one", _optional_text),
    Command("quit", "", "leave charchat", _none, aliases=("exit",)),
)

BY_NAME = {name: c for c in COMMANDS for name in (c.name, *c.aliases)}


@dataclass(frozen=True)
class Parsed:
    command: Command
    value: Any


def is_command(line: str) -> bool:
    """A line starting with one '/' is a command; '//' escapes a seed that starts with '/'."""
    return line.startswith("/") and not line.startswith("//")


def seed_text(line: str) -> str:
    return line[1:] if line.startswith("//") else line


def suggest(name: str) -> str:
    close = difflib.get_close_matches(name, list(BY_NAME), n=1, cutoff=0.5)
    if not close:
        prefix = [n for n in BY_NAME if n.startswith(name)] if name else []
        close = prefix[:1]
    return f"; did you mean /{close[0]}?" if close else "; /help lists the commands"


def parse(line: str) -> Parsed:
    body = line.strip()[1:]
    name, _, arg = body.partition(" ")
    name = name.lower()
    command = BY_NAME.get(name)
    if command is None:
        raise CommandError(f"unknown command /{name}{suggest(name)}")
    try:
        return Parsed(command, command.parse(arg.strip()))
    except CommandError as e:
        raise CommandError(f"/{command.name}: {e}") from None


def help_text(name: str | None = None) -> str:
    if name:
        command = BY_NAME.get(name.lstrip("/").lower())
        if command is None:
            raise CommandError(f"no command /{name.lstrip('/')}{suggest(name.lstrip('/'))}")
        names = " ".join(f"/{n}" for n in (command.name, *command.aliases))
        return f"{names} {command.usage}".rstrip() + f"\n  {command.summary}"
    width = max(len(f"/{c.name} {c.usage}") for c in COMMANDS)
    lines = [f"  {f'/{c.name} {c.usage}':<{width}}  {c.summary}" for c in COMMANDS]
    lines.append(
        "Type text and press Enter to have the model continue it; an empty line continues."
    )
    return "\n".join(lines)


def completion_words() -> list[str]:
    return [f"/{name}" for name in BY_NAME]
