"""The house rules of the package layout, checked on the source (no imports run)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "specmusic"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_library_module_imports_a_command_module() -> None:
    library = [p for p in _modules() if "cli" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"]
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in _imports(p) if m.startswith("specmusic.cli"))
                 for p in library}
    assert not {k: v for k, v in offenders.items() if v}


def test_modules_read_in_one_sitting_and_functions_fit_on_a_screen() -> None:
    long_modules, long_functions = [], []
    for path in _modules():
        source = path.read_text(encoding="utf-8")
        if len(source.splitlines()) > 700:
            long_modules.append(str(path.relative_to(PACKAGE)))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno > 120:
                long_functions.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert not long_modules and not long_functions, (long_modules, long_functions)
