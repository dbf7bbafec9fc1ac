"""The driver's pieces that need no running Ray: grid expansion, searcher and table choices."""

import yaml

from search.driver import build_scheduler, build_searcher, grid_points, progress_reporter, startup_trials
from search.searcher import PruningOptunaSearch
from search.space import load_space


def space_file(tmp_path, **changes):
    raw = {"name": "g", "data": {"format": "digits"}, "trial": {"epochs": 4},
           "space": {"optimizer": {"choice": ["adam", "sgd"]},
                     "momentum": {"choice": [0.8, 0.9], "when": {"optimizer": "sgd"}},
                     "t0": {"int": [2, 3]}, "backbone": "simple_cnn"},
           "search": {"algorithm": "grid", "scheduler": "asha", "grace_period": 1}}
    raw.update(changes)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    return load_space(tmp_path / "s.yaml")


def test_grid_expands_conditions_only_where_they_hold(tmp_path):
    points = grid_points(space_file(tmp_path))
    # adam x t0 {2,3}, and sgd x momentum {0.8,0.9} x t0 {2,3}; the fixed backbone in every point.
    assert len(points) == 6
    assert all(p["backbone"] == "simple_cnn" for p in points)
    assert sorted((p["optimizer"], p.get("momentum"), p["t0"]) for p in points) == [
        ("adam", None, 2), ("adam", None, 3), ("sgd", 0.8, 2), ("sgd", 0.8, 3), ("sgd", 0.9, 2), ("sgd", 0.9, 3)]
    searcher, num_samples = build_searcher(space_file(tmp_path))
    assert num_samples == 6 and type(searcher).__name__ == "BasicVariantGenerator"


def test_optuna_and_random_searchers_know_the_epoch_budget(tmp_path):
    space = space_file(tmp_path, search={"algorithm": "optuna", "num_samples": 12,
                                          "start_from": [{"optimizer": "adam", "t0": 2}]})
    searcher, num_samples = build_searcher(space)
    assert isinstance(searcher, PruningOptunaSearch) and num_samples == 12
    assert searcher.max_epochs == 4 and searcher.metric == "val_auc" and searcher.mode == "max"
    assert searcher._points_to_evaluate == [{"optimizer": "adam", "t0": 2}]
    random, _ = build_searcher(space_file(tmp_path, search={"algorithm": "random"}))
    assert type(random._sampler).__name__ == "RandomSampler"


def test_startup_trials_scale_with_the_search():
    assert [startup_trials(n) for n in (4, 12, 20, 60, 500)] == [3, 3, 5, 10, 10]


def test_asha_counts_epochs_up_to_the_budget(tmp_path):
    scheduler = build_scheduler(space_file(tmp_path))
    assert scheduler._time_attr == "epoch" and scheduler._max_t == 4
    assert [milestone for milestone, _ in scheduler._brackets[0]._rungs] == [3, 1]  # grace 1, factor 3
    none = build_scheduler(space_file(tmp_path, search={"algorithm": "grid", "scheduler": "none"}))
    assert type(none).__name__ == "FIFOScheduler"


def test_progress_table_shows_unconditional_searched_parameters(tmp_path):
    reporter = progress_reporter(space_file(tmp_path))
    assert list(reporter._parameter_columns) == ["optimizer", "t0"]
    assert list(reporter._metric_columns)[:2] == ["epoch", "val_auc"]
