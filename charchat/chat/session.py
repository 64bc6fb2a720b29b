"""A session: a conversation (conversation.py) that takes lines as a person types them.

handle(line) yields plain events: a /command is parsed (commands.py) and applied
(actions.py); anything else is a prompt the model continues.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from charchat import settings as spec
from charchat.chat import actions, commands, looking, sessionfile
from charchat.chat.conversation import Conversation


class Session(Conversation):
    def handle(self, line: str) -> Iterator:
        """Events for one line typed or piped: a /command, or a prompt to continue."""
        self.stop_requested = False
        if commands.is_command(line) and "\n" not in line.strip():
            parsed = commands.parse(line)  # raises CommandError: nothing has changed
            return actions.apply(self, parsed.command.name, parsed.value)
        return self.turn(commands.prompt_text(line))

    # ---------------------------------------------------------- looking without touching

    def probs(self, n: int = spec.PROBS_SHOWN.default):
        return looking.probs(self, n)

    def sweep(self, temperatures) -> list:
        return list(looking.sweep(self, temperatures))

    def score(self, text: str):
        return looking.score(self, text)[0]


def load_session(path: Path, model_name: str | None = None, make_learner=None) -> Session:
    """A session from a file, on its own model (found by path, then name) or on model_name;
    make_learner: see Conversation (needed when the session learnt from its text)."""
    data = sessionfile.read_session(path)
    saved = data.get("model") if isinstance(data.get("model"), dict) else {}
    session = Session(sessionfile.find_model(saved, model_name))
    session.make_learner = make_learner
    sessionfile.restore(session, data, path, reread=model_name is not None)
    return session
