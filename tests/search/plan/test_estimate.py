"""``python -m search.run SPACE --dry-run``: the estimate before launch, and nothing started or written."""

import re
from pathlib import Path

import pytest
import yaml

from search import plan
from search.run import main
from tests.search.test_run import ROOT

LENS = str(ROOT / "spaces" / "lens_finding.yaml")


def run_dry(capsys, *argv: str) -> str:
    assert main([*argv]) == 0
    return capsys.readouterr().out


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_asha_expectation_by_hand():
    """Grace 1, max_t 9, reduction factor 3: every trial trains epoch 1, a third goes on to 3,
    a ninth to 9: 1 + 2/3 + 6/9 epochs a trial."""
    assert plan.asha_epochs(1, 9, 3) == pytest.approx(1 + 2 / 3 + 6 / 9)


def test_gpu_cluster_estimate(tmp_path, monkeypatch, capsys):
    """The lens space on 64 GPUs: 2,000 simulated images (1,600 to train, 25 steps of 64), so the
    first rung at epoch 4 (100 steps), then 12, of 30; 60 trials: at most 1,800 epochs, expected
    60 x (4 + 8/3 + 18/9) = 520. At 40 s an epoch: 520 x 40 s + 60 starts of 3 s over 8 slots is
    44 min, 60 trials x 8.67 epochs x 40 s x 0.5 GPU is 2.9 GPU-hours. max_concurrent (8) caps
    what 64 GPUs hold (128 trials of half a GPU), and the line says so."""
    monkeypatch.chdir(tmp_path)
    out = run_dry(capsys, LENS, "--dry-run", "--gpus", "64", "--epoch-seconds", "40")
    assert "1600 for training and 200 for validation, 101 px" in out
    assert "8 trial(s) at once on 64 GPUs (search.max_concurrent: 8; the resources hold 128 trials" in out
    assert "ASHA compares trials at epochs 4, 12 of 30" in out
    assert "epochs: at most 1,800 (no trial stopped), expected 520" in out
    wall = re.search(r"about (\d+) min of wall time with 8 trial", out)
    assert wall and int(wall.group(1)) == round((520 * 40 + 60 * plan.TRIAL_START_S) / 8 / 60)
    assert "2.9 GPU-hours (0.5 GPU a trial" in out
    assert snapshot(tmp_path) == set(), "a dry run wrote or simulated something"


def test_overrides_change_the_estimate(tmp_path, monkeypatch, capsys):
    """--set reaches the estimate: 100 trials at most 16 at once, without early stopping."""
    monkeypatch.chdir(tmp_path)
    out = run_dry(capsys, LENS, "--dry-run", "--gpus", "8", "--set", "search.num_samples=100",
                  "--set", "search.max_concurrent=32", "--set", "search.scheduler=none")
    assert "16 trial(s) at once on 8 GPUs" in out
    assert "epochs: 3,000 (no early stopping)" in out
    assert "give --epoch-seconds S" in out


def test_objectives_are_named_with_their_early_stopping_and_pick(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = run_dry(capsys, LENS, "--dry-run", "--gpus", "8", "--set", "objectives=[{val_auc: max}, {params: min}]",
                  "--set", "search.scheduler=mo_asha", "--set", "final.pick=cheapest_within:0.01")
    assert ("objectives: val_auc (max), params (min), each trial measuring its costs once; MO-ASHA ranks trials "
            "at each rung by all of them; the final model's trial: final.pick cheapest_within:0.01") in out


def test_time_budget_is_settled_from_a_timed_step(tmp_path, monkeypatch, capsys):
    """The quick start's cpu: block leaves epochs, trials and image size auto: without a time the
    dry run says so; with --time it times a step here and settles them as the launch would, on
    the 1,200 images data.simulate would write (720 to train, 120 to validate, 360 to test)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # the cpu: block, as here
    out = run_dry(capsys, LENS, "--dry-run")
    assert "1200 images simulated at launch" in out and "720 for training and 120 for validation" in out
    assert "settled at launch from a timed step" in out and "rungs:" not in out
    # 30 minutes: a search at any speed this shared machine has had (5 minutes held none on a slow day)
    out = run_dry(capsys, LENS, "--dry-run", "--time", "--set", "search.time_budget=1800")
    assert "timing the default configuration" in out
    budget_line = next(line for line in out.splitlines() if line.startswith("time budget 1800 s"))
    trials = int(re.search(r"about (\d+) trials of at most (\d+) epochs", budget_line).group(1))
    assert re.search(rf"^trials: {trials} of at most \d+ epochs", out, re.M)
    assert "the time budget 30 min of wall time" in out
    assert snapshot(tmp_path) == set()


def test_a_loaded_set_is_counted(tmp_path, monkeypatch, capsys):
    """A set that is there is loaded and counted as the search would (digits: 1,797 images, 15 %
    each to validation and test), and the time of an epoch comes from the user's figure."""
    monkeypatch.chdir(tmp_path)
    space = {"name": "digits", "data": {"format": "digits"}, "metric": "val_accuracy", "mode": "max",
             "trial": {"epochs": 9, "batch_size": 32, "resources": {"cpu": 1, "gpu": 0}},
             "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}},
             "search": {"num_samples": 10, "grace_period": 1, "max_concurrent": 1}}
    (tmp_path / "digits.yaml").write_text(yaml.safe_dump(space))
    out = run_dry(capsys, "digits.yaml", "--dry-run", "--epoch-seconds", "2")
    assert re.search(r"^  train +1257 ", out, re.M) and re.search(r"^  val +270 ", out, re.M)
    assert "ASHA compares trials at epochs 1, 3 of 9" in out
    assert "expected 23" in out  # 10 x (1 + 2/3 + 6/9) = 23.3
    assert "1 trial(s) at once on this machine" in out


@pytest.mark.parametrize("argv,expected", [
    (["--gpus", "4"], "--gpus: only with --dry-run"),
    (["--dry-run", "--gpus", "0"], "--gpus: must be a positive integer"),
    (["--dry-run", "--epoch-seconds", "-1"], "--epoch-seconds: must be a positive number"),
    (["--dry-run", "--time", "--epoch-seconds", "3"], "--time and --epoch-seconds: give one"),
    (["--dry-run", "--resume"], "--dry-run estimates a new search"),
    (["--dry-run", "--set", "search.num_samples=lots"], "search.num_samples: must be a positive integer"),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([LENS, *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err
    assert snapshot(tmp_path) == set()
