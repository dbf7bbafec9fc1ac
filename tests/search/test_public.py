"""The package's public face (``import search``): what a script needs, through the same checks
and stages as the commands, importing none of torch, timm or Ray until a function is called."""

import json
import os
import subprocess
import sys

import pytest
import yaml

import search
from trainable.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPACE = {
    "name": "public", "data": {"format": "digits", "val_fraction": 0.2, "test_fraction": 0.2},
    "metric": "val_accuracy",
    "trial": {"epochs": 2, "batch_size": 64, "backbone": "simple_cnn", "resources": {"cpu": 1, "gpu": 0}},
    "space": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}},
    "search": {"algorithm": "random", "num_samples": 2, "max_concurrent": 2, "scheduler": "none"},
    "final": {"ensemble": 2, "tta": False}, "wandb": {"mode": "disabled"},
}


def test_importing_the_package_imports_no_heavy_library():
    code = ("import sys, search; search.load_space(sys.argv[1]); "
            "print(sorted(m for m in ('torch', 'timm', 'ray', 'optuna', 'wandb') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "spaces", "digits.yaml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_script_searches_finalizes_and_predicts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    with pytest.raises(UserError, match="search.num_samples"):
        search.load_space("space.yaml", ["search.num_samples=-1"])
    assert search.load_space("space.yaml", ["trial.epochs=3"]).epochs == 3

    summary = search.run_search("space.yaml", ["trial.epochs=3"], results=tmp_path / "out")
    folder = tmp_path / "out" / "public"
    assert summary == json.loads((folder / "summary.json").read_text())
    assert summary["num_trials"] == 2 and all(t["epochs"] == 3 for t in summary["trials"])
    assert len(summary["final"]["members"]) >= 1

    again = search.finalize(folder, ["final.ensemble=1"])
    assert again["final"]["members"] == [summary["best_trial"]]
    model = search.load_model(folder / "best_model.pt")
    from trainable.data import load_dataset

    dataset = load_dataset(search.load_space(folder / "space.yaml").data)
    test_images, test_labels = dataset.split("test")
    right = int((model.predict(test_images).argmax(1) == test_labels).sum())
    assert right == round(again["test"]["accuracy"] * len(test_labels))
