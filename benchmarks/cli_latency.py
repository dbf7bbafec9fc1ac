"""How fast ``python -m search.run`` answers ``--help`` and refuses a bad space file.

Usage:
    python benchmarks/cli_latency.py [--runs 5] [--root DIR] [--before DIR]

Runs each case ``--runs`` times as a fresh ``python -m search.run ...`` process, in a fresh
temporary folder as its working directory, with the code of ``--root`` (default this checkout)
on ``PYTHONPATH``, and prints a markdown table of the median and largest wall seconds of each,
its exit status and the line it wrote on stderr. Asserts the exit status: 0 for ``--help``,
2 for every refused file. ``--before DIR`` (another checkout, e.g. ``git worktree add DIR HEAD``)
measures the same cases there too and adds its columns.

Cases: ``--help``; a missing file; a broken YAML line; an unknown top-level key; an unknown
backbone. Each refused file is otherwise a good space (the digits set, which needs no folder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
name: latency
data: {format: digits}
metric: val_auc
trial: {epochs: 2, resources: {cpu: 1, gpu: 0}}
space:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
search: {num_samples: 2, grace_period: 1}
"""

# name -> (arguments after ``python -m search.run``, the space file's text or None, exit status)
CASES = {
    "--help": (["--help"], None, 0),
    "missing file": (["missing.yaml"], None, 2),
    "broken YAML line": (["space.yaml"], GOOD.replace("metric: val_auc", "metric: [val_auc"), 2),
    "unknown key": (["space.yaml"], GOOD + "serach: {num_samples: 4}\n", 2),
    "unknown backbone": (["space.yaml"], GOOD.replace("  lr:", "  backbone: {choice: [resnet18, resnet_18]}\n  lr:"),
                         2),
}


def run_once(root: Path, argv: list[str], text: str | None) -> tuple[float, int, str]:
    """Wall seconds, exit status and the first stderr line of one run in a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="cli-latency-") as folder:
        if text is not None:
            Path(folder, "space.yaml").write_text(text)
        env = {**os.environ, "PYTHONPATH": str(root)}
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "search.run", *argv], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=300)
        seconds = time.perf_counter() - began
    lines = proc.stderr.strip().splitlines()
    return seconds, proc.returncode, lines[-1] if lines else ""


def measure(root: Path, runs: int) -> dict[str, tuple[float, float, int, str]]:
    """Each case's median and largest seconds, exit status and stderr line."""
    out = {}
    for name, (argv, text, expected) in CASES.items():
        timings, status, line = [], None, ""
        for _ in range(runs):
            seconds, status, line = run_once(root, argv, text)
            assert status == expected, f"{root}: {name}: exit {status}, expected {expected}: {line}"
            timings.append(seconds)
        out[name] = (statistics.median(timings), max(timings), status, line)
    return out


def table(after: dict, before: dict | None) -> str:
    head = "| case | exit | stderr | median s | max s |"
    rule = "| --- | --- | --- | --- | --- |"
    if before:
        head += " before: median s | before: max s | before: stderr |"
        rule += " --- | --- | --- |"
    rows = [head, rule]
    for name, (median, largest, status, line) in after.items():
        row = f"| `{name}` | {status} | {'`' + line + '`' if line else '-'} | {median:.2f} | {largest:.2f} |"
        if before:
            b_median, b_max, _, b_line = before[name]
            row += f" {b_median:.2f} | {b_max:.2f} | {'`' + b_line + '`' if b_line else '-'} |"
        rows.append(row)
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each case (default 5)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to measure (default this one)")
    parser.add_argument("--before", type=Path, help="another checkout to measure beside it")
    args = parser.parse_args()
    before = measure(args.before.resolve(), args.runs) if args.before else None
    after = measure(args.root.resolve(), args.runs)
    print(table(after, before))


if __name__ == "__main__":
    main()
