"""benchmarks/gpu_throughput.py runs end to end at its --smoke size (on the CPU here)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_benchmark_smoke_prints_every_row_against_bare():
    run = subprocess.run([sys.executable, "benchmarks/gpu_throughput.py", "--smoke"], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {name: (float(rate), float(ratio)) for name, rate, ratio in
            re.findall(r"^(\S.*?) +(\d+\.\d) +(\d+\.\d{3})$", run.stdout, re.MULTILINE)}
    assert list(rows) == ["bare", "fp32", "packed 2 x 0.5"], run.stdout
    assert all(rate > 0 and ratio > 0 for rate, ratio in rows.values())
    assert rows["bare"][1] == 1.0
    assert "test_resnet at 32 px" in run.stdout
