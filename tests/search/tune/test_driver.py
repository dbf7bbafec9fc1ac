"""The driver's pieces that need no running Ray: grid expansion, searcher and table choices."""

import pytest
import yaml

from search.tune.progress import parameter_columns, progress_reporter, sortable
from search.tune.tuner import build_scheduler, build_searcher, grid_points, startup_trials
from search.tune.searcher import PruningOptunaSearch
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
    first = searcher.suggest("first")  # the start_from point comes first
    assert first["optimizer"] == "adam" and first["t0"] == 2 and "momentum" not in first
    assert type(searcher.study.sampler).__name__ == "TPESampler"
    random, _ = build_searcher(space_file(tmp_path, search={"algorithm": "random"}))
    assert type(random.study.sampler).__name__ == "RandomSampler"


def test_the_study_is_kept_in_the_journal_as_the_search_runs(tmp_path):
    import optuna

    journal = tmp_path / "results" / "optuna.journal"
    journal.parent.mkdir()
    space = space_file(tmp_path, search={"algorithm": "optuna", "num_samples": 4})
    searcher, _ = build_searcher(space, journal)
    searcher.suggest("a")
    searcher.on_trial_complete("a", {"val_auc": 0.75, "best_val_auc": 0.8, "epoch": 4})
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="g", storage=storage)
    assert [(t.state, t.value) for t in study.trials] == [(optuna.trial.TrialState.COMPLETE, 0.8)]


def test_startup_trials_scale_with_the_search():
    assert [startup_trials(n) for n in (4, 12, 20, 60, 500)] == [3, 3, 5, 10, 10]


def test_asha_counts_epochs_up_to_the_budget(tmp_path):
    scheduler = build_scheduler(space_file(tmp_path))
    # Rungs at epochs 1 and 3 (grace 1, factor 3) below the budget of 4 epochs.
    assert scheduler.debug_string().endswith("Bracket: Iter 3.000: None | Iter 1.000: None")
    # Rungs compare the best value so far, which every trial reports (trainable.best).
    assert scheduler.metric == "best_val_auc"
    none = build_scheduler(space_file(tmp_path, search={"algorithm": "grid", "scheduler": "none"}))
    assert type(none).__name__ == "FIFOScheduler"


def test_progress_table_shows_unconditional_searched_parameters(tmp_path):
    space = space_file(tmp_path)
    from ray.tune import CLIReporter

    assert isinstance(progress_reporter(space), CLIReporter)
    # Conditional parameters are left out of the table (Ray's best-trial line fails on them).
    assert parameter_columns(space, conditional=False) == ["optimizer", "t0"]
    assert parameter_columns(space) == ["optimizer", "momentum", "t0"]


def test_progress_table_sorts_only_when_every_finished_trial_has_a_value():
    """A time budget can end trials before their first epoch: Ray's table, sorted by the metric,
    would compare their missing values (None < None) and stop the search."""
    from types import SimpleNamespace as Trial

    running = Trial(status="RUNNING", last_result={})
    done = Trial(status="TERMINATED", last_result={"val_auc": 0.7})
    cut = Trial(status="TERMINATED", last_result={"trial_id": "x"})
    assert sortable([running, done], "val_auc")
    assert not sortable([running, done, cut, cut], "val_auc")
    # What the reporter would do with these trials without the check.
    with pytest.raises(TypeError):
        sorted([cut, cut], key=lambda t: t.last_result.get("val_auc"))
