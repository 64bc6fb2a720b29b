"""Slash commands: one table drives the parser, /help, Tab completion and the README."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from charchat import settings as spec
from charchat.chat import arguments
from charchat.errors import CharchatError, CommandError


@dataclass(frozen=True)
class Command:
    name: str
    usage: str  # argument placeholder shown in help, "" for none
    summary: str
    parse: Callable[[str], Any]  # argument text -> value, or raises CharchatError
    aliases: tuple[str, ...] = ()


COMMANDS: tuple[Command, ...] = (
    *(
        Command(setting.command, setting.placeholder, spec.help_text(setting), setting.parse)
        for setting in spec.SAMPLING
    ),
    Command(
        "stop",
        "[TEXT|off]",
        r"end each turn right after the model writes TEXT (\n newline, \t tab, \s space); "
        "no argument lists them, off clears them",
        arguments.stop,
    ),
    Command("norepeat", "N", spec.help_text(spec.NO_REPEAT), spec.NO_REPEAT.parse),
    Command(
        "len",
        "N|inf",
        f"characters generated per turn, {spec.LENGTH.describe()}; inf: until Ctrl+C or Esc",
        arguments.length,
    ),
    Command(
        "speed",
        "N",
        f"characters shown a second, {spec.SPEED.describe()}; ←/→ while it writes",
        spec.SPEED.parse,
    ),
    Command("regen", "", "write the last turn again, from the state before it", arguments.none),
    Command(
        "seed",
        "N",
        f"reseed the sampler, {spec.SEED.describe()}: same seed, same text",
        spec.SEED.parse,
    ),
    Command(
        "probs",
        "[N]",
        f"the N most likely next characters ({spec.PROBS_SHOWN.describe()}, default "
        f"{spec.PROBS_SHOWN.default}) as bars, at T and at T=1, with the entropy",
        arguments.optional(spec.PROBS_SHOWN.parse),
    ),
    Command(
        "sweep",
        "[T …]",
        f"the same state and random stream continued at up to {spec.SWEEP_MOST} temperatures "
        f"(default {' '.join(f'{t:g}' for t in spec.SWEEP_TEMPERATURES)})",
        arguments.temperatures,
    ),
    Command(
        "score",
        "TEXT",
        "bits per character of TEXT from here, most surprising characters marked (nothing changes)",
        arguments.required_text("the text to score"),
    ),
    Command(
        "color",
        "on|off",
        "colour every character by how surprising it was to the model",
        arguments.on_off,
        aliases=("colour",),
    ),
    Command(
        "cells",
        "L C|find FEATURE|off",
        "colour the text by one LSTM cell's activation (layer L, cell C, from 1); find ranks "
        "the cells that best track quote, line, paren, word or a regular expression",
        arguments.cells,
    ),
    Command(
        "novelty",
        "on [CORPUS]|off|N",
        "underline what the model writes that occurs verbatim in its training text (stretches "
        "of N or more characters, default 20; the text is found from the model card, or give "
        "its path); the status bar shows the longest copy of the last turn",
        arguments.novelty,
    ),
    Command(
        "adapt",
        "on|off|reset|save NAME",
        "learn from what you type, paste or pipe, once read (never from the model's own text): "
        "on; off keeps what was learnt; reset goes back to the weights as loaded; save NAME "
        "writes the adapted model. /undo takes back what a turn taught; /reset keeps it",
        arguments.adapt,
    ),
    Command("reset", "", "empty transcript, back to the model's starting state", arguments.none),
    Command("undo", "", "back to the state before the last turn", arguments.none),
    Command(
        "model",
        "NAME|PATH",
        "switch model (the transcript restarts)",
        arguments.required_text("a model name or path"),
    ),
    Command("info", "", "the model card: architecture, vocabulary, training", arguments.none),
    Command(
        "save",
        "FILE",
        "save the transcript as text; FILE.html or FILE.svg: as shown, in colour (the HTML "
        "shows each character's five likeliest alternatives on hover)",
        arguments.required_text("a file name"),
    ),
    Command(
        "session",
        "save|load FILE [reread]",
        "save the whole session (text, settings, random state, model state) to continue "
        "exactly later, or load one; reread reads its text into the model in use",
        arguments.session,
    ),
    Command("help", "[COMMAND]", "list commands, or explain one", arguments.optional_text),
    Command("quit", "", "leave charchat", arguments.none, aliases=("exit",)),
)

BY_NAME = {name: c for c in COMMANDS for name in (c.name, *c.aliases)}


@dataclass(frozen=True)
class Parsed:
    command: Command
    value: Any


def is_command(line: str) -> bool:
    """A line starting with one '/' is a command; '//' escapes a prompt that starts with '/'."""
    return line.startswith("/") and not line.startswith("//")


def writes(line: str) -> bool:
    """Whether the line starts a turn that writes text (a prompt, or /regen)."""
    if not is_command(line) or "\n" in line.strip():
        return True
    return line.strip()[1:].partition(" ")[0].lower() == "regen"


def prompt_text(line: str) -> str:
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
    except CharchatError as e:
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
    lines += [
        "Type a prompt and press Enter to have the model continue it; an empty line continues.",
        "While it writes: ↑/↓ temperature, ←/→ pace, Tab mode, space pause, Ctrl+C or Esc stop.",
        f"Limits: a prompt of up to {spec.MAX_PROMPT_CHARS:,} characters; the transcript keeps "
        f"its last {spec.TRANSCRIPT_KEEP:,} (the model has read them all); "
        f"{spec.UNDO_KEEP} undo points; /sweep writes {spec.SWEEP_CHARS} characters a temperature.",
    ]
    return "\n".join(lines)


def completion_words() -> list[str]:
    return [f"/{name}" for name in BY_NAME]


def markdown_table() -> str:
    """The README's command table, made from the same table as /help."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")  # a bare | would end the table cell

    rows = ["| command | what it does |", "|---|---|"]
    for c in COMMANDS:
        names = ", ".join(f"`/{n} {c.usage}`".replace(" `", "`") for n in (c.name, *c.aliases))
        rows.append(f"| {cell(names)} | {cell(c.summary)} |")
    return "\n".join(rows)
