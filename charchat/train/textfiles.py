"""Text files -> one stream of character ids, read in a streaming pass and cached by content.

A corpus is one or more files (a folder stands for the files under it). Each is read in
chunks, so a corpus of hundreds of megabytes never sits in memory as a Python string: the
first pass finds the vocabulary, the second writes one id per character (uint8 when the
vocabulary fits, else uint16). Large corpora keep that id file in the user's cache
directory, keyed by the files' contents, and later runs memory-map it instead of reading
the text again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charchat import reading
from charchat.errors import CharchatError
from charchat.files import replacing, write_file
from charchat.paths import corpus_cache
from charchat.reading import check_regular, decoded_chunks
from charchat.vocab import Vocab

CACHE_FROM_BYTES = 32 << 20  # smaller corpora are encoded afresh each run, in memory
CACHE_FORMAT = 1
UNICODE_SIZE = 0x110000


@dataclass(frozen=True)
class Document:
    name: str
    start: int  # position of its first character in the id stream
    end: int


@dataclass
class EncodedText:
    vocab: Vocab
    ids: np.ndarray  # uint8 or uint16, one per character, all documents in order
    documents: list[Document]
    sha256: str  # of the text as read (UTF-8, BOM dropped, LF newlines), all files in order
    name: str

    @classmethod
    def from_text(cls, text: str, name: str = "text") -> EncodedText:
        points = code_points(text)
        vocab = _vocab_of(np.bincount(points) > 0 if len(points) else np.zeros(0, bool))
        ids = id_table(vocab)[points] if len(points) else np.zeros(0, np.uint8)
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(vocab, ids, [Document(name, 0, len(ids))], sha, name)

    def text(self, start: int, end: int) -> str:
        return self.vocab.decode(self.ids[start:end].tolist())


def corpus_files(paths: list[Path]) -> list[Path]:
    """The files a list of paths names, a folder standing for its files (sorted, recursive,
    hidden names left out)."""
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise CharchatError(f"no such file: {path}")
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise CharchatError(f"{path} holds no files to learn from")
            files += found
        else:
            check_regular(path, "training")
            files.append(path)
    return files


def read_corpus(paths: list[Path], min_chars: int = 2) -> EncodedText:
    """All the text of the files paths name, as ids; large corpora come from the cache."""
    files = corpus_files(paths)
    name = files[0].name if len(files) == 1 else f"{files[0].name} and {len(files) - 1} more"
    raw_hashes, size = [], 0
    for path in files:
        digest, nbytes = _raw_digest(path)
        raw_hashes.append(digest)
        size += nbytes
    key = hashlib.sha256(json.dumps([CACHE_FORMAT, raw_hashes]).encode()).hexdigest()
    cached = _load_cached(key, files) if size >= CACHE_FROM_BYTES else None
    encoded = cached or _encode(files, name, key if size >= CACHE_FROM_BYTES else None)
    encoded.name = name
    if len(encoded.ids) < min_chars:
        what = "empty" if not len(encoded.ids) else f"too short ({len(encoded.ids)} characters)"
        raise CharchatError(f"{name} is {what}; training needs at least {min_chars} characters")
    return encoded


# ------------------------------------------------------------------ reading


def _raw_digest(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    try:
        with open(path, "rb") as f:
            while block := f.read(reading.CHUNK_BYTES):
                h.update(block)
                n += len(block)
    except OSError as e:
        raise CharchatError(f"cannot read {path}: {e.strerror}") from None
    return h.hexdigest(), n


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _vocab_of(seen: np.ndarray) -> Vocab:
    return Vocab([chr(c) for c in np.flatnonzero(seen)]) if seen.any() else Vocab([" "])


def id_table(vocab: Vocab, dtype=None, missing: int = 0) -> np.ndarray:
    """Each code point's id in vocab (missing for characters outside it), indexed by code
    point; the smallest unsigned dtype that holds the ids unless one is given."""
    if dtype is None:
        dtype = np.uint8 if len(vocab) <= 256 else np.uint16
    table = np.full(UNICODE_SIZE, missing, dtype=dtype)
    table[[ord(c) for c in vocab.chars]] = np.arange(len(vocab), dtype=dtype)
    return table


def _encode(files: list[Path], name: str, key: str | None) -> EncodedText:
    seen = np.zeros(UNICODE_SIZE, dtype=bool)
    sha, total = hashlib.sha256(), 0
    for path in files:
        for chunk in decoded_chunks(path):
            points = code_points(chunk)
            seen[np.flatnonzero(np.bincount(points))] = True
            sha.update(chunk.encode("utf-8"))
            total += len(points)
    if total == 0:
        raise CharchatError(f"{name} is empty; training needs at least 2 characters")
    vocab = _vocab_of(seen)
    if len(vocab) > 65536:
        raise CharchatError(f"{name} uses {len(vocab)} distinct characters; at most 65,536 fit")
    table = id_table(vocab)
    if key is None:
        ids = np.empty(total, dtype=table.dtype)
        return EncodedText(vocab, ids, _fill(ids, files, table), sha.hexdigest(), name)
    folder = corpus_cache()
    folder.mkdir(parents=True, exist_ok=True)
    with replacing(folder / f"{key}.ids") as temporary:
        ids = np.memmap(temporary, dtype=table.dtype, mode="w+", shape=(total,))
        documents = _fill(ids, files, table)
        ids.flush()
        del ids
    meta = {
        "format": CACHE_FORMAT,
        "chars": "".join(vocab.chars),
        "dtype": table.dtype.name,
        "lengths": [d.end - d.start for d in documents],
        "sha256": sha.hexdigest(),
    }
    _write_json_atomically(folder / f"{key}.json", meta)
    return _load_cached(key, files)


def _fill(ids: np.ndarray, files: list[Path], table: np.ndarray) -> list[Document]:
    """Every file's ids, one after another, into ids; the documents they make."""
    documents, at = [], 0
    for path in files:
        start = at
        for chunk in decoded_chunks(path):
            points = code_points(chunk)
            ids[at : at + len(points)] = table[points]
            at += len(points)
        documents.append(Document(str(path), start, at))
    return documents


def _write_json_atomically(path: Path, data: dict) -> None:
    write_file(path, json.dumps(data).encode("utf-8"))


def _load_cached(key: str, files: list[Path]) -> EncodedText | None:
    """The cached ids of this content, or None when absent or not readable as written."""
    folder = corpus_cache()
    try:
        meta = json.loads((folder / f"{key}.json").read_text())
        dtype = np.dtype(meta["dtype"])
        lengths = [int(n) for n in meta["lengths"]]
        ids = np.memmap(folder / f"{key}.ids", dtype=dtype, mode="r")
        if meta["format"] != CACHE_FORMAT or len(ids) != sum(lengths) or len(lengths) != len(files):
            return None
        vocab = Vocab(list(meta["chars"]))
    except (OSError, ValueError, KeyError, TypeError, CharchatError):
        return None
    starts = np.cumsum([0, *lengths])
    documents = [
        Document(str(p), int(a), int(b))
        for p, a, b in zip(files, starts[:-1], starts[1:], strict=True)
    ]
    return EncodedText(vocab, ids, documents, str(meta["sha256"]), "")
