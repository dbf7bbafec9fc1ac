"""Searches on a real two-node Ray cluster on this machine (``python -m cluster.local``): a head
and a worker node, one CPU each, every node its own ``ray start``.

Where the machine allows it (root, ``unshare``), the cluster and the drivers run in a private
network namespace that has only 127.0.0.1, so every connection provably stays on loopback (Ray
otherwise swaps 127.0.0.1 for the machine's own address when a node joins).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cluster.local import session_pids

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 8


class Loopback:
    """A network namespace with only 127.0.0.1, held open by a sleeping process; ``wrap`` runs a
    command inside it. Falls back to running commands directly where namespaces are not allowed."""

    def __init__(self):
        self.holder = None
        if shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip"):
            holder = subprocess.Popen(["unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep 100000"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            probe = subprocess.run(["nsenter", f"--target={holder.pid}", "--net", "true"], capture_output=True)
            if holder.poll() is None and probe.returncode == 0:
                self.holder = holder
            else:
                holder.kill()
                holder.wait()

    def wrap(self, command: list[str]) -> list[str]:
        return command if self.holder is None else ["nsenter", f"--target={self.holder.pid}", "--net", *command]

    def close(self):
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and one worker node, one CPU each; stopped (every process verified gone) at the end."""
    base = tmp_path_factory.mktemp("cluster")
    state = base / "cluster.json"
    env = {**{k: v for k, v in os.environ.items() if k != "WANDB_MODE"},  # the files' wandb: disabled
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT),
           "LENS_SEARCH_CACHE": str(base / "data-cache"), "RAY_DEDUP_LOGS": "0",
           "RAY_AUTH_MODE": "token",  # the cluster's token authentication, for the drivers
           # As in an activated environment: a job's `python` is this one.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           # A lost node is noticed in ~2 s instead of Ray's default ~15 s.
           "RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500",
           "RAY_health_check_failure_threshold": "4"}
    net = Loopback()
    control = [sys.executable, "-m", "cluster.local", "--state", str(state)]
    started = subprocess.run(net.wrap([*control, "start", "--workers", "1", "--cpus", "1"]), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    info = json.loads(state.read_text()) if state.exists() else None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert info["address"].startswith("127.0.0.1:") and len(info["nodes"]) == 2
        yield {"base": base, "state": state, "env": env, "net": net, "control": control, **info}
    finally:
        subprocess.run(net.wrap([*control, "stop"]), cwd=ROOT, env=env, capture_output=True, timeout=120)
        net.close()
        for node in (info or {}).get("nodes", []):
            assert not session_pids(node["session"]), f"{node['role']} node still running"


def space(name: str, **search) -> dict:
    """A small digits search: one CPU per trial, so the two nodes run a trial each."""
    return {
        "name": name,
        "data": {"format": "digits", "image_size": 24, "val_fraction": 0.2, "test_fraction": 0.2},
        "metric": "val_accuracy", "mode": "max",
        "trial": {"epochs": EPOCHS, "batch_size": 16, "backbone": "simple_cnn", "resources": {"cpu": 1, "gpu": 0}},
        "space": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}},
        "search": {"algorithm": "random", "num_samples": 4, "max_concurrent": 2, "scheduler": "none", **search},
        "wandb": {"mode": "disabled"},
    }


def start_search(cluster, workdir: Path, spec: dict, *args: str) -> subprocess.Popen:
    (workdir / "space.yaml").write_text(yaml.safe_dump(spec))
    log = open(workdir / "driver.log", "w")
    return subprocess.Popen(cluster["net"].wrap([sys.executable, "-m", "search.run", "space.yaml", *args]),
                            cwd=workdir, env=cluster["env"], stdout=log, stderr=subprocess.STDOUT)


def node_ids(cluster) -> dict[str, str]:
    return {n["role"]: n["node_id"] for n in cluster["nodes"]}


def rows(trial_dir: Path) -> list[dict]:
    """The results a trial reported, in order (its result.json, one JSON line per epoch)."""
    try:
        lines = (trial_dir / "result.json").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written
            break
    return out


def test_a_search_spreads_its_trials_over_both_nodes(cluster, tmp_path):
    proc = start_search(cluster, tmp_path, space("two_nodes"), "--address", cluster["address"])
    assert proc.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-4000:]
    out = (tmp_path / "driver.log").read_text()
    assert f"running on the Ray cluster at {cluster['address']}: 2 node(s), 2 CPUs" in out
    assert "data sharing: object store" in out
    summary = json.loads((tmp_path / "results/two_nodes/summary.json").read_text())
    assert summary["complete"] and summary["num_trials"] == 4
    assert summary["cluster"]["nodes"] == 2 and summary["cluster"]["data_sharing"] == "object_store"
    assert {t["status"] for t in summary["trials"]} == {"completed"}
    assert {t["node_id"] for t in summary["trials"]} == set(node_ids(cluster).values())
    assert summary["test"]["accuracy"] > 0.5


def test_ray_job_submit_runs_the_same_search_with_the_set_read_on_each_node(cluster, tmp_path):
    """``ray job submit -- python -m search.run ...``: the driver joins the cluster through the
    RAY_ADDRESS the job gets, and with ``data.share: path`` each node's trials read the folder."""
    spec = space("as_job", num_samples=2)
    spec["data"] = {"format": "fits_csv", "path": str(tmp_path / "lens"), "share": "path", "image_size": 32,
                    "simulate": {"kind": "lens_finding", "n": 240, "seed": 0}}
    spec["metric"], spec["trial"]["epochs"] = "val_auc", 2
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "space.yaml").write_text(yaml.safe_dump(spec))
    submit = [sys.executable, "-m", "ray.scripts.scripts", "job", "submit", "--address", cluster["dashboard"],
              "--working-dir", str(tmp_path / "job"), "--",
              "python", "-m", "search.run", "space.yaml", "--results", str(tmp_path / "results")]
    proc = subprocess.run(cluster["net"].wrap(submit), cwd=tmp_path, env=cluster["env"], capture_output=True,
                          text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "succeeded" in out, out[-4000:]
    job = re.search(r"Job '(raysubmit_\w+)' succeeded", out).group(1)
    logs = subprocess.run(cluster["net"].wrap([*submit[:3], "job", "logs", "--address", cluster["dashboard"], job]),
                          env=cluster["env"], capture_output=True, text=True, timeout=120)
    out = logs.stdout  # the whole log (submit's own tail can miss lines of a short job)
    assert f"running on the Ray cluster at {cluster['address']}: 2 node(s)" in out
    assert "data sharing: path (data.share)" in out
    summary = json.loads((tmp_path / "results/as_job/summary.json").read_text())
    assert summary["complete"] and summary["cluster"]["data_sharing"] == "path"
    # The cluster's nodes ran them (which ones is timing: two short trials can follow each other
    # on one node's reused actor; spreading is the first test's, with trials long enough to overlap).
    assert {t["node_id"] for t in summary["trials"]} <= set(node_ids(cluster).values())
    # The trials built the node's memory-mapped, normalized entry (the driver only decodes).
    assert list((cluster["base"] / "data-cache").glob("*.json"))


# Last: it takes the worker node away from the module's cluster.
def test_a_lost_worker_node_costs_only_the_epochs_since_its_checkpoint(cluster, tmp_path):
    """SIGKILL the worker node while a trial on it is half-way: that trial continues on the head
    from its last checkpoint, the trials finished before stay finished, and the search completes."""
    ids = node_ids(cluster)
    proc = start_search(cluster, tmp_path, space("lost_node"), "--address", cluster["address"])
    experiment = tmp_path / "results/lost_node"
    victim, finished_before, deadline = None, {}, time.monotonic() + 400
    try:
        while victim is None:
            assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "no trial reached the middle of its run on the worker node"
            trials = {d.name: rows(d) for d in experiment.glob("trial_*") if d.is_dir()}
            done = {name: r for name, r in trials.items() if r and r[-1]["epoch"] == EPOCHS}
            for name, r in trials.items():
                # Half-way on the worker, with checkpoints on disk, after another trial finished.
                if done and r and r[-1]["node_id"] == ids["worker"] \
                        and 3 <= r[-1]["epoch"] <= EPOCHS - 3 and list((experiment / name).glob("checkpoint_*")):
                    victim, finished_before = name, done
                    break
            time.sleep(0.1)
        killed = subprocess.run(cluster["net"].wrap([*cluster["control"], "kill-worker", "1"]), cwd=ROOT,
                                env=cluster["env"], capture_output=True, text=True, timeout=60)
        assert killed.returncode == 0, killed.stderr
        assert proc.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    name = victim
    summary = json.loads((experiment / "summary.json").read_text())
    assert summary["complete"] and summary["num_trials"] == 4
    by_id = {f"trial_{t['trial_id']}": t for t in summary["trials"]}
    assert {t["status"] for t in summary["trials"]} == {"completed"}, summary["trials"]
    # The killed trial went on on the head, from its checkpoint: its epochs did not restart at 1.
    history = rows(experiment / name)
    on_head = [r for r in history if r["node_id"] == ids["head"]]
    assert on_head, "the trial never ran again after its node was lost"
    # The kill lands a moment after the victim is chosen, and the worker may report one more epoch
    # (with its checkpoint) first: what counts is the last epoch the worker reported.
    last_on_worker = max(r["epoch"] for r in history if r["node_id"] == ids["worker"])
    assert 2 <= on_head[0]["epoch"] <= last_on_worker + 1, history
    assert history[-1]["epoch"] == EPOCHS and by_id[name]["epochs"] == EPOCHS
    assert by_id[name]["node_id"] == ids["head"]
    # Trials finished before the loss are kept as they were, not run again.
    for done_name, before in finished_before.items():
        assert rows(experiment / done_name) == before
        assert by_id[done_name]["epochs"] == EPOCHS
