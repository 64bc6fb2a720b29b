"""Finding a model by name: the bundled ones (weights/, shipped inside the package as
charchat.weights), then the user's (paths.user_models_dir), or a path."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from charchat.errors import CharchatError
from charchat.modelfile import DEFAULT_MODEL, SUFFIX
from charchat.paths import user_models_dir


def bundled_dir() -> Path:
    """The models that ship inside the package (weights/ mapped to charchat.weights)."""
    try:
        return Path(str(importlib.resources.files("charchat.weights")))
    except ModuleNotFoundError:  # run from a source checkout that was never installed
        return Path(__file__).resolve().parent.parent / "weights"


def model_dirs() -> list[tuple[str, Path]]:
    return [("bundled", bundled_dir()), ("user", user_models_dir())]


def available_models() -> list[tuple[str, str, Path]]:
    """(name, where, path) of every model file found by name, bundled first."""
    found: list[tuple[str, str, Path]] = []
    seen: set[str] = set()
    for where, folder in model_dirs():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            if path.name.endswith(".ckpt" + SUFFIX) or path.stem in seen:
                continue
            seen.add(path.stem)
            found.append((path.stem, where, path))
    return found


def looks_like_path(name_or_path: str) -> bool:
    return (
        os.sep in name_or_path
        or "/" in name_or_path
        or name_or_path.endswith(SUFFIX)
        or name_or_path.startswith(".")
    )


def resolve_model(name_or_path: str | None = None) -> Path:
    """A model's path from a name (bundled, then user dir) or a path."""
    name_or_path = name_or_path or DEFAULT_MODEL
    if looks_like_path(name_or_path) or Path(name_or_path).is_file():
        return Path(name_or_path)
    for name, _, path in available_models():
        if name == name_or_path:
            return path
    names = ", ".join(name for name, _, _ in available_models()) or "none"
    raise CharchatError(f"no model named {name_or_path!r} (available: {names})")
