"""Saved sessions: everything needed to continue exactly where a session was left.

One JSON file (no pickle), written atomically: the transcript, every setting, the random
generator's state, the model's state (float32, base64) and undo points, and the model's
identity (name and the sha256 of its file). Loaded into the same model, the session goes on
writing exactly what it would have written had it never stopped.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from charchat import settings as spec
from charchat.commands import CommandError
from charchat.errors import CharchatError
from charchat.modelfile import Model, atomic_write, load_model, resolve_model
from charchat.session import Session, Transcript, Turn
from charchat.settings import Settings

FORMAT = "charchat-session"
FORMAT_VERSION = 1
MAX_SESSION_BYTES = 64 * 1024 * 1024


def file_sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pack(state: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(state, dtype="<f4").tobytes()).decode("ascii")


def _unpack(text: str, shape: tuple[int, ...]) -> np.ndarray:
    raw = base64.b64decode(text.encode("ascii"), validate=True)
    state = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if state.size != int(np.prod(shape)) or not np.isfinite(state).all():
        raise ValueError("state of the wrong size")
    return state.reshape(shape)


def save_session(session: Session, path: Path) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        raise CommandError(f"{path} is a directory")
    m = session.model
    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": m.name, "path": str(m.path or ""), "sha256": file_sha256(m.path)},
        "transcript": session.transcript,
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
            {"state": _pack(t.snapshot), "length": t.transcript_length} for t in session.turns
        ],
    }
    atomic_write(path, json.dumps(data, ensure_ascii=False).encode("utf-8"))
    return path


def read_session(path: Path) -> dict:
    """The saved data, checked: one clear CommandError for anything wrong with the file."""
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()[: MAX_SESSION_BYTES + 1]
    except OSError as e:
        raise CommandError(f"cannot read {path}: {e.strerror}") from None
    if len(raw) > MAX_SESSION_BYTES:
        raise CommandError(f"{path} is too large to be a session")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CommandError(f"{path} is not a charchat session (not JSON)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CommandError(f"{path} is not a charchat session")
    if data.get("format_version") != FORMAT_VERSION:
        raise CommandError(
            f"{path}: session format {data.get('format_version')!r} is not supported "
            f"(this charchat reads version {FORMAT_VERSION})"
        )
    return data


def restore(session: Session, data: dict, path: Path, reread: bool = False) -> None:
    """Make session the saved one, in place, or change nothing and raise a CommandError.

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
    try:
        settings = Settings(**data["settings"]).check()
        length = spec.LENGTH.check(data["length"])
        seed = data["seed"] if data["seed"] is None else spec.SEED.check(data["seed"])
        transcript = data["transcript"]
        stops = tuple(data["stops"])
        norepeat = spec.NO_REPEAT.check(data["norepeat"])
        speed = float(spec.SPEED.check(data["speed"]))
        if not isinstance(transcript, str) or not all(isinstance(s, str) and s for s in stops):
            raise TypeError
        rng = np.random.default_rng()
        rng.bit_generator.state = data["rng"]
        shape = session.engine.state.shape
        if same_model:
            state = _unpack(data["state"], shape)
            turns = [Turn(_unpack(t["state"], shape), int(t["length"])) for t in data["turns"]]
        colours = bool(data["surprise_colours"])
    except (KeyError, TypeError, ValueError, CharchatError) as e:
        raise CommandError(f"{path}: the session file is damaged ({e or 'malformed'})") from None
    if any(c not in session.model.vocab for c in set(transcript)):
        raise CommandError(f"{path}: the transcript has characters this model does not know")
    session.settings, session.length, session.seed = settings, length, seed
    session.stops, session.norepeat, session.surprise_colours = stops, norepeat, colours
    session.speed = speed
    session.rng = rng
    session._transcript = Transcript()
    session._transcript.append(transcript)
    session._ngrams = None
    if same_model:
        session.engine.restore(state)
        session.turns = turns
    else:
        session.engine.reset()
        session.engine.feed_many(session.model.vocab.encode_known(transcript))
        session.turns = []


def load_session(path: Path, model_spec: str | None = None) -> Session:
    """A session from a file, on its own model (found by path, then name) or on model_spec."""
    data = read_session(path)
    saved = data.get("model") if isinstance(data.get("model"), dict) else {}
    model = _find_model(saved, model_spec)
    session = Session(model)
    restore(session, data, path, reread=model_spec is not None)
    return session


def _find_model(saved: dict, model_spec: str | None) -> Model:
    if model_spec:
        return load_model(resolve_model(model_spec))
    for spec_ in (saved.get("path"), saved.get("name")):
        if isinstance(spec_, str) and spec_:
            try:
                model = load_model(resolve_model(spec_))
            except CharchatError:
                continue
            if file_sha256(model.path) == saved.get("sha256"):
                return model
    raise CommandError(
        f"the session's model {saved.get('name')!r} (sha256 {str(saved.get('sha256'))[:12]}…) "
        "is not here; name one with -m to read the transcript into it"
    )
