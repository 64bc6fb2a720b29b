"""Corpora of several files, read in a streaming pass, cached by content, scored per file."""

import hashlib

import numpy as np
import pytest
import torch

from charchat import reading
from charchat.errors import CharchatError
from charchat.modelfile import ModelConfig
from charchat.reading import decode_text
from charchat.train import textfiles
from charchat.train.corpus import Corpus, Segment
from charchat.train.evaluate import held_out_nats_per_char, sequential_nats
from charchat.train.model import CharLSTM
from charchat.train.textfiles import read_corpus


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(reading, "CHUNK_BYTES", 7)


@pytest.mark.parametrize("chunk", range(1, 10))  # every cut: in a CRLF, in a UTF-8 sequence
def test_streaming_read_matches_reading_the_whole_file(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(reading, "CHUNK_BYTES", chunk)
    raw = "\ufeffline one\r\nline two\r\n\u00e9t\u00e9 \U0001f600 end\r\n".encode()
    (tmp_path / "a.txt").write_bytes(raw)
    encoded = read_corpus([tmp_path / "a.txt"])
    text = decode_text(raw)
    assert encoded.text(0, len(encoded.ids)) == text
    assert encoded.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert encoded.ids.dtype == np.uint8 and "\r" not in encoded.vocab.chars


def test_bad_bytes_are_reported_at_their_offset_in_the_file(tmp_path, small_chunks):
    (tmp_path / "a.txt").write_bytes(b"abcdefghijkl\xffmore")
    with pytest.raises(CharchatError, match="offset 12"):
        read_corpus([tmp_path / "a.txt"])


def test_several_files_and_a_folder_make_one_corpus(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("bbbb")
    (folder / "sub" / "c.txt").write_text("cccc")
    (folder / ".hidden").write_text("zzzz")
    (tmp_path / "a.txt").write_text("aaaa")
    encoded = read_corpus([tmp_path / "a.txt", folder])
    assert encoded.text(0, 12) == "aaaabbbbcccc" and encoded.vocab.chars == ["a", "b", "c"]
    assert [(d.start, d.end) for d in encoded.documents] == [(0, 4), (4, 8), (8, 12)]
    assert encoded.name == "a.txt and 2 more"
    (tmp_path / "empty").mkdir()
    with pytest.raises(CharchatError, match="no files"):
        read_corpus([tmp_path / "empty"])


@pytest.fixture
def cached(tmp_path, monkeypatch):
    """A text every read of which goes through the cache; (its path, the first read)."""
    monkeypatch.setattr(textfiles, "CACHE_FROM_BYTES", 0)
    monkeypatch.setenv("CHARCHAT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a.txt").write_text("some text to learn from\n" * 50)
    return tmp_path / "a.txt", read_corpus([tmp_path / "a.txt"])


def test_large_corpora_are_encoded_once_and_memory_mapped(tmp_path, monkeypatch, cached):
    path, first = cached
    assert len(list((tmp_path / "cache" / "corpora").glob("*.ids"))) == 1

    def no_decoding(path):
        raise AssertionError("read the text again")

    monkeypatch.setattr(textfiles, "decoded_chunks", no_decoding)
    again = read_corpus([path])
    assert isinstance(again.ids, np.memmap) and np.array_equal(again.ids, first.ids)
    assert again.vocab.chars == first.vocab.chars and again.sha256 == first.sha256
    path.write_text("other text\n" * 50)  # new content, new key
    with pytest.raises(AssertionError, match="read the text again"):
        read_corpus([path])


def test_a_damaged_cache_entry_is_encoded_afresh(tmp_path, cached):
    path, first = cached
    for meta in (tmp_path / "cache" / "corpora").glob("*.json"):
        meta.write_text("{not json")
    again = read_corpus([path])
    assert np.array_equal(again.ids, first.ids) and isinstance(again.ids, np.memmap)
    assert all(
        m.read_text().startswith('{"') for m in (tmp_path / "cache" / "corpora").glob("*.json")
    )


def test_validation_never_reads_across_a_file_boundary(tmp_path):
    (tmp_path / "a.txt").write_text("a" * 60)
    (tmp_path / "b.txt").write_text("b" * 40)
    corpus = Corpus.from_encoded(read_corpus([tmp_path / "a.txt", tmp_path / "b.txt"]), 0.5)
    assert len(corpus.val) == 2 and corpus.val_chars == 50 and len(corpus.train) == 50
    in_a, in_b = corpus.val
    assert set(in_a.ids.tolist()) == {0} and in_a.start > 0  # read after the text before it
    assert set(in_b.ids.tolist()) == {1} and in_b.start == 0  # b's first character: no context


def test_held_out_score_is_the_sequential_score_of_each_file():
    torch.manual_seed(0)
    module = CharLSTM(5, ModelConfig(1, 16, 8, 0.0))
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, 5, n) for n in (300, 200)]
    expected = sum(sequential_nats(module, d, "cpu") for d in docs) / 500
    got = held_out_nats_per_char(module, [Segment(d, 0) for d in docs], "cpu")
    assert got == pytest.approx(expected, rel=1e-5)
    joined = np.concatenate(docs)  # scoring them as one text would differ
    assert sequential_nats(module, joined, "cpu") / 500 != pytest.approx(expected, rel=1e-5)


def test_train_learns_from_several_files_and_folders(tmp_path):
    import subprocess
    import sys

    from conftest import TEXT

    from charchat.modelfile import load_model

    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "one.txt").write_text(TEXT * 3)
    (tmp_path / "texts" / "two.txt").write_text(TEXT.upper() * 3)
    (tmp_path / "three.txt").write_text("0123456789 " * 300)
    out = tmp_path / "m.safetensors"
    args = ["train", str(tmp_path / "texts"), str(tmp_path / "three.txt"), "--out", str(out)]
    args += ["--hidden", "16", "--embedding", "8", "--epochs", "1", "--batch-size", "4"]
    args += ["--seq-len", "16", "--precision", "fp32", "--threads", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "charchat", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    model = load_model(out)
    assert model.card["corpus_files"] == 3 and model.card["corpus"] == "one.txt and 2 more"
    assert {"a", "A", "7"} <= set(model.vocab.chars)
    missing = subprocess.run(
        [sys.executable, "-m", "charchat", "train", str(tmp_path / "nope.txt")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode != 0 and missing.stderr.count("\n") == 1
    assert "no such file" in missing.stderr
