"""Learning from what a person types (/adapt): every stretch of a prompt is read, then
learnt from (one step of the learner), so the model keeps the text at hand in its weights.
Never the model's own text: it would learn its own mistakes.

The arithmetic is the torch half's (train/adapt.py): the edge that starts a chat gives the
session `make_learner(model, lr, stretch)`, and torch is imported only when learning starts.
This module keeps the chat's side of it: on or off, how much was learnt, and undo points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charchat import settings as spec
from charchat.errors import CharchatError, CommandError
from charchat.events import Info
from charchat.files import file_sha256

SNAPSHOT_BYTES = 256 * 1024 * 1024  # undo points of what was learnt, kept at most
GONE = "gone"  # a turn's learning whose undo point was let go to keep within that


def settings_for(model, lr: float | None = None, stretch: int | None = None) -> tuple:
    """(lr, stretch): those given, else those the model's card was fitted with, else the
    defaults (chosen on text of another author; benchmarks/README.md)."""
    fitted = model.card.get("adapt_settings")
    fitted = fitted if isinstance(fitted, dict) else {}
    chosen = []
    for setting, given in ((spec.ADAPT_LR, lr), (spec.ADAPT_STRETCH, stretch)):
        if given is None:
            try:
                given = setting.check(fitted.get(setting.field.removeprefix("adapt_")))
            except CharchatError:  # absent or unusable: the default
                given = setting.default
        chosen.append(given)
    return tuple(chosen)


@dataclass
class Adapting:
    learner: object  # train/adapt.ChatLearner, or one like it
    lr: float
    stretch: int  # characters read, then learnt from, at a time
    on: bool = True
    learnt: int = 0  # characters learnt from since the model was loaded

    def learn(self, engine, ids, before: np.ndarray, read: bool = True) -> None:
        """Learn from ids, read from the state `before`; the engine takes the new weights.
        read: the engine has read them already (with the weights before this step); if not,
        it takes the learner's state after them, computed with those same weights."""
        _, after = self.learner.learn(np.asarray(ids, dtype=np.int64), before)
        if not read:
            engine.restore(after)
        engine.load_weights(self.learner.weights())
        self.learnt += len(ids)

    def snapshot(self) -> tuple[dict, int]:
        return self.learner.snapshot(), self.learnt

    def restore(self, engine, snapshot: tuple[dict, int] | None) -> None:
        """Back to a snapshot; None: the weights as loaded."""
        self.learner.restore(None if snapshot is None else snapshot[0])
        self.learnt = 0 if snapshot is None else snapshot[1]
        engine.load_weights(self.learner.weights())

    def status(self) -> str:
        if self.on:
            return f"learning · {self.learnt:,} chars learnt"
        return f"learnt from {self.learnt:,} chars (off)"


def start(session, lr: float, stretch: int) -> Adapting:
    """session.adapting, made now if it was not (the learner is made once per model)."""
    if session.adapting is None:
        if session.make_learner is None:
            raise CommandError("/adapt: learning needs the training part of charchat (torch)")
        try:
            learner = session.make_learner(session.model, lr, stretch)
        except CharchatError as e:
            raise CommandError(str(e)) from None
        session.adapting = Adapting(learner, lr, stretch)
    session.adapting.on = True
    return session.adapting


def before_learning(session, turn) -> None:
    """Keep what was learnt before this turn taught anything, as its undo point; within
    SNAPSHOT_BYTES, the oldest undo points let go of theirs (GONE: cannot be undone)."""
    if turn.learning is not None:
        return
    snapshot = session.adapting.snapshot()
    turn.learning = snapshot
    size = sum(a.nbytes for a in snapshot[0].values())
    kept = [t for t in session.turns if isinstance(t.learning, tuple)]
    for old in kept[: max(0, len(kept) - max(1, SNAPSHOT_BYTES // size))]:
        old.learning = GONE


def check_undo(turn) -> None:
    """A CommandError when what turn taught can no longer be taken back."""
    if turn.learning == GONE:
        raise CommandError(
            "/undo: what that turn taught the model can no longer be taken back (a loaded "
            "session keeps none, and undo points of learning are kept within 256 MB); "
            "/adapt reset goes back to the weights as loaded"
        )


def undo_learning(session, turn) -> None:
    """Take back what turn taught (check_undo said it can be)."""
    if isinstance(turn.learning, tuple):
        session.adapting.restore(session.engine, turn.learning)


def forget_undo_points(session) -> None:
    for turn in session.turns:
        turn.learning = None


def forget_learning(session) -> None:
    """/adapt reset: the weights as loaded; no turn has anything left to take back."""
    if session.adapting is not None:
        session.adapting.restore(session.engine, None)
    forget_undo_points(session)


def save_adapted(session, name: str) -> Path:
    """The adapted model as a model file: a path, or a name among the user's models."""
    from charchat.finding import looks_like_path
    from charchat.modelfile import SUFFIX, Model, save_model
    from charchat.paths import user_models_dir

    learning = session.adapting
    if learning is None or not learning.learnt:
        raise CommandError("/adapt save: nothing learnt yet (/adapt on, then type or paste)")
    path = Path(name).expanduser() if looks_like_path(name) else user_models_dir() / name
    path = path if path.suffix == SUFFIX else path.with_name(path.name + SUFFIX)
    if path.exists():
        raise CommandError(f"/adapt save: {path} exists; choose another name")
    parent = session.model
    card = dict(parent.card)
    card["corpus"] = f"{card.get('corpus', 'unknown text')} + {learning.learnt:,} chars read"
    card["adapted_from"] = {
        "name": parent.name,
        "sha256": file_sha256(parent.path),
        "characters": learning.learnt,
        "lr": learning.lr,
        "stretch": learning.stretch,
    }
    tensors = {k: v.copy() for k, v in learning.learner.weights().items()}
    adapted = Model(parent.vocab, parent.config, tensors, card)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_model(adapted, path)
    except OSError as e:
        raise CommandError(f"/adapt save: cannot write {path}: {e.strerror}") from None
    except CharchatError as e:
        raise CommandError(f"/adapt save: {e}") from None


def command(session, value) -> Info:
    """/adapt [on|off|reset|save NAME]."""
    action, name = value
    learning = session.adapting
    if action == "on":
        learning = start(session, *session.adapt_settings)
        return Info(
            f"adapt on: what you type is learnt from once read (lr {learning.lr:g}, stretches "
            f"of {learning.stretch}); {learning.learnt:,} characters learnt so far"
        )
    if action == "off":
        if learning is not None:
            learning.on = False
        return Info("adapt off: what was learnt is kept (/adapt reset forgets it)")
    if action == "reset":
        forget_learning(session)
        return Info("adapt: back to the weights as loaded; nothing learnt")
    if action == "save":
        path = save_adapted(session, name)
        return Info(f"saved the adapted model to {path} ({learning.learnt:,} characters learnt)")
    if learning is None:
        return Info("adapt off: nothing learnt (/adapt on learns from what you type)")
    return Info(f"adapt: {learning.status()}")
