"""``python -m search.run`` checks its input before torch, timm or Ray are imported: what importing
``search.run`` runs (its module-level imports, and theirs) names none of them, and a refused file
or path leaves none of them in ``sys.modules``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_layers import ROOT, module_name

HEAVY = ("torch", "timm", "ray", "optuna", "wandb", "sklearn")
MODULES = {module_name(p): p for package in ("search", "trainable") for p in (ROOT / package).rglob("*.py")}


def _executed(body: list[ast.stmt]):
    """The statements importing a module runs: its body, and the bodies under its ifs, trys,
    withs and classes; not a function's (run when called) nor ``if TYPE_CHECKING:``'s."""
    for node in body:
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _executed(node.orelse)
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _executed(getattr(node, field, []))


def module_level_imports(name: str) -> set[str]:
    """The modules importing ``name`` imports (relative imports resolved), with the packages
    above each project module (``trainable.data.config`` runs ``trainable/data/__init__.py``)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in _executed(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out |= {base} | {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES}
    return {".".join(m.split(".")[:i]) for m in out for i in range(1, m.count(".") + 2)}


def import_closure(start: str) -> dict[str, str]:
    """Every module importing ``start`` reaches -> the project module that imports it."""
    reached, todo = {start: ""}, [start]
    while todo:
        name = todo.pop()
        for dep in sorted(module_level_imports(name)):
            if dep not in reached:
                reached[dep] = name
                if dep in MODULES:
                    todo.append(dep)
    return reached


def test_search_run_imports_no_heavy_library_at_module_level():
    reached = import_closure("search.run")
    assert {"search.space.check", "trainable.data.config", "trainable.names", "yaml"} <= set(reached)
    heavy = sorted(f"{by} -> {m}" for m, by in reached.items() if m.split(".")[0] in HEAVY)
    assert not heavy, f"importing search.run imports {heavy}"


def test_the_closure_sees_the_packages_above_and_not_the_functions():
    """The walk itself: a module under trainable.data brings its package's __init__, whose
    imports (none of them heavy) are followed; a function's imports are not."""
    reached = import_closure("search.space.schema")
    assert {"trainable", "trainable.data", "trainable.data.config"} <= set(reached)
    assert "torch" not in reached and "trainable.data.load" not in reached
    assert "torch" in import_closure("trainable.train")


def _run(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd), **env})


def test_a_missing_file_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "search.run", "missing.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: missing.yaml: cannot read (No such file or directory)"]


SPACE = {"name": "light", "data": {"format": "digits"}, "trial": {"epochs": 2, "resources": {"cpu": 1, "gpu": 0}},
         "space": {"backbone": {"choice": ["simple_cnn", "resnet18"]}, "lr": {"loguniform": [1.0e-4, 1.0e-2]},
                   "optimizer": {"choice": ["adam", "ranger"]}, "loss": {"choice": ["ce", "focal"]},
                   "sampling": {"choice": ["none", "weighted"]}},
         "objectives": [{"val_auc": "max"}, {"params": "min"}],
         "final": {"threshold": "youden"}, "search": {"num_samples": 2, "grace_period": 1}}


@pytest.mark.parametrize("flags,refused", [
    (["--results", "file.txt"], "error: --results: cannot write in file.txt/light (Not a directory)"),
    # The space, its two variants (GPU or not) and the paths pass; W&B online without credentials,
    # the last check before Ray, refuses it.
    (["--set", "wandb.mode=online"], "error: space.yaml: wandb.mode: online needs W&B credentials"),
], ids=["a path refused", "every check passed"])
def test_the_commands_checks_import_no_heavy_library(tmp_path, flags, refused):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    (tmp_path / "file.txt").write_text("a file")
    code = ("import sys\nfrom search.run import main\n"
            f"try:\n    main({['space.yaml', *flags]!r})\nexcept SystemExit as stop:\n    print(stop.code)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = _run(code, tmp_path, NETRC=str(tmp_path / "no-netrc"))
    assert proc.stdout.strip().splitlines() == ["2", "[]"], proc.stdout + proc.stderr
    assert proc.stderr.strip().startswith(refused) and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_loading_a_space_imports_no_heavy_library(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    code = ("import sys\nfrom search.space import load_space\nspace = load_space('space.yaml')\n"
            f"print(space.space['backbone'].values, sorted(m for m in {HEAVY!r} if m in sys.modules))")
    proc = _run(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "('simple_cnn', 'resnet18') []"
