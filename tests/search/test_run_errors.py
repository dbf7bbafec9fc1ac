"""Bad space files and flags: one line naming the file and key, exit status 2, before Ray starts,
and nothing written."""

import os
import subprocess
import sys

import pytest
import yaml

from search.run import main
from tests.search.test_run import ROOT

GOOD = {
    "name": "ok",
    "data": {"format": "digits"},
    "metric": "val_auc", "mode": "max",
    "trial": {"epochs": 3, "resources": {"cpu": 1, "gpu": 0}},
    "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]},
              "scheduler": {"choice": ["exponential", "cosine"]},
              "gamma": {"uniform": [0.8, 0.99], "when": {"scheduler": "exponential"}}},
    "search": {"num_samples": 2, "grace_period": 1},
}

BAD = [
    ("mode against the metric", {"metric": "val_loss", "mode": "max"},
     "mode: val_loss is better lower: mode min, not max"),
    ("a metric trials report but are not ranked by", {"metric": "train_loss"},
     "metric: 'train_loss' is not reported; reported: val_auc"),
    ("unknown key", {"serach": {}}, "serach: unknown key"),
    ("wrong type", {"search": {**GOOD["search"], "num_samples": "many"}}, "search.num_samples: must be a positive integer"),
    ("empty range", {"space": {**GOOD["space"], "lr": {"loguniform": [1.0e-2, 1.0e-2]}}}, "space.lr.loguniform: empty or inverted range"),
    ("inverted range", {"space": {**GOOD["space"], "lr": {"uniform": [0.1, 0.01]}}}, "space.lr.uniform: empty or inverted range"),
    ("not a trainable parameter", {"space": {**GOOD["space"], "learning_rate": {"uniform": [0.1, 0.2]}}},
     "space.learning_rate: not a trainable setting"),
    ("condition never holds", {"space": {**GOOD["space"], "t0": {"int": [2, 5], "when": {"scheduler": "cosine_warm_restarts"}}}},
     "space.t0.when.scheduler: can never hold"),
    ("unknown backbone", {"space": {**GOOD["space"], "backbone": {"choice": ["resnet18", "efficientnet_b9"]}}},
     "space.backbone: 'efficientnet_b9' is not a timm model"),
    ("grid over a continuous range", {"search": {**GOOD["search"], "algorithm": "grid"}},
     "space.lr: a grid needs choices or int ranges"),
    ("bad wandb mode", {"wandb": {"mode": "sometimes"}}, "wandb.mode: 'sometimes' is not one of"),
    ("missing data folder", {"data": {"format": "npy_folders", "path": "no/such/folder"}},
     "data.path: no/such/folder does not exist"),
]


@pytest.mark.parametrize("change,expected", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_space_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, change, expected):
    import ray

    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({**GOOD, **change}))
    with pytest.raises(SystemExit) as exit_info:
        main(["space.yaml"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: space.yaml: ") and expected in err[0], err
    assert not ray.is_initialized()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


@pytest.mark.parametrize("argv,expected", [
    (["space.yaml", "--set", "search.num_samples"], "--set 'search.num_samples': expected KEY=VALUE"),
    (["space.yaml", "--set", "trial.epochs=0"], "trial.epochs"),
    (["space.yaml", "--resume"], "--resume: results/ok holds no search named 'ok' to resume"),
    (["space.yaml", "--name", "a/b"], "--name / name: 'a/b' must be letters"),
    (["missing.yaml"], "missing.yaml: cannot read"),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(GOOD))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_online_wandb_without_credentials_is_refused_before_ray(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({**GOOD, "wandb": {"mode": "online"}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["space.yaml"])
    assert exit_info.value.code == 2
    assert "error: space.yaml: wandb.mode: online needs W&B credentials" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # the results folder's check made it and removed it


# The paths a run writes, checked before any data is loaded: (flags, what stands in the way, the line).
UNWRITABLE = [
    ("results folder under a file", ["--results", "file.txt"], "--results: cannot write in file.txt/ok (Not a directory)"),
    ("results folder is a file", [], "--results: results/ok is a file, not a folder"),
    ("results folder under /proc", ["--results", "/proc/no-such-folder"],
     "--results: cannot write in /proc/no-such-folder/ok ("),
    ("storage under a file", ["--results", "elsewhere", "--storage", "file.txt/searches"],
     "--storage / storage: cannot write in "),
]


@pytest.mark.parametrize("flags,expected", [u[1:] for u in UNWRITABLE], ids=[u[0] for u in UNWRITABLE])
def test_a_path_that_cannot_be_written_is_one_line_before_the_data(tmp_path, monkeypatch, capsys, flags, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({**GOOD, "data": {"format": "npy_folders", "path": "data"}}))
    (tmp_path / "file.txt").write_text("a file")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ok").write_text("a file where the results folder goes")
    with pytest.raises(SystemExit) as exit_info:
        main(["space.yaml", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    # The data folder is missing too: the paths are refused first, and the set is never read.
    assert len(err) == 1 and err[0].startswith("error: " + expected), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "results", "space.yaml"]
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["ok"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in a read-only folder")
def test_a_results_folder_in_a_read_only_folder_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(GOOD))
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0o500)
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["space.yaml", "--results", "locked/results"])
    finally:
        (tmp_path / "locked").chmod(0o700)
    assert exit_info.value.code == 2
    assert "error: --results: cannot write in locked/results/ok (Permission denied)" in capsys.readouterr().err
    assert not any((tmp_path / "locked").iterdir())


def test_the_writable_check_removes_only_the_folders_it_made(tmp_path):
    from search.request import check_writable

    (tmp_path / "kept").mkdir()
    check_writable(tmp_path / "kept" / "a" / "b", "--results")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"] and not any((tmp_path / "kept").iterdir())
    (tmp_path / "kept" / "old.txt").write_text("x")
    check_writable(tmp_path / "kept", "--results")
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["old.txt"]


def test_command_line_exit_status_and_no_traceback(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({**GOOD, "metric": "val_auroc"}))
    proc = subprocess.run([sys.executable, "-m", "search.run", "space.yaml"], cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: space.yaml: metric: 'val_auroc' is not reported; reported: val_auc, val_accuracy, "
        "val_f1, val_tpr10, val_loss"]


def test_tpr10_of_a_set_of_ten_classes_is_refused_once_the_set_is_read(tmp_path, monkeypatch, capsys):
    """The class count is known once the set is read (after Ray starts): still one line, exit 2,
    Ray stopped, and no results folder. (In this process: the real command's exit and stderr are
    test_command_line_exit_status_and_no_traceback's.)"""
    import ray

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({**GOOD, "metric": "val_tpr10"}))
    with pytest.raises(SystemExit) as exit_info:
        main(["space.yaml"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert errors == ["error: space.yaml: metric: val_tpr10 (the true-positive rate before the tenth false "
                      "positive) needs two classes; the set has 10"], err[-2000:]
    assert not ray.is_initialized()
    assert not (tmp_path / "results").exists()
