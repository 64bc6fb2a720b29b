"""Characters <-> ids, and the policy for characters a model has never seen."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from charchat.errors import CharchatError

# Typographic characters people paste that a plain-ASCII corpus spells differently.
_TYPOGRAPHIC = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u201f": '"',
    "\u2033": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "--",
    "\u2212": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\t": "    ",
}


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n")


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    mapped: dict[str, str]  # character typed -> what the model read instead
    dropped: list[str]  # characters with no sensible stand-in, in order of first appearance


class Vocab:
    """Every distinct character of a corpus, ordered by code point."""

    def __init__(self, chars: list[str]):
        if len(chars) < 1:
            raise CharchatError("a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise CharchatError("a vocabulary holds single characters only")
        if len(set(chars)) != len(chars):
            raise CharchatError("the vocabulary lists a character twice")
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self.index

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def encode_known(self, text: str) -> list[int]:
        """Ids of text every character of which is in the vocabulary (training data)."""
        return [self.index[c] for c in text]

    def stand_in(self, char: str) -> str | None:
        """What to read for a character the model never saw, or None to drop it."""
        candidates = [
            _TYPOGRAPHIC.get(char),
            unicodedata.normalize("NFKC", char),
            "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)),
        ]
        candidates += [c.lower() for c in candidates if c] + [c.upper() for c in candidates if c]
        for candidate in candidates:
            if candidate and candidate != char and all(c in self.index for c in candidate):
                return candidate
        return None

    def encode(self, text: str) -> Encoded:
        """Ids for a seed: unknown characters are mapped to a stand-in or dropped."""
        ids: list[int] = []
        mapped: dict[str, str] = {}
        dropped: list[str] = []
        for char in normalize_newlines(text):
            i = self.index.get(char)
            if i is not None:
                ids.append(i)
                continue
            substitute = self.stand_in(char)
            if substitute is None:
                if char not in dropped:
                    dropped.append(char)
                continue
            mapped[char] = substitute
            ids.extend(self.index[c] for c in substitute)
        return Encoded(ids, mapped, dropped)
