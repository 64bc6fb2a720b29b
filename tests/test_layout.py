"""The layout is the architecture: no import cycles, nothing imports upward, the chat half
never imports torch, and no module grows past 300 lines."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "charchat"
MOST_LINES = 300
# Which folders each part may import from (core: the modules at the package's top).
MAY_IMPORT = {
    "core": {"core"},
    "chat": {"core", "chat"},
    "train": {"core", "chat", "train"},  # training samples with the chat's numpy engine
    "terminal": {"core", "chat", "terminal"},
    "serve": {"core", "chat", "serve"},  # an edge like the terminal: never torch, never train
    "cli": {"core", "chat", "terminal", "train", "serve"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The charchat modules `name` imports, anywhere in it (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        found |= {t for t in targets if t in known}
    return found - {name}


def part_of(name: str) -> str:
    parts = name.split(".")
    if name in ("charchat.cli", "charchat.cli_train", "charchat.cli_serve", "charchat.__main__"):
        return "cli"
    return parts[1] if len(parts) > 2 else "core"


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, name, set(found)) for name, path in found.items()}


def test_no_import_cycles():
    edges = graph()
    # Packages' __init__ modules are folders, not dependencies of what they hold.
    edges = {m: {t for t in ts if modules()[t].name != "__init__.py"} for m, ts in edges.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node, trail):
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target) :] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_nothing_imports_upward():
    wrong = [
        f"{name} ({part_of(name)}) imports {target} ({part_of(target)})"
        for name, targets in graph().items()
        for target in targets
        if part_of(target) not in MAY_IMPORT[part_of(name)] and part_of(target) != "cli"
    ]
    assert not wrong, wrong


def test_no_module_is_over_300_lines():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MOST_LINES
    }
    assert not long, long


def test_the_chat_half_and_the_chat_path_never_import_torch(tiny_model_path):
    chat = sorted(n for n in modules() if part_of(n) in ("core", "chat", "terminal"))
    code = (
        "import sys, importlib\n"
        f"for name in {chat!r}: importlib.import_module(name)\n"
        "from charchat.cli import main\n"
        f"sys.argv = ['charchat', '-m', {str(tiny_model_path)!r}, '-n', '5']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('no torch', file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=b"the will\n/probs 3\n/sweep\n", capture_output=True
    )
    assert done.returncode == 0 and b"no torch" in done.stderr, done.stderr.decode()
    assert len(done.stdout) >= 5
