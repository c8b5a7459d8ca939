"""Which small mutations of a decision survive the tests: a short mutation tester (not collected by pytest).

    python tests/mutants.py                     # every target below
    python tests/mutants.py bursts.score        # one target
    python tests/mutants.py --list              # the mutants, without running anything

For each target function, each mutant changes one thing in its source: a comparison flipped (`>=` to `>`
and back, `==` to `!=`), one operand of an `&` or `|` dropped (a gate removed), a `range(3)` loop run
once, or a `.when(...)` branch never taken. The package is copied to a temporary folder, the mutant
written there, and the target's tests run against the copy (`-x`, stopping at the first failure). A
mutant that no test kills is a decision the tests do not pin: the output lists them.
"""

from __future__ import annotations

import ast
import copy
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# target: (module file, function, tests that judge it)
TARGETS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "bursts.score": (
        "analyzer/detect/bursts.py",
        "score",
        (
            "tests/test_detect_gates.py",
            "tests/test_detect_bursts.py",
            "tests/test_detect_synthetic.py",
            "tests/test_detect_simulated.py",
        ),
    ),  # fmt: skip
    "latency.score": (
        "analyzer/detect/latency.py",
        "score",
        (
            "tests/test_detect_gates.py",
            "tests/test_detect_latency.py",
            "tests/test_detect_synthetic.py",
            "tests/test_detect_simulated.py",
        ),
    ),  # fmt: skip
    "classify.joined": (
        "analyzer/reconcile/classify.py",
        "joined",
        (
            "tests/test_reconcile_gates.py",
            "tests/test_reconcile.py",
            "tests/test_reconcile_usage.py",
            "tests/test_reconcile_truth.py",
            "tests/test_reconcile_scale.py",
        ),  # fmt: skip
    ),
}

_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.GtE: ast.Gt,
    ast.Gt: ast.GtE,
    ast.LtE: ast.Lt,
    ast.Lt: ast.LtE,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
}


@dataclass(frozen=True)
class Mutant:
    """One change to a target function's source, with where it is and what it does."""

    line: int
    what: str
    source: str  # the whole module, mutated


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise SystemExit(f"no function {name}")


def _body_nodes(function: ast.FunctionDef) -> list[ast.AST]:
    """Every node of the function's body (not its signature's annotations), in a fixed order."""
    return [node for statement in function.body for node in ast.walk(statement)]


def mutants(module: Path, function: str) -> Iterator[Mutant]:
    """Every single-change mutant of `function` in `module`."""
    text = module.read_text()
    tree = ast.parse(text)
    target = _function(tree, function)
    nodes = _body_nodes(target)
    for index, node in enumerate(nodes):
        for what, change in _changes(node):
            mutated = copy.deepcopy(tree)
            twin = _body_nodes(_function(mutated, function))[index]
            change(twin)
            yield Mutant(node.lineno if hasattr(node, "lineno") else 0, what, ast.unparse(mutated))


def _changes(node: ast.AST) -> Iterator[tuple[str, object]]:
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _FLIP:
        new = _FLIP[type(node.ops[0])]

        def flip(n: ast.Compare, new: type[ast.cmpop] = new) -> None:
            n.ops = [new()]

        yield f"{ast.unparse(node)}: {type(node.ops[0]).__name__} -> {new.__name__}", flip
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
        for side in ("left", "right"):
            keep = "right" if side == "left" else "left"

            def drop(n: ast.BinOp, keep: str = keep) -> None:
                kept = getattr(n, keep)
                # Replace the BinOp by the side kept: rewrite this node in place as `(kept) | False`
                # for | (a no-op), `(kept) & True` for &.
                n.left = kept
                neutral = ast.Constant(isinstance(n.op, ast.BitAnd))
                n.right = ast.Call(
                    ast.Attribute(ast.Name("pl", ast.Load()), "lit", ast.Load()), [neutral], []
                )

            yield f"drop {ast.unparse(getattr(node, side))!r} from {ast.unparse(node)[:60]}", drop
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and len(node.args) == 1
        and not (isinstance(node.args[0], ast.Constant) and node.args[0].value == 1)
    ):

        def once(n: ast.Call) -> None:
            n.args = [ast.Constant(1)]

        yield f"range({ast.unparse(node.args[0])}) -> range(1)", once
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "when":

        def never(n: ast.Call) -> None:
            n.args = [
                ast.Call(
                    ast.Attribute(ast.Name("pl", ast.Load()), "lit", ast.Load()), [ast.Constant(False)], []
                )
            ]

        yield f"branch when({ast.unparse(node.args[0])[:60]}) never taken", never


def run(name: str, list_only: bool) -> tuple[int, int, list[Mutant]]:
    """(mutants, survivors, the survivors) of one target."""
    module_path, function, named = TARGETS[name]
    tests = [t for t in named if (ROOT / t).is_file()]
    found = list(mutants(ROOT / module_path, function))
    if list_only:
        for m in found:
            print(f"{name}:{m.line}: {m.what}")
        return len(found), 0, []
    survivors: list[Mutant] = []
    with tempfile.TemporaryDirectory() as tmp:
        copy_root = Path(tmp)
        shutil.copytree(ROOT / "analyzer", copy_root / "analyzer")
        shutil.copytree(ROOT / "tests", copy_root / "tests")
        shutil.copytree(ROOT / "sample_logs", copy_root / "sample_logs")
        shutil.copy(ROOT / "pyproject.toml", copy_root / "pyproject.toml")
        original = (ROOT / module_path).read_text()
        for m in found:
            (copy_root / module_path).write_text(m.source)
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                cwd=copy_root,
                capture_output=True,
                text=True,
            )
            killed = done.returncode != 0
            print(
                f"{'killed  ' if killed else 'SURVIVED'} {name}:{m.line}: {m.what} ({time.monotonic() - started:.0f} s)"
            )
            if not killed:
                survivors.append(m)
        (copy_root / module_path).write_text(original)
    return len(found), len(survivors), survivors


def main(argv: list[str]) -> int:
    list_only = "--list" in argv
    names = [a for a in argv if not a.startswith("--")] or list(TARGETS)
    total = 0
    for name in names:
        count, survived, _ = run(name, list_only)
        total += survived
        if not list_only:
            print(f"{name}: {survived} of {count} mutants survive")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
