"""search/'s rooms import only downwards: report and export read a stored study without the loop's internals,
and the verdict knows nothing of search outside itself (search/__init__.py states the rule)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SEARCH = Path(__file__).resolve().parents[1] / "search"
LOOP = {f"search.{name}" for name in ("study", "objective", "trial_gate", "trial_loop", "workers", "progress",
                                       "promotion", "runner")}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function (`from search import x` counts as search.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def files_of(package: str) -> list[Path]:
    files = sorted((SEARCH / package).glob("*.py"))
    assert files, f"search/{package} holds no module"
    return files


def upward(imported: set[str], *, forbidden: set[str]) -> set[str]:
    return {name for name in imported if any(name == f or name.startswith(f + ".") for f in forbidden)}


@pytest.mark.parametrize("package", ["report", "export"])
def test_report_and_export_never_import_the_study_loop(package):
    for path in files_of(package):
        assert not upward(imports_of(path), forbidden=LOOP), f"{path.name} imports the loop"


def test_the_verdict_imports_nothing_of_search_outside_itself():
    for path in files_of("verdict"):
        outside = {name for name in imports_of(path) if name.startswith("search.")
                   and not name.startswith("search.verdict")}
        assert not outside, f"verdict/{path.name} imports {sorted(outside)}"
        assert not upward(imports_of(path), forbidden={"plotly", "pandas"}), f"verdict/{path.name} draws or tabulates"


def test_the_rule_reads_real_imports(tmp_path):
    """The reader sees top-level and function-level imports in every form, so the rules above can fail."""
    sample = tmp_path / "sample.py"
    sample.write_text("import search.runner\nfrom search import objective\n"
                      "def f():\n    from search.report.tables import leaderboard\n")
    assert upward(imports_of(sample), forbidden=LOOP) == {"search.runner", "search.objective"}
    assert "search.report.tables.leaderboard" in imports_of(sample)
