"""The figures of merit of ``benchmarks/search_efficiency.py``: what the issue's "epochs to reach
random search's final best" and "seeds at least as good as random" are computed from."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("search_efficiency", ROOT / "benchmarks" / "search_efficiency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_best_so_far_skips_diverged_epochs_and_holds_the_best_after_an_early_end(bench):
    curve = bench.best_so_far([math.nan, 3.0, 5.0, 2.0], 6)
    assert np.isnan(curve[0])
    assert curve[1:].tolist() == [3.0, 3.0, 2.0, 2.0, 2.0]


def test_figures_count_the_epochs_to_random_searchs_final_best_per_seed(bench):
    curves = {
        "random": [np.array([5.0, 4.0, 3.0, 3.0]), np.array([5.0, 5.0, 2.0, 2.0])],
        "tpe+asha": [np.array([4.0, 3.0, 3.0, 3.0]), np.array([4.0, 4.0, 4.0, 4.0])],
    }
    out = bench.figures(curves, 4)
    # Seed 0: random's 3.0 reached after 2 of 4 epochs; seed 1: random's 2.0 never.
    assert out["tpe+asha"]["at_least_random"] == 0.5
    assert out["tpe+asha"]["fraction_q1"] == 0.5 and math.isinf(out["tpe+asha"]["fraction_q3"])
    # Random search reaches its own final best when it first gets there (3 of 4 epochs both times).
    assert out["random"]["fraction_median"] == 0.75 and out["random"]["at_least_random"] == 1.0
    assert out["tpe+asha"]["final_median"] == 3.5


def test_a_suggestion_replays_the_grid_point_nearest_in_log_space(bench):
    grid = {"lr": [1.0e-3, 3.0e-3, 1.0e-2], "optimizer": ["adam", "sgd"]}
    assert bench.snap({"lr": 2.0e-3, "optimizer": "sgd"}, grid) == "lr=0.003|optimizer=sgd"
    assert bench.snap({"lr": 1.7e-3, "optimizer": "adam"}, grid) == "lr=0.001|optimizer=adam"  # below sqrt(3e-6)


def test_one_epoch_top_k_screens_then_trains_the_k_best_by_their_first_epoch(bench, monkeypatch):
    monkeypatch.setattr(bench, "MAX_T", 3)
    first = {"a": 0.9, "b": 0.1, "c": 0.5, "d": 0.3, "e": 0.7, "f": 0.2}
    table = {"curves": {k: [{"val_loss": v}, {"val_loss": v / 2}, {"val_loss": v / 4}] for k, v in first.items()}}
    budget = 12  # 6 one-epoch screenings, then 3 trials x 2 more epochs
    values = bench.one_epoch_top_k(table, 0, budget)
    assert len(values) == budget
    rng = np.random.default_rng(0)
    picks = [sorted(first)[i] for i in rng.integers(len(first), size=6)]
    assert values[:6] == [first[k] for k in picks]
    best3 = sorted(set(picks), key=first.get)[:3]
    assert values[6:] == [x for k in best3 for x in (first[k] / 2, first[k] / 4)]
