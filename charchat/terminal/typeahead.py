"""Lines typed while something runs, kept whole with their Enter, as a shell keeps typeahead.

While a turn streams or a command works, the terminal is raw and the REPL reads every key. Keys
that steer (↑↓, ←→, Tab, Esc, Ctrl+C) act at once; everything else is typed here. When the
action ends, the finished lines run in order, and the unfinished one waits at the next prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHOWN_MOST = 40  # characters of what is waiting shown in the status bar


@dataclass
class Typeahead:
    lines: list[str] = field(default_factory=list)  # finished with Enter, oldest first
    partial: str = ""  # typed since the last Enter
    leave: bool = False  # Ctrl+D was pressed: leave once the finished lines have run

    def type(self, text: str) -> None:
        self.partial += text

    def backspace(self) -> None:
        self.partial = self.partial[:-1]

    def clear_partial(self) -> None:
        self.partial = ""

    def enter(self) -> None:
        self.lines.append(self.partial)
        self.partial = ""

    def next_line(self) -> str | None:
        """The oldest finished line, taken out; None when none is waiting."""
        return self.lines.pop(0) if self.lines else None

    def take_partial(self) -> str:
        partial, self.partial = self.partial, ""
        return partial

    def __bool__(self) -> bool:
        return bool(self.lines or self.partial or self.leave)

    def summary(self) -> str:
        """What is waiting, for the status bar: each finished line ends in ⏎."""
        if not self:
            return ""
        shown = " ".join(line + "⏎" for line in self.lines) + (
            (" " if self.lines else "") + self.partial
        )
        if len(shown) > SHOWN_MOST:
            shown = "…" + shown[-(SHOWN_MOST - 1) :]
        count = len(self.lines)
        lines = f"{count} line{'s' if count != 1 else ''} waiting" if count else "typed"
        leaving = ", then Ctrl+D leaves" if self.leave else ""
        return f"{lines}: {shown}{leaving}"
