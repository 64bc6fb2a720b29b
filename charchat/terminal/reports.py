"""What `charchat novelty` prints: samples at each temperature and how much of each is copied."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from charchat.chat.novelty import MAX_INDEX_CHARS, TextIndex, novelty_of
from charchat.chat.session import Session
from charchat.errors import CharchatError
from charchat.events import Generated
from charchat.modelfile import load_model, resolve_model
from charchat.paths import novelty_cache
from charchat.reading import read_text
from charchat.settings import LENGTH, NOVELTY_MIN, TEMPERATURE, Settings
from charchat.style import safe_text


def report(model_name, corpus: Path, temps, length, min_chars, prompt="", seed=1) -> list[str]:
    """`charchat novelty`: a sample at each temperature, and what of it is copied."""
    try:
        NOVELTY_MIN.parse(str(min_chars))
    except CharchatError as e:
        raise CharchatError(f"--min: {e}") from None
    LENGTH.parse(str(length))
    for t in temps:
        TEMPERATURE.parse(str(t))
    model = load_model(resolve_model(model_name))
    text = read_text(corpus, 2, "novelty", MAX_INDEX_CHARS)
    index = TextIndex.build(text, model.vocab, novelty_cache())
    lines = [
        f"{'T':>5}  {'chars':>6}  {'longest copy':>12}  {f'copied (>= {min_chars})':>16}  spans",
    ]
    longest_texts = []
    for t in temps:
        session = Session(model, Settings(temperature=t, mode="sample"), length=length, seed=seed)
        written = "".join(e.char for e in session.turn(prompt) if isinstance(e, Generated))
        found = novelty_of(index, model.vocab.encode(written).ids, min_chars)
        lines.append(
            f"{t:>5g}  {len(written):>6,}  {found.longest:>12,}  "
            f"{found.copied_share:>15.1%}  {len(found.spans)}"
        )
        end = int(np.argmax(found.lengths)) + 1 if found.lengths else 0
        longest_texts.append((t, written[end - found.longest : end]))
    for t, text in longest_texts:
        lines.append(f"longest copy at T={t:g}: {safe_text(text, keep_newlines=False)!r}")
    return lines
