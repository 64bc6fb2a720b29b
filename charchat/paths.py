"""Where charchat keeps a user's things: models, history, caches. Each one place."""

from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR_ENV = "CHARCHAT_MODELS_DIR"
CACHE_ENV = "CHARCHAT_CACHE"


def user_data_dir() -> Path:
    import platformdirs

    return platformdirs.user_data_path("charchat", appauthor=False)


def user_models_dir() -> Path:
    """Models trained here, found by name ($CHARCHAT_MODELS_DIR overrides)."""
    override = os.environ.get(MODELS_DIR_ENV)
    return Path(override) if override else user_data_dir() / "models"


def history_file() -> Path:
    return user_data_dir() / "history"


def cache_root() -> Path:
    """Caches that can be rebuilt ($CHARCHAT_CACHE overrides)."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get(CACHE_ENV) or user_cache_dir("charchat"))


def corpus_cache() -> Path:
    """Training texts as ids, keyed by their contents."""
    return cache_root() / "corpora"


def novelty_cache() -> Path:
    """Suffix arrays of novelty corpora, keyed by their contents."""
    return cache_root() / "novelty"
