"""Is it copying? Verbatim matches of generated text in the training text.

A suffix array over the training text (in the model's character ids) answers "does this
string occur in it?" by binary search. While text is written, a Matcher keeps the longest
stretch ending at the last character that occurs verbatim; a character belongs to a copied
span when such a stretch of at least `min_chars` covers it. The array is built once per text
and kept in the user's cache directory, keyed by the text's hash.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charchat.apart import run_apart
from charchat.errors import CharchatError, Stopped
from charchat.events import Info
from charchat.files import replacing
from charchat.settings import NOVELTY_MIN
from charchat.vocab import Vocab

DEFAULT_MIN_CHARS = NOVELTY_MIN.default
MAX_INDEX_CHARS = 50_000_000  # 4 bytes of index a character, built in memory
UNKNOWN = 255  # a character the model's vocabulary lacks: never matches generated text
MATCH_KEPT = 4096  # longer copies are reported as this long
FOLLOW_TAIL = 512  # characters of read text followed for a copy the model might continue


def _never() -> bool:
    return False


def suffix_array(ids: np.ndarray, should_stop=_never) -> np.ndarray:
    """Start positions of all suffixes of ids in sorted order (prefix doubling); should_stop()
    is asked between doublings (Stopped)."""
    n = len(ids)
    rank = ids.astype(np.int64)
    order = np.argsort(rank, kind="stable")
    span = 1
    while True:
        if should_stop():
            raise Stopped("stopped while indexing the text")
        second = np.full(n, -1, dtype=np.int64)
        second[: n - span] = rank[span:]
        order = np.lexsort((second, rank))
        r, s = rank[order], second[order]
        new_group = np.empty(n, dtype=bool)
        new_group[0] = True
        new_group[1:] = (r[1:] != r[:-1]) | (s[1:] != s[:-1])
        ranks_sorted = np.cumsum(new_group) - 1
        rank = np.empty(n, dtype=np.int64)
        rank[order] = ranks_sorted
        if ranks_sorted[-1] == n - 1 or span >= n:
            return order.astype(np.int32)
        span *= 2


class TextIndex:
    """The training text as bytes (one per character id) and its suffix array."""

    def __init__(self, text: bytes, array: np.ndarray):
        self.text, self.array = text, array

    @classmethod
    def build(
        cls, text: str, vocab: Vocab, cache: Path | None = None, should_stop=_never
    ) -> TextIndex:
        if len(vocab) >= UNKNOWN:
            raise CharchatError(
                f"novelty works with vocabularies of up to {UNKNOWN - 1} characters; this "
                f"model has {len(vocab)}"
            )
        if len(text) > MAX_INDEX_CHARS:
            raise CharchatError(
                f"the text has {len(text):,} characters; novelty indexes at most "
                f"{MAX_INDEX_CHARS:,}"
            )
        table = np.full(0x110000, UNKNOWN, dtype=np.uint8)
        table[[ord(c) for c in vocab.chars]] = np.arange(len(vocab), dtype=np.uint8)
        ids = table[np.frombuffer(text.encode("utf-32-le"), dtype="<u4")]
        data = ids.tobytes()
        key = hashlib.sha256(data + "".join(vocab.chars).encode()).hexdigest()
        path = cache / f"{key}.npy" if cache else None
        if path is not None and path.is_file():
            try:
                array = np.load(path, allow_pickle=False)
                if array.shape == (len(ids),):
                    return cls(data, array)
            except (OSError, ValueError):
                pass  # rebuilt below
        if len(ids) > BUILT_APART_FROM:
            array = _suffix_array_apart(ids, should_stop)
        else:
            array = suffix_array(ids, should_stop)
        if path is not None:
            _save_atomically(path, array)
        return cls(data, array)

    def __len__(self) -> int:
        return len(self.text)

    def occurs(self, pattern: bytes) -> bool:
        """Whether pattern occurs in the text (binary search for the first suffix >= it)."""
        text, array, size = self.text, self.array, len(pattern)
        lo, hi = 0, len(array)
        while lo < hi:
            mid = (lo + hi) // 2
            start = int(array[mid])
            if text[start : start + size] < pattern:
                lo = mid + 1
            else:
                hi = mid
        if lo == len(array):
            return False
        start = int(array[lo])
        return text[start : start + size] == pattern


BUILT_APART_FROM = 1_000_000  # characters; a longer text is indexed in a process of its own
BUILDER = (
    "import sys; sys.path.insert(0, sys.argv[1]); import numpy as np; "
    "from charchat.chat.novelty import suffix_array; "
    "np.save(sys.argv[3], suffix_array(np.load(sys.argv[2])), allow_pickle=False)"
)


def _suffix_array_apart(ids: np.ndarray, should_stop) -> np.ndarray:
    """suffix_array in a process of its own: one sorting pass over tens of millions of
    characters holds numpy for seconds, and Ctrl+C must end it at once."""
    package_parent = str(Path(__file__).resolve().parents[2])
    with tempfile.TemporaryDirectory(prefix="charchat-index-") as folder:
        given, made = Path(folder) / "ids.npy", Path(folder) / "array.npy"
        np.save(given, ids, allow_pickle=False)
        code, _ = run_apart(
            BUILDER,
            [package_parent, str(given), str(made)],
            None,
            should_stop,
            "stopped while indexing the text",
        )
        if code != 0 or not made.is_file():
            raise CharchatError("indexing the text failed (is memory short?)")
        return np.load(made, allow_pickle=False)


def _save_atomically(path: Path, array: np.ndarray) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as temporary, open(temporary, "wb") as f:
            np.save(f, array, allow_pickle=False)
    except (OSError, CharchatError):
        pass  # a cache that cannot be written only costs the next run the build


class Matcher:
    """Follows written text: the longest stretch ending at its last character that occurs
    verbatim in the indexed text (followed up to MATCH_KEPT characters back)."""

    def __init__(self, index: TextIndex, min_chars: int = DEFAULT_MIN_CHARS):
        self.index, self.min_chars = index, min_chars
        self.match = b""

    def push(self, char_id: int) -> int:
        """Read one character; the length of the verbatim stretch ending at it."""
        pattern = (self.match + bytes([char_id]))[-MATCH_KEPT:]
        while pattern and not self.index.occurs(pattern):
            pattern = pattern[1:]
        self.match = pattern
        return len(pattern)

    def reset(self) -> None:
        self.match = b""


class NoveltyWatch:
    """A session's view of copying: follows the transcript, marks what the model writes."""

    def __init__(self, index: TextIndex, corpus: str, min_chars: int = DEFAULT_MIN_CHARS):
        self.matcher = Matcher(index, min_chars)
        self.corpus = corpus  # the text's name, for messages
        self.turn_longest = 0  # the longest verbatim stretch the model wrote in this turn

    @property
    def min_chars(self) -> int:
        return self.matcher.min_chars

    @min_chars.setter
    def min_chars(self, value: int) -> None:
        self.matcher.min_chars = value

    def follow(self, ids) -> None:
        """Text read or restored: only its end can begin a copy the model continues."""
        self.matcher.reset()
        for i in list(ids)[-FOLLOW_TAIL:]:
            self.matcher.push(int(i))

    def start_turn(self) -> None:
        self.turn_longest = 0

    def wrote(self, char_id: int) -> bool:
        """The model wrote char_id: whether it lies in a copied span (so far)."""
        length = self.matcher.push(char_id)
        self.turn_longest = max(self.turn_longest, length)
        return length >= self.matcher.min_chars

    def turn_note(self) -> list[Info]:
        """At a turn's end: its longest copy, if it is one worth naming."""
        if self.turn_longest < self.min_chars:
            return []
        return [
            Info(
                f"novelty: the longest copy this turn is {self.turn_longest} characters "
                f"found verbatim in {self.corpus}"
            )
        ]


@dataclass(frozen=True)
class Novelty:
    """What of a written text occurs verbatim in the indexed text."""

    lengths: list[int]  # per character: the verbatim stretch ending at it
    min_chars: int

    @property
    def spans(self) -> list[tuple[int, int]]:
        """[start, end) of every copied span (stretches of at least min_chars), merged."""
        merged: list[list[int]] = []
        for end, length in enumerate(self.lengths, start=1):
            if length >= self.min_chars:
                start = end - length
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = end
                else:
                    merged.append([start, end])
        return [(a, b) for a, b in merged]

    @property
    def longest(self) -> int:
        return max(self.lengths, default=0)

    @property
    def copied_share(self) -> float:
        return sum(b - a for a, b in self.spans) / max(1, len(self.lengths))


def novelty_of(index: TextIndex, ids, min_chars: int = DEFAULT_MIN_CHARS) -> Novelty:
    matcher = Matcher(index, min_chars)
    return Novelty([matcher.push(int(i)) for i in ids], min_chars)


def find_corpus(card: dict, model_path: Path | None, should_stop=_never) -> Path:
    """The training text a model card names, looked for by name and checked by hash in the
    current folder, the model's folder and the folders in $CHARCHAT_CORPORA."""
    from charchat.reading import read_text

    name, sha = card.get("corpus"), card.get("corpus_sha256")
    if not name or not sha:
        raise CharchatError("the model card does not name its training text; give its path")
    folders = [Path.cwd()] + ([model_path.parent] if model_path else [])
    folders += [Path(p) for p in os.environ.get("CHARCHAT_CORPORA", "").split(os.pathsep) if p]
    for folder in folders:
        candidate = folder / name
        if candidate.is_file():
            text = read_text(candidate, 2, "novelty", MAX_INDEX_CHARS, should_stop)
            if hashlib.sha256(text.encode("utf-8")).hexdigest() == sha:
                return candidate
    where = ", ".join(str(f) for f in folders)
    raise CharchatError(
        f"cannot find {name} (sha256 {sha[:12]}…) in {where}; give its path or set CHARCHAT_CORPORA"
    )
