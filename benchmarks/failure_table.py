#!/usr/bin/env python3
"""The bad-input table of docs/failures.md: every input of the fault corpus against every command.

Builds the corpus of ``tests/failures/test_failures.py`` (broken, truncated, empty, silent, mis-scaled audio…)
in a temporary folder, runs each command on it in-process and prints a Markdown table: one row per
input, one column per command, each cell what the user saw —

- ``ok``: exit 0, nothing on stderr worth a line;
- ``warning``: exit 0 and a ``warning:`` line naming the file (the result is flagged, not trusted);
- ``error``: exit 1, exactly one ``Error:`` line naming the file, no traceback, and in a batch the
  good file beside it still written;
- anything else is spelled out (and makes the script exit 1).

Example::

    .venv/bin/python benchmarks/failure_table.py > /tmp/table.md
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from specmusic.cli.app import app  # noqa: E402
from tests.failures.test_failures import ERROR_INPUTS, ODD_INPUTS, corpus  # noqa: E402
from tests.inference.test_inference import export_tiny_classifier  # noqa: E402
from tests.conftest import tone, write  # noqa: E402

INPUTS = [*ERROR_INPUTS, "folder", *ODD_INPUTS, "good"]


def _cell(result, name: str, good_written: bool | None) -> str:  # noqa: ANN001
    stderr = result.stderr
    if "Traceback" in stderr or (result.exception and not isinstance(result.exception, SystemExit)):
        return f"TRACEBACK ({type(result.exception).__name__})"
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    warned = any(line.startswith("warning:") and name in line for line in stderr.splitlines())
    if good_written is False:
        return "LOST the good file"
    if result.exit_code == 0:
        return "warning" if warned else "ok"
    if result.exit_code == 1 and len(errors) == 1 and name in errors[0]:
        return "error"
    return f"UNCLEAN (exit {result.exit_code}, {len(errors)} Error lines)"


def main() -> int:
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        files = corpus(tmp_path / "corpus")
        model = export_tiny_classifier(tmp_path / "model.onnx", ["low", "mid", "high"])
        tracks = tmp_path / "tracks"
        for i, f in enumerate((110.0, 220.0, 440.0)):
            write(tracks / f"t{i}.wav", tone(f, 2.0, seed=i))
        library = tmp_path / "lib.npz"
        assert runner.invoke(app, ["embed", str(tracks), "-m", str(model), "-o", str(library)]).exit_code == 0

        def batch(command: list[str], out_check: Callable[[Path, object], bool]) -> Callable[[str, Path], str]:
            def run(name: str, path: Path) -> str:
                out = tmp_path / f"out-{command[0]}-{name}"
                args = [a.replace("{out}", str(out)) for a in command]
                paths = [str(path)] if name == "good" else [str(files["good"]), str(path)]
                res = runner.invoke(app, [args[0], *paths, *args[1:]])
                return _cell(res, Path(path).name, out_check(out, res))
            return run

        def single(command: list[str]) -> Callable[[str, Path], str]:
            def run(name: str, path: Path) -> str:
                out = tmp_path / f"out-{'-'.join(command[:2])}-{name}"
                args = [a.replace("{in}", str(path)).replace("{out}", str(out)) for a in command]
                return _cell(runner.invoke(app, args), Path(path).name, None)
            return run

        def spectro_ok(out: Path, res) -> bool:  # noqa: ANN001
            return (out / "good.npz").exists()

        def classify_ok(out: Path, res) -> bool:  # noqa: ANN001
            return any(json.loads(line)["path"].endswith("good.wav") for line in res.stdout.splitlines())

        def embed_ok(out: Path, res) -> bool:  # noqa: ANN001
            with np.load(out / "lib.npz", allow_pickle=False) as z:
                return any(str(i).endswith("good.wav") for i in z["ids"])

        commands: dict[str, Callable[[str, Path], str]] = {
            "spectro": batch(["spectro", "-o", "{out}"], spectro_ok),
            "classify": batch(["classify", "-m", str(model), "--json"], classify_ok),
            "embed": batch(["embed", "-m", str(model), "-o", "{out}/lib.npz"], embed_ok),
            "recommend -q": single(["recommend", str(library), "-q", "{in}", "-m", str(model), "-k", "1"]),
            "nmf": single(["nmf", "{in}", "-c", "2", "-i", "5", "-o", "{out}"]),
            "nmf mosaic -t": single(["nmf", "mosaic", "-s", str(files["good"]), "-t", "{in}", "-i", "3",
                                     "-o", "{out}.wav"]),
            "generate invert": single(["generate", "invert", "{in}", "-o", "{out}.wav"]),
        }
        rows = ["| input | " + " | ".join(f"`{c}`" for c in commands) + " |",
                "|---|" + "---|" * len(commands)]
        bad = 0
        for name in INPUTS:
            cells = []
            for command, run in commands.items():
                if command == "generate invert" and name in ("good", *ODD_INPUTS):
                    cells.append("n/a (takes arrays)")
                    continue
                cell = run(name, files[name])
                bad += cell.split()[0].isupper()
                cells.append(cell)
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(rows))
    print(f"\n{bad} unclean cells", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
