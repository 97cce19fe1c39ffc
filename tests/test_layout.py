"""The house rules of the package layout, checked on the source (no imports run).

Imports are read from the AST, those inside functions included, so an import that runs back up cannot hide
in a function body.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "specmusic"
BENCHMARKS = ROOT / "benchmarks"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100
MAX_CLI_NAMES = 8


def _modules(folder: Path = PACKAGE) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _known() -> dict[str, Path]:
    return {_module_name(p): p for p in _modules()}


def _base(path: Path, node: ast.ImportFrom) -> str | None:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _imported(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every specmusic import in ``path``: ``name`` is None for ``import module``,
    and a submodule imported by ``from package import submodule`` counts as that module."""
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names if a.name.split(".")[0] == "specmusic"]
        elif isinstance(node, ast.ImportFrom):
            base = _base(path, node)
            if base and base.split(".")[0] == "specmusic":
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    out.append((sub, None) if sub in _known() else (base, a.name))
    return out


def _graph() -> dict[str, set[str]]:
    known = _known()
    return {
        name: {m for m, _ in _imported(path) if m in known and m != name}
        for name, path in known.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_library_module_imports_a_command_module() -> None:
    offenders = {
        _module_name(p): sorted({m for m, _ in _imported(p) if m.startswith("specmusic.cli")})
        for p in _modules()
        if "cli" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"
    }
    assert not {k: v for k, v in offenders.items() if v}


def test_no_import_cycle_even_inside_functions() -> None:
    assert _cycles(_graph()) == []


def test_no_private_name_crosses_a_module() -> None:
    """``from a import _x`` or ``a._x`` from another module: a name another module needs is public."""
    offenders = []
    for path in _modules():
        me = _module_name(path)
        aliases: dict[str, str] = {}
        for module, name in _imported(path):
            if name is not None and module != me and _private(name):
                offenders.append(f"{me}: {module}.{name}")
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom):
                base = _base(path, node)
                for a in node.names:
                    if base and f"{base}.{a.name}" in _known():
                        aliases[a.asname or a.name] = f"{base}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and a.name in _known():
                        aliases[a.asname] = a.name
        for node in ast.walk(_tree(path)):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _private(node.attr) and aliases[node.value.id] != me):
                offenders.append(f"{me}: {aliases[node.value.id]}.{node.attr}")
    assert not offenders, offenders


def test_commands_are_thin() -> None:
    """Each ``cli/`` module imports at most 8 names from the library (``specmusic`` outside ``cli/``)."""
    heavy = {}
    for path in _modules(PACKAGE / "cli"):
        names = {(m, n) for m, n in _imported(path) if not m.startswith("specmusic.cli") and m != "specmusic"}
        if len(names) > MAX_CLI_NAMES:
            heavy[_module_name(path)] = sorted(f"{m}:{n or '*'}" for m, n in names)
    assert not heavy, heavy


def test_modules_read_in_one_sitting_and_functions_fit_on_a_screen() -> None:
    long_modules, long_functions = [], []
    for path in [*_modules(), *_modules(BENCHMARKS)]:
        source = path.read_text(encoding="utf-8")
        if len(source.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(str(path.relative_to(ROOT)))
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert not long_modules and not long_functions, (long_modules, long_functions)


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The rule above is only as good as its finder: a planted two- and three-module circle are found."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
