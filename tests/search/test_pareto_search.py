"""End to end: a two-objective search (validation AUC against inference throughput) through
``python -m search.run``, the real Ray Tune, Optuna (multi-objective TPE), MO-ASHA, timm and W&B
(offline), on scikit-learn's digits; then ``search.final`` picking the cheapest trial near the best."""

import json
import math

import optuna
import pytest
import yaml

from search.final import __main__ as final_cli
from search.tune.pareto import architecture
from tests.search.test_run import run_search, table, wandb_runs
from tests.search.tune.test_pareto import brute_force_front
from trainable.export import load_model

SPACE = {
    "name": "tiny_pareto",
    "data": {"format": "digits", "image_size": 16},
    "objectives": [{"val_auc": "max"}, {"throughput": "max"}],
    "trial": {"epochs": 3, "batch_size": 64, "throughput_batch": 32, "resources": {"cpu": 1, "gpu": 0}},
    "space": {
        # Networks of very different cost: a 4-block CNN 32 filters wide, a 2-block one 8 wide.
        "backbone": {"choice": ["simple_cnn", "test_resnet"]},
        "cnn_width": {"choice": [8, 32], "when": {"backbone": "simple_cnn"}},
        "cnn_depth": {"choice": [2, 4], "when": {"backbone": "simple_cnn"}},
        "lr": {"loguniform": [3.0e-4, 1.0e-2]},
    },
    "search": {"algorithm": "optuna", "num_samples": 7, "max_concurrent": 2, "scheduler": "mo_asha",
               "grace_period": 1, "reduction_factor": 2,
               "start_from": [{"backbone": "simple_cnn", "cnn_width": 32, "cnn_depth": 4, "lr": 1.0e-3}]},
    "final": {"ensemble": 2, "tta": False, "threshold": "f1"},
    "wandb": {"project": "lens-search-tests", "mode": "auto"},
}
PICK = "cheapest_within:0.05"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pareto")
    (workdir / "space.yaml").write_text(yaml.safe_dump(SPACE, sort_keys=False))
    proc = run_search(workdir, "space.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = workdir / "results/tiny_pareto"
    return folder, json.loads((folder / "summary.json").read_text()), proc


def test_the_pareto_set_is_exactly_the_non_dominated_trials(searched):
    folder, summary, proc = searched
    assert summary["objectives"] == [{"metric": "val_auc", "mode": "max"}, {"metric": "throughput", "mode": "max"}]
    trials = [t for t in summary["trials"] if t["best"] is not None]
    assert len(trials) == summary["num_trials"] == 7
    assert all(t["costs"]["throughput"] > 0 and t["measured_throughput"] > 0 for t in trials)
    # Each trial's throughput is the fastest its architecture measured.
    for t in trials:
        same = [o["measured_throughput"] for o in trials if architecture(o["config"]) == architecture(t["config"])]
        assert t["costs"]["throughput"] == max(same) >= t["measured_throughput"]
    front = brute_force_front([[t["best"], t["costs"]["throughput"]] for t in trials], ["max", "max"])
    assert {row["trial_id"] for row in summary["pareto"]} == {trials[i]["trial_id"] for i in front}
    values = [row["val_auc"] for row in summary["pareto"]]
    assert values == sorted(values, reverse=True)  # best first on the metric
    assert "Pareto set (" in proc.stdout and all(row["trial_id"] in proc.stdout for row in summary["pareto"])
    assert "throughput" in (folder / "leaderboard.csv").read_text().splitlines()[0]


def test_optuna_is_told_both_objectives_and_keeps_each_trials_curve(searched):
    folder, summary, _ = searched
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(folder / "optuna.journal")))
    study = optuna.load_study(study_name="tiny_pareto", storage=storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    by_curve = {}
    for t in study.trials:
        assert t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        curve = {int(k): v for k, v in t.user_attrs["epoch_values"].items()}
        by_curve[max(curve)] = by_curve.get(max(curve), 0) + 1
        if t.state == optuna.trial.TrialState.COMPLETE:  # the best epoch's AUC and the trial's own measurement
            assert max(curve) == 3 and t.values[0] == pytest.approx(max(curve.values()))
            assert any(math.isclose(t.values[1], s["measured_throughput"]) for s in summary["trials"])
        else:
            assert max(curve) < 3
    stopped = sum(t["status"] == "stopped" for t in summary["trials"])
    assert sum(n for epochs, n in by_curve.items() if epochs < 3) == stopped


def test_the_report_and_the_wandb_summary_show_the_front(searched):
    folder, summary, _ = searched
    assert (folder / "report/pareto.png").stat().st_size > 10_000
    page = (folder / "report/report.html").read_text()
    assert "Pareto set" in page and 'data-file="pareto.png"' in page
    assert 'data-file="importance.png"' in page  # the first rung, from the kept curves
    run = wandb_runs(folder)["tiny_pareto (summary)"]
    row = next(r for r in run["history"] if "objectives/_type" in r)
    rows = table(run, row, "objectives")
    assert rows["columns"] == ["trial", "val_auc", "throughput", "backbone", "pareto"]
    assert {r[0] for r in rows["data"] if r[-1]} == {p["trial_id"] for p in summary["pareto"]}
    assert "pareto/throughput_table/_type" in row  # W&B's scatter of the metric against the cost
    assert run["summary"]["pareto"] == [p["trial_id"] for p in summary["pareto"]]


def test_final_pick_takes_the_cheapest_trial_near_the_best(searched, capsys):
    folder, before, _ = searched
    assert before["pick"]["rule"] == "best" and before["model_costs"]["members"] >= 1
    assert final_cli.main([str(folder), "--set", f"final.pick={PICK}"]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    trials = [t for t in summary["trials"] if t["best"] is not None]
    top = max(t["best"] for t in trials)
    near = [t for t in trials if t["best"] >= top - 0.05]
    cheapest = max(near, key=lambda t: (t["costs"]["throughput"], t["best"]))
    assert summary["pick"]["trial_id"] == cheapest["trial_id"] == summary["best_trial"]
    assert summary["final"]["members"][0] == cheapest["trial_id"]
    speed = {t["trial_id"]: t["costs"]["throughput"] for t in trials}
    assert all(speed[m] >= speed[cheapest["trial_id"]] for m in summary["final"]["members"])
    assert load_model(folder / "best_model.pt").info["trial_id"] == cheapest["trial_id"]
    assert summary["model_costs"]["throughput"] <= cheapest["costs"]["throughput"]
