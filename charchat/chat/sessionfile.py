"""Saved sessions: everything needed to continue exactly where a session was left.

One JSON file (no pickle), written atomically: the transcript, every setting, the random
generator's state, the model's state (float32, base64) and undo points, and the model's
identity (name and the sha256 of its file). Loaded into the same model, the session goes on
writing exactly what it would have written had it never stopped.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from charchat import settings as spec
from charchat.chat import adapting, learntfile
from charchat.chat.conversation import Conversation
from charchat.chat.engine import Engine
from charchat.chat.transcript import Transcript, Turn
from charchat.errors import CharchatError, CommandError
from charchat.files import file_sha256, write_file
from charchat.finding import resolve_model
from charchat.modelfile import Model, load_model
from charchat.reading import check_regular
from charchat.settings import Settings

FORMAT = "charchat-session"
FORMAT_VERSION = 1
MAX_SESSION_BYTES = 64 * 1024 * 1024


def _pack(state: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(state, dtype="<f4").tobytes()).decode("ascii")


def _unpack(text: str, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(text, str):
        raise Damaged("a model state is not text")
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    state = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if state.size != int(np.prod(shape)) or not np.isfinite(state).all():
        raise Damaged("a model state of the wrong size, or not finite")
    return state.reshape(shape)


def save_session(session: Conversation, path: Path) -> Path:
    """Write the session to path (see files.py for the rule on what may be replaced), and
    what it learnt (/adapt) beside it (learntfile.py)."""
    path = Path(path).expanduser()
    m = session.model
    transcript = session.transcript[-spec.TRANSCRIPT_KEEP :]
    start = session.transcript_length - len(transcript)  # undo points count from here
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": m.name, "path": str(m.path or ""), "sha256": file_sha256(m.path)},
        "transcript": transcript,
        "settings": asdict(session.settings),
        "length": session.length,
        "seed": session.seed,
        "surprise_colours": session.surprise_colours,
        "stops": list(session.stops),
        "norepeat": session.norepeat,
        "speed": session.speed,
        "rng": session.rng.bit_generator.state,
        "state": _pack(session.engine.state),
        "turns": [
            {
                "state": _pack(t.snapshot),
                "length": t.transcript_length - start,
                "prompt": t.prompt,
                "learnt": t.learning is not None,
            }
            for t in session.turns
            if t.transcript_length >= start
        ],
        "adapt": learntfile.save(session, path),
    }
    return write_file(path, json.dumps(data, ensure_ascii=False).encode())


def read_session(path: Path) -> dict:
    """The saved data, checked: one clear CommandError for anything wrong with the file."""
    path = Path(path).expanduser()
    try:
        check_regular(path, "/session load")
        with open(path, "rb") as f:
            raw = f.read(MAX_SESSION_BYTES + 1)  # a pipe or a huge file is not read to its end
    except CharchatError as e:
        raise CommandError(str(e)) from None
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror}") from None
    if len(raw) > MAX_SESSION_BYTES:
        raise CommandError(f"{path} is larger than {MAX_SESSION_BYTES >> 20} MB: not a session")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CommandError(f"{path} is not a charchat session (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CommandError(f"{path} is not a charchat session")
    if data.get("format_version") != FORMAT_VERSION:
        raise CommandError(
            f"{path}: session format {data.get('format_version')!r} is not supported "
            f"(this charchat reads version {FORMAT_VERSION})"
        )
    return data


def restore(
    session: Conversation, data: dict, path: Path, reread: bool = False, should_stop=lambda: False
) -> bool:
    """Make session the saved one, in place, or change nothing and raise a CommandError. False
    when should_stop() ended the rereading first (nothing changed then either).

    The session's model must be the saved model's file (same sha256); with reread, the
    transcript is read afresh into the current model instead (settings kept, undo lost)."""
    saved = data.get("model") if isinstance(data.get("model"), dict) else {}
    same_model = saved.get("sha256") is not None and saved["sha256"] == file_sha256(
        session.model.path
    )
    if not same_model and not reread:
        raise CommandError(
            f"{path} was saved with model {saved.get('name')!r}, whose file is not the one in "
            f"use ({session.model.name}); switch with /model, or add 'reread' to read its "
            "transcript into this model"
        )
    fields = _checked(data, path, session.engine.state.shape, same_model)
    if any(c not in session.model.vocab for c in set(fields["transcript"])):
        raise CommandError(f"{path}: the transcript has characters this model does not know")
    learnt = None
    if same_model and data.get("adapt") is not None:
        try:
            learnt = learntfile.read(data["adapt"], Path(path).expanduser(), session.model)
        except CharchatError as e:
            raise CommandError(f"{path}: the session file is damaged: adapt: {e}") from None
    if not same_model:
        fields["state"] = _reread(session, fields["transcript"], should_stop)
        if fields["state"] is None:
            return False
        fields["turns"] = []
    learntfile.apply(session, learnt)  # the last step that can fail
    session.settings, session.length, session.seed = (
        fields["settings"],
        fields["length"],
        fields["seed"],
    )
    session.stops, session.norepeat = tuple(fields["stops"]), fields["norepeat"]
    session.surprise_colours, session.speed = fields["surprise_colours"], fields["speed"]
    session.rng = fields["rng"]
    session._transcript = Transcript()
    session._transcript.append(fields["transcript"])
    session._ngrams = None
    session.engine.restore(fields["state"])
    session.turns = fields["turns"]
    return True


REREAD_CHUNK = 4096  # characters read between looks at should_stop


def _reread(session: Conversation, transcript: str, should_stop) -> np.ndarray | None:
    """The state after reading transcript from the start with the model's weights as loaded
    (what this session learnt is not the saved session's); None when stopped."""
    engine = Engine(session.model)
    ids = session.model.vocab.encode_known(transcript)
    for start in range(0, len(ids), REREAD_CHUNK):
        if should_stop():
            return None
        engine.feed_many(ids[start : start + REREAD_CHUNK])
    return engine.state.copy()


def _checked(data: dict, path: Path, shape: tuple[int, ...], same_model: bool) -> dict:
    """Every field the session needs, checked whole before any is applied; a CommandError
    that names the field and what is wrong with it."""
    checks = {
        "settings": lambda v: Settings(**_mapping(v)).check(),
        "length": _length,
        "seed": lambda v: v if v is None else spec.SEED.check(v),
        "transcript": _transcript,
        "stops": _stops,
        "norepeat": spec.NO_REPEAT.check,
        "speed": lambda v: float(spec.SPEED.check(v)),
        "surprise_colours": _flag,
        "rng": _generator,
    }
    if same_model:
        checks["state"] = lambda v: _unpack(v, shape)
        checks["turns"] = lambda v: _turns(v, shape)
    fields = {}
    for name, check in checks.items():
        if name not in data:
            raise CommandError(f"{path}: the session file is damaged: it has no {name}")
        try:
            fields[name] = check(data[name])
        except Exception as e:  # noqa: BLE001 (numpy's generator state raises several kinds)
            reason = str(e) if isinstance(e, (CharchatError, Damaged)) else "not valid"
            raise CommandError(f"{path}: the session file is damaged: {name}: {reason}") from None
    for turn in fields.get("turns", []):
        if turn.transcript_length > len(fields["transcript"]):
            raise CommandError(
                f"{path}: the session file is damaged: turns: an undo point lies past the end "
                "of the transcript"
            )
    return fields


class Damaged(ValueError):
    """What is wrong with one field of a session file, in words."""


def _mapping(value) -> dict:
    if not isinstance(value, dict):
        raise Damaged("not a mapping")
    return value


def _flag(value) -> bool:
    if not isinstance(value, bool):
        raise Damaged("must be true or false")
    return value


def _length(value) -> float:
    if value == math.inf:
        return math.inf  # /len inf
    return spec.LENGTH.check(value)


def _transcript(value) -> str:
    if not isinstance(value, str):
        raise Damaged("not text")
    if len(value) > spec.TRANSCRIPT_KEEP:
        raise Damaged(f"longer than the {spec.TRANSCRIPT_KEEP:,} characters a session keeps")
    return value


def _stops(value) -> list[str]:
    if not isinstance(value, list):
        raise Damaged("not a list of strings")
    if len(value) > spec.STOPS_MOST:
        raise Damaged(f"more than {spec.STOPS_MOST} stop strings")
    if not all(isinstance(s, str) and 0 < len(s) <= spec.STOP_CHARS for s in value):
        raise Damaged(f"each must be text of 1 to {spec.STOP_CHARS:,} characters")
    return value


def _generator(value) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = _mapping(value)  # numpy checks it whole
    return rng


def _turns(value, shape: tuple[int, ...]) -> list[Turn]:
    if not isinstance(value, list):
        raise Damaged("not a list")
    if len(value) > spec.UNDO_KEEP:
        raise Damaged(f"more than the {spec.UNDO_KEEP} undo points a session keeps")
    turns = []
    for turn in value:
        length = _mapping(turn).get("length")
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise Damaged("an undo point's length is not a whole number")
        prompt = turn.get("prompt", "")
        if not isinstance(prompt, str) or len(prompt) > spec.MAX_PROMPT_CHARS:
            raise Damaged("an undo point's prompt is not text")
        learnt = adapting.GONE if turn.get("learnt") is True else None  # taught: not undoable
        turns.append(Turn(_unpack(turn.get("state"), shape), length, prompt, learnt))
    return turns


def find_model(saved: dict, model_name: str | None) -> Model:
    if model_name:
        return load_model(resolve_model(model_name))
    for name_or_path in (saved.get("path"), saved.get("name")):
        if isinstance(name_or_path, str) and name_or_path:
            try:
                model = load_model(resolve_model(name_or_path))
            except CharchatError:
                continue
            if file_sha256(model.path) == saved.get("sha256"):
                return model
    raise CommandError(
        f"the session's model {saved.get('name')!r} (sha256 {str(saved.get('sha256'))[:12]}…) "
        "is not here; name one with -m to read the transcript into it"
    )
