"""Tab completion from the command table, and the prompt's history file."""

from __future__ import annotations

from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.history import FileHistory, InMemoryHistory

from charchat.chat import commands
from charchat.paths import history_file
from charchat.settings import MODES


class CommandCompleter(Completer):
    """Commands after '/', model names after '/model ', modes after '/mode '."""

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        if not commands.is_command(text) or "\n" in text:
            return
        if " " not in text:
            for word in commands.completion_words():
                if word.startswith(text.lower()):
                    yield Completion(word + " ", start_position=-len(text), display=word)
            return
        name, _, arg = text.partition(" ")
        options: list[str] = []
        if name == "/model":
            from charchat.finding import available_models

            options = [n for n, _, _ in available_models()]
        elif name == "/mode":
            options = list(MODES)
        elif name in ("/color", "/colour"):
            options = ["on", "off"]
        elif name == "/help":
            options = [c.name for c in commands.COMMANDS]
        for option in options:
            if option.startswith(arg):
                yield Completion(option, start_position=-len(arg))


def history_for() -> FileHistory | InMemoryHistory:
    """The history file under the user's data folder; in memory where it can't be made."""
    path = history_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()
