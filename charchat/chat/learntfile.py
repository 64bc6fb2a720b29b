"""What a session learnt (/adapt), saved beside its session file: FILE.learnt.safetensors
holds the adapted weights and the learner's running mean squares (float32, no pickle); the
session file names it with its sha256, so that a session is its transcript plus what was
learnt from it, and /session load continues exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from charchat import settings as spec
from charchat.chat import adapting
from charchat.errors import CharchatError, CommandError
from charchat.files import file_sha256, write_file
from charchat.modelfile import (
    check_tensor_entries,
    read_safetensors_header,
    tensor_shapes,
    to_safetensors_bytes,
)

SUFFIX = ".learnt.safetensors"
FORMAT = "charchat-learnt"


def save(session, session_path: Path) -> dict | None:
    """Write what was learnt next to session_path; the session file's entry for it."""
    learning = session.adapting
    if learning is None:
        return None
    entry = {"on": learning.on, "lr": learning.lr, "stretch": learning.stretch}
    entry["learnt"] = learning.learnt
    if learning.learnt:
        path = session_path.with_name(session_path.name + SUFFIX)
        meta = {FORMAT: json.dumps({"characters": learning.learnt})}
        written = write_file(path, to_safetensors_bytes(learning.learner.snapshot(), meta))
        entry |= {"file": path.name, "sha256": file_sha256(written)}
    return entry


def read(entry, session_path: Path, model) -> dict:
    """The entry checked and its file read: {"on", "lr", "stretch", "learnt", "snapshot"}.
    Raises Damaged-style CharchatErrors that name what is wrong."""
    if not isinstance(entry, dict):
        raise CharchatError("not a mapping")
    if not isinstance(entry.get("on"), bool):
        raise CharchatError("on must be true or false")
    lr = spec.ADAPT_LR.check(entry.get("lr"))
    stretch = spec.ADAPT_STRETCH.check(entry.get("stretch"))
    learnt = entry.get("learnt")
    if isinstance(learnt, bool) or not isinstance(learnt, int) or learnt < 0:
        raise CharchatError("learnt is not a whole number")
    checked = {"on": entry["on"], "lr": lr, "stretch": stretch, "learnt": learnt, "snapshot": None}
    if learnt:
        checked["snapshot"] = _read_file(entry, session_path, model)
    return checked


def _read_file(entry: dict, session_path: Path, model) -> dict[str, np.ndarray]:
    name = entry.get("file")
    if not isinstance(name, str) or not re.fullmatch(r"[^/\\]+" + re.escape(SUFFIX), name):
        raise CharchatError("file is not the name of a learnt-state file")
    path = session_path.with_name(name)
    if not path.is_file():
        raise CharchatError(f"{path} is missing (it holds what the session learnt)")
    if file_sha256(path) != entry.get("sha256"):
        raise CharchatError(f"{path} is not the file this session saved (sha256 differs)")
    weights = tensor_shapes(model.config, len(model.vocab), True)
    expected = weights | {f"mean_square.{k}": shape for k, shape in weights.items()}
    header, start, size = read_safetensors_header(path)
    check_tensor_entries(path, header, expected, size - start)
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    if not all(np.isfinite(t).all() for t in tensors.values()):
        raise CharchatError(f"{path} holds NaN or infinite values")
    return tensors


def apply(session, learnt: dict | None) -> None:
    """Make what the session learnt the one read (None: nothing learnt, weights as loaded).
    Everything that can fail happens before the session changes."""
    if learnt is None:
        if session.adapting is not None:
            session.engine.load_weights(session.model.tensors)
        session.adapting = None
        return
    if session.make_learner is None:
        raise CommandError("this session learnt from its text (/adapt), which needs torch")
    try:
        learner = session.make_learner(session.model, learnt["lr"], learnt["stretch"])
    except CharchatError as e:
        raise CommandError(f"this session learnt from its text (/adapt), but {e}") from None
    learning = adapting.Adapting(learner, learnt["lr"], learnt["stretch"], learnt["on"])
    snapshot = (learnt["snapshot"], learnt["learnt"]) if learnt["learnt"] else None
    learning.restore(session.engine, snapshot)
    session.adapting = learning
