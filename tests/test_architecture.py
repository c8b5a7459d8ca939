"""The layering the README promises: the CLI holds no Polars code; the library never prints or exits."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "analyzer"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_cli_imports_no_polars_or_pyarrow() -> None:
    assert not {"polars", "pyarrow"} & _imports(PKG / "cli.py")


def test_only_cli_imports_cli_libraries() -> None:
    offenders = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if p.name not in ("cli.py",) and not p.match("report/terminal.py") and {"typer"} & _imports(p)
    ]
    assert offenders == []


def test_library_never_calls_print_or_exit() -> None:
    offenders = []
    for p in PKG.rglob("*.py"):
        if p.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("print", "exit")
            ):
                offenders.append(f"{p.relative_to(PKG)}:{node.lineno}")
    assert offenders == []
