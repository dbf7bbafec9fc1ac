"""The import layers: an AST walk over every import of the project's modules (those inside
functions too), so an import circle kept alive by function-level imports fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# search/'s stages, each importing only the ones before it; commands and the pipeline last.
STAGES = ["search.files", "search.space", "search.plan", "search.tune", "search.results", "search.final",
          "search.report", "search.request", "search.stop", "search.pipeline", "search.run", "search.predict"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports, as dotted names (relative imports resolved)."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{alias.name}" for alias in node.names}
    return out


def project_graph() -> dict[str, set[str]]:
    files = [p for package in ("search", "trainable") for p in (ROOT / package).rglob("*.py")]
    names = {module_name(p): p for p in files}
    return {name: {m for m in imports_of(path, name) if m in names} | {m for m in imports_of(path, name)
                                                                       if m.split(".")[0] not in names}
            for name, path in names.items()}


GRAPH = project_graph()
PROJECT = set(GRAPH)


def stage(name: str) -> int:
    if name.endswith(".__main__"):
        return len(STAGES)  # a command: may import any stage
    matches = [i for i, s in enumerate(STAGES) if name == s or name.startswith(s + ".")]
    return matches[-1] if matches else -1


def closure(start: str) -> set[str]:
    seen, todo = set(), [m for m in PROJECT if m == start or m.startswith(start + ".")]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [m for m in GRAPH.get(name, ()) if m in PROJECT]
    return seen


def test_no_import_circle_among_the_project_modules():
    # A submodule importing its own package (trainable.data.load -> trainable.data) is no circle.
    edges = {m: {d for d in deps if d in PROJECT and d != m and not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in edges[node]:
            if state.get(dep) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(dep):] + [dep]) if dep in path
                            else f"import circle through {node} -> {dep}")
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


def test_trainable_never_imports_search():
    bad = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if m.startswith("trainable")
                 for d in deps if d == "search" or d.startswith("search."))
    assert not bad, bad


def test_each_stage_imports_only_the_stages_before_it():
    bad = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if m.startswith("search.") and stage(m) >= 0
                 for d in deps if d.startswith("search.") and d in PROJECT and stage(d) > stage(m))
    assert not bad, bad


@pytest.mark.parametrize("command", ["search.report", "search.predict"])
def test_the_report_and_predict_never_import_ray(command):
    reached = closure(command)
    ray = sorted(m for m in reached for d in GRAPH[m] if d == "ray" or d.startswith("ray."))
    assert not ray, f"{command} reaches Ray through {ray}"


def test_the_results_folder_names_the_trainers_files_as_it_writes_them():
    from search import files
    from trainable import report

    assert files.TRAIN_ON_METRICS == report.METRICS_FILE
