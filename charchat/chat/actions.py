"""What each slash command does to a session: one function per command, on_NAME(session,
value), where value is what commands.parse made of the argument. Each either changes the
session and returns what to show, or raises CommandError and changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from charchat import settings as spec
from charchat.chat import adapting, commands, looking
from charchat.chat.decoding import escape
from charchat.errors import CharchatError, CommandError
from charchat.events import Info, ModelCard, Quit, SurpriseColours
from charchat.files import write_file
from charchat.finding import resolve_model
from charchat.modelfile import load_model
from charchat.paths import novelty_cache

SAMPLING_BY_COMMAND = {setting.command: setting for setting in spec.SAMPLING}


def apply(session, name: str, value) -> Iterator:
    """The events of command `name` applied to session."""
    setting = SAMPLING_BY_COMMAND.get(name)
    if setting is not None:
        result = _set(session, **{setting.field: value})
    else:
        result = globals()[f"on_{name}"](session, value)
    if isinstance(result, Iterator):
        return result
    return iter(result if isinstance(result, list) else [result] if result else [])


def _set(session, **changes) -> Info:
    try:
        session.settings = session.settings.with_(**changes)
    except CharchatError as e:
        raise CommandError(str(e)) from None
    return Info(session.describe_settings())


def on_norepeat(session, value: int):
    session.norepeat = int(value)
    if not session.norepeat:
        return Info("norepeat off")
    return Info(f"never writing a {session.norepeat}-character sequence the text already has")


def on_stop(session, value):
    if value == "off":
        session.stops = ()
        return Info("no stop strings")
    if value is not None:
        if len(session.stops) >= spec.STOPS_MOST and value not in session.stops:
            raise CommandError(f"/stop: at most {spec.STOPS_MOST} stop strings")
        session.stops = (*[s for s in session.stops if s != value], value)
    if not session.stops:
        return Info("no stop strings (/stop TEXT adds one)")
    listed = ", ".join(f"'{escape(s)}'" for s in session.stops)
    return Info(f"a turn ends right after any of: {listed}")


def on_len(session, value: float):
    session.length = value
    if math.isinf(value):
        return Info("length endless: each turn writes until Ctrl+C or Esc")
    return Info(f"length {session.length}")


def on_speed(session, value: float):
    session.speed = float(value)
    if not session.speed:
        return Info("pace: as fast as the engine goes")
    return Info(f"pace: {session.speed:g} characters a second")


def on_seed(session, value: int):
    session.seed = int(value)
    session.rng = np.random.default_rng(session.seed)
    return Info(f"sampler reseeded with {session.seed}")


def on_reset(session, _):
    session.reset()
    kept = " (what /adapt learnt is kept)" if session.adapting and session.adapting.learnt else ""
    return Info(f"transcript cleared; back to the model's starting state{kept}")


def on_adapt(session, value):
    return adapting.command(session, value)


def on_undo(session, _):
    if not session.turns:
        raise CommandError("/undo: nothing to undo")
    removed = session.undo()
    return Info(f"undone: {removed} characters removed")


def on_regen(session, _):
    """The last turn again from the state before it, with fresh random numbers."""
    if not session.turns:
        raise CommandError("/regen: no turn to write again")
    prompt = session.turns[-1].prompt
    session.undo()
    events = session.turn(prompt)
    s = session.settings
    if s.is_greedy or s.mode == "beam":
        return iter([Info(f"/regen: {s.mode_text()} is deterministic: the same text"), *events])
    return events


def on_model(session, name: str):
    model = load_model(resolve_model(name))  # CharchatError leaves the session as it was
    if session.stop_requested:
        return Info("/model stopped; still on " + session.model.name)
    watching, learning = session.novelty is not None, session.adapting is not None
    session.switch_model(model)
    note = "; novelty off (it was for the other model's text)" if watching else ""
    if learning:
        note += "; adapt off (what was learnt belongs to the other model: /adapt save keeps it)"
    return Info(f"switched to {looking.model_summary(session.model)}; transcript restarted{note}")


def on_info(session, _):
    return ModelCard(looking.card_rows(session))


def on_save(session, filename: str):
    path = Path(filename).expanduser()
    if path.is_dir():
        raise CommandError(f"/save: {path} is a directory")
    if path.exists():
        raise CommandError(f"/save: {path} exists; choose another name")
    picture = path.suffix.lower() in (".html", ".htm", ".svg")
    try:
        if picture:
            from charchat.chat.export import write_picture

            shown = write_picture(session, path)
        else:
            write_file(path, session.transcript.encode("utf-8"))
    except CharchatError as e:
        raise CommandError(f"/save: {e}") from None
    if picture:
        return Info(f"saved the session as shown ({shown:,} characters) to {path}")
    return Info(f"saved {len(session.transcript):,} characters to {path}")


def on_session(session, value):
    from charchat.chat import sessionfile

    action, filename, reread = value
    if action == "save":
        try:
            path = sessionfile.save_session(session, Path(filename))
        except CharchatError as e:
            raise CommandError(f"/session save: {e}") from None
        return Info(f"session saved to {path} ({session.transcript_length:,} characters)")
    data = sessionfile.read_session(Path(filename))
    if not sessionfile.restore(session, data, filename, reread, lambda: session.stop_requested):
        return Info(f"/session load stopped while rereading {filename}; nothing changed")
    session.follow_transcript()
    how = "its transcript read into this model" if reread else "continuing exactly"
    if reread and isinstance(data.get("adapt"), dict) and data["adapt"].get("learnt"):
        how += " (what it learnt with /adapt stays with its own model)"
    return Info(f"session loaded from {filename}: {session.transcript_length:,} characters, {how}")


def on_novelty(session, value):
    action, argument = value
    if action == "off":
        session.novelty = None
        return Info("novelty off")
    if action == "min":
        if session.novelty is None:
            raise CommandError("/novelty: turn it on first (/novelty on [CORPUS])")
        session.novelty.min_chars = argument
        return Info(f"novelty: copies of {argument} or more characters are underlined")
    return _novelty_on(session, argument)


def _novelty_on(session, corpus: str | None) -> Info:
    from charchat.chat.novelty import (
        MAX_INDEX_CHARS,
        NoveltyWatch,
        TextIndex,
        find_corpus,
    )
    from charchat.errors import Stopped
    from charchat.reading import read_text

    def should_stop() -> bool:
        return session.stop_requested

    try:
        if corpus:
            path = Path(corpus).expanduser()
        else:
            path = find_corpus(session.model.card, session.model.path, should_stop)
        text = read_text(path, 2, "novelty", MAX_INDEX_CHARS, should_stop)
        index = TextIndex.build(text, session.model.vocab, novelty_cache(), should_stop)
    except Stopped as e:
        return Info(f"/novelty on {e}; novelty is as it was")
    except CharchatError as e:
        raise CommandError(f"/novelty: {e}") from None
    min_chars = session.novelty.min_chars if session.novelty else None
    session.novelty = NoveltyWatch(index, path.name)
    if min_chars:
        session.novelty.min_chars = min_chars
    session.follow_transcript()
    return Info(
        f"novelty on: what the model writes is looked up in {path.name} "
        f"({len(index):,} characters); copies of {session.novelty.min_chars} or more "
        "characters are underlined"
    )


def on_cells(session, value):
    action, argument = value
    if action == "off":
        session.cell = None
        return Info("cells off")
    if action == "find":
        return looking.find_cells(session, argument)
    layer, cell = argument
    layers, hidden = session.model.config.layers, session.model.config.hidden
    if not (1 <= layer <= layers and 1 <= cell <= hidden):
        raise CommandError(
            f"/cells: this model has layers 1 to {layers} and cells 1 to {hidden} in each"
        )
    session.cell = (layer, cell)
    return looking.show_cell(session, layer, cell)


def on_help(session, name):
    return Info(commands.help_text(name))


def on_quit(session, _):
    return Quit()


def on_color(session, on: bool):
    session.surprise_colours = on
    return SurpriseColours(on)


def on_probs(session, n):
    return looking.probs(session, n or spec.PROBS_SHOWN.default)


def on_sweep(session, temperatures):
    return looking.sweep(session, temperatures or spec.SWEEP_TEMPERATURES)


def on_score(session, text: str):
    return looking.score(session, text)
