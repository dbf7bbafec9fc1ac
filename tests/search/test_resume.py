"""A driver killed mid-search (SIGKILL: no clean-up at all) continues with ``--resume``: finished
trials are not run again, the searcher's Optuna history survives, and ``num_samples`` is reached."""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from tests.search.test_run import ROOT, run_search

NUM_SAMPLES = 6
EPOCHS = 4

SPACE = {
    "name": "killed",
    "data": {"format": "digits", "val_fraction": 0.2, "test_fraction": 0.2},
    "metric": "val_accuracy", "mode": "max",
    "trial": {"epochs": EPOCHS, "batch_size": 32, "backbone": "simple_cnn",
              "resources": {"cpu": 1, "gpu": 0}},
    "space": {"lr": {"loguniform": [1.0e-4, 1.0e-2]}, "weight_decay": {"loguniform": [1.0e-6, 1.0e-3]}},
    "search": {"algorithm": "optuna", "num_samples": NUM_SAMPLES, "max_concurrent": 1, "scheduler": "none"},
    "wandb": {"mode": "offline"},
}


def session_pids(sid: int) -> list[int]:
    """Processes in session ``sid`` (the driver's and everything it started)."""
    pids = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after "pid (comm)": state, ppid, pgrp, session
            pids.append(int(stat.split("/")[2]))
    return pids


def kill_session(sid: int) -> None:
    for _ in range(50):
        pids = session_pids(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"processes of the killed search still alive: {session_pids(sid)}")


def recorded_trials(folder: Path) -> dict[str, str]:
    """Trial id -> status, from the experiment state Ray last saved."""
    states = sorted(folder.glob("experiment_state-*.json"))
    try:
        data = json.loads(states[-1].read_text()) if states else {"trial_data": []}
    except (OSError, ValueError):  # being replaced
        return {}
    trials = [json.loads(entry[0]) for entry in data["trial_data"]]
    return {t["trial_id"]: t["status"] for t in trials}


def test_killed_driver_resumes_without_rerunning_finished_trials(tmp_path):
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    folder = tmp_path / "results/killed"
    env = {**os.environ, "WANDB_MODE": "offline", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "first.log", "w") as log:
        driver = subprocess.Popen([sys.executable, "-m", "search.run", "space.yaml"], cwd=tmp_path,
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            finished = [t for t, s in recorded_trials(folder).items() if s == "TERMINATED"]
            if len(finished) >= 2:
                break
            assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.1)
        else:
            raise AssertionError("no trial finished in time: " + (tmp_path / "first.log").read_text()[-3000:])
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        kill_session(driver.pid)
    assert len(finished) < NUM_SAMPLES, "the search ended before it could be killed"
    before = {t: (folder / f"trial_{t}" / "result.json").read_bytes() for t in finished}
    assert all(len(b.splitlines()) == EPOCHS for b in before.values())

    proc = run_search(tmp_path, "space.yaml", "--resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resuming search 'killed'" in proc.stdout

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["num_trials"] == NUM_SAMPLES
    assert all(t["status"] == "completed" and t["epochs"] == EPOCHS for t in summary["trials"])
    assert set(finished) <= {t["trial_id"] for t in summary["trials"]}
    for trial_id, content in before.items():  # not one more epoch of a finished trial
        assert (folder / f"trial_{trial_id}" / "result.json").read_bytes() == content
    for trial in summary["trials"]:  # every trial reached its last epoch, continuing, not restarting
        rows = [json.loads(line) for line in (folder / f"trial_{trial['trial_id']}" / "result.json").open()]
        assert sorted({r["epoch"] for r in rows}) == list(range(1, EPOCHS + 1))
        assert rows[-1]["epoch"] == EPOCHS

    # The searcher's history survived the kill: one Optuna trial per Ray trial, none proposed twice.
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "optuna.journal")))
    study = optuna.load_study(study_name="killed", storage=storage)
    assert len(study.trials) == NUM_SAMPLES
    assert sorted(t.params["lr"] for t in study.trials) == sorted(t["config"]["lr"] for t in summary["trials"])

    # The final stage ran on the resumed search: the top 3 trials, before the kill or after it.
    from trainable.export import load_model

    top = pd.read_csv(folder / "leaderboard.csv", dtype={"trial": str})["trial"].tolist()[:3]  # the search's ranking
    assert summary["final"]["candidates"] == top
    steps = summary["final"]["steps"]
    assert [s["name"] for s in steps] == ["best trial, argmax", "best trial", "ensemble of 3"]
    model = load_model(folder / "best_model.pt")
    assert [m.trial_id for m in model.members] == summary["final"]["members"] and model.threshold is None
    chosen = next(s for s in steps if s["name"] == summary["final"]["final"])
    assert summary["test"]["accuracy"] == pytest.approx(chosen["test"]["accuracy"], abs=1e-12)
