"""Ctrl-C and SIGTERM stop a search in whichever stage it is, keep what is done and say how to
continue; ``--resume`` then picks up at that stage (search.stop)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.search.test_run import ROOT, run_search

SPACES = ROOT / "spaces"
STOP_WITHIN_S = 15  # the driver's exit after the signal: Ray's shutdown included


def start(workdir: Path, log: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "search.run", str(SPACES / "digits.yaml"), *args],
                                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(driver: subprocess.Popen, log: Path, text: str, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert driver.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r}: " + log.read_text()[-3000:]
        time.sleep(0.2)


def stop(driver: subprocess.Popen, log: Path, sig: int) -> float:
    """Send ``sig`` to the driver; the seconds it took to exit."""
    sent = time.monotonic()
    driver.send_signal(sig)
    try:
        driver.wait(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    return time.monotonic() - sent


def test_a_signal_in_the_trials_or_the_training_on_stops_and_resume_goes_on(tmp_path):
    folder = tmp_path / "results" / "digits"
    command = f"python -m search.run {SPACES / 'digits.yaml'} --name digits --resume"

    # Ctrl-C while the trials run: Ray Tune saves the experiment and the driver goes no further.
    log = tmp_path / "first.log"
    driver = start(tmp_path, log)
    wait_for(driver, log, "(trial pid=")  # a trial is training
    time.sleep(3)
    took = stop(driver, log, signal.SIGINT)
    print(f"SIGINT during the trials: the driver exited {took:.1f} s later")
    text = log.read_text()
    assert driver.returncode == 130, text[-3000:]
    assert took < STOP_WITHIN_S, (took, text[-3000:])
    assert text.strip().splitlines()[-1] == (f"stopped during the trials; what was done is kept in "
                                             f"results/digits: continue with {command}")
    assert "train on:" not in text and not (folder / "summary.json").exists()

    # --resume finishes the trials; SIGTERM (a job's time limit) while the best trial trains on.
    log = tmp_path / "second.log"
    driver = start(tmp_path, log, "--resume")
    wait_for(driver, log, "train on: trial")
    took = stop(driver, log, signal.SIGTERM)
    print(f"SIGTERM during the training on: the driver exited {took:.1f} s later")
    text = log.read_text()
    assert driver.returncode == 143, text[-3000:]
    assert took < STOP_WITHIN_S, (took, text[-3000:])
    assert text.strip().splitlines()[-1].startswith("stopped during the training on; what was done is kept")
    assert not (folder / "summary.json").exists() and not (folder / "train_on").exists()

    # --resume trains on (the trials are done) and finishes: the results folder, whole.
    proc = run_search(tmp_path, str(SPACES / "digits.yaml"), "--name", "digits", "--resume")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["train_on"]["trial_id"] == summary["best_trial"]
    assert summary["train_on"]["to_epoch"] > summary["train_on"]["from_epoch"]
    assert (folder / "best_model.pt").is_file() and (folder / "report" / "report.html").is_file()
