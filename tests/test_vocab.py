import pytest

from charchat.errors import CharchatError
from charchat.reading import decode_text, read_text
from charchat.vocab import Vocab


def test_vocab_is_sorted_unique_and_handles_any_unicode():
    text = "héllo wörld 日本語 😀 e\u0301 ok"
    vocab = Vocab.from_text(text)
    assert vocab.chars == sorted(set(text))
    assert vocab.decode(vocab.encode_known(text)) == text
    assert "😀" in vocab and "\u0301" in vocab


def test_bom_dropped_and_crlf_becomes_lf():
    assert decode_text("\ufeffa\r\nb\r\n".encode()) == "a\nb\n"


def test_invalid_utf8_names_the_offset():
    with pytest.raises(CharchatError, match="offset 3"):
        decode_text(b"abc\xff\xfe")


def test_unknown_characters_are_mapped_when_a_stand_in_exists():
    vocab = Vocab.from_text("abcde '\"-.")
    encoded = vocab.encode("é\u2019\u201cA")
    assert vocab.decode(encoded.ids) == "e'\"a"
    assert encoded.mapped == {"é": "e", "\u2019": "'", "\u201c": '"', "A": "a"}
    assert encoded.dropped == []


def test_unknown_characters_without_stand_in_are_dropped_and_reported():
    vocab = Vocab.from_text("abc ")
    encoded = vocab.encode("a😀b日😀")
    assert vocab.decode(encoded.ids) == "ab"
    assert encoded.dropped == ["😀", "日"]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"a", "too short"), (b"\x00\x01binary", "binary"), (b"ab\xc3", "UTF-8")],
)
def test_bad_corpora_are_refused_clearly(tmp_path, content, message):
    path = tmp_path / "c.txt"
    path.write_bytes(content)
    with pytest.raises(CharchatError, match=message):
        read_text(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(CharchatError, match="no such file"):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(CharchatError, match="directory"):
        read_text(tmp_path)
