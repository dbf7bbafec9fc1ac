"""Trials ASHA stops reach Optuna as pruned at the step they reached (real Ray Tune, ASHA, Optuna)."""

import optuna
import pytest

from search.tune.searcher import PruningOptunaSearch

MAX_EPOCHS = 9


def _trainable(config):
    from ray import tune

    for epoch in range(1, MAX_EPOCHS + 1):
        # Higher x is better at every epoch: ASHA stops the low ones early.
        tune.report({"val_auc": config["x"] * epoch / MAX_EPOCHS, "epoch": epoch, "diverged": 0})


def test_asha_stopped_trials_are_pruned_in_optuna(local_ray, tmp_path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    searcher = PruningOptunaSearch(
        {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}, max_epochs=MAX_EPOCHS,
        metric="val_auc", mode="max",  # a searcher given its space ignores TuneConfig's
        sampler=optuna.samplers.RandomSampler(seed=1), study_name="asha", storage=storage)
    tuner = tune.Tuner(
        _trainable,
        tune_config=tune.TuneConfig(
            metric="val_auc", mode="max", num_samples=9, search_alg=searcher,
            scheduler=ASHAScheduler(max_t=MAX_EPOCHS, grace_period=1, reduction_factor=3,
                                    time_attr="epoch")),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="asha"),
    )
    results = tuner.fit()
    assert results.num_errors == 0

    study = optuna.load_study(study_name="asha", storage=storage)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(study.trials) == 9 and pruned and complete
    for trial in pruned:  # pruned at the step it reached, every value up to it kept
        step = max(trial.intermediate_values)
        assert step < MAX_EPOCHS and sorted(trial.intermediate_values) == list(range(1, step + 1))
        assert trial.intermediate_values[step] == pytest.approx(trial.params["x"] * step / MAX_EPOCHS)
        assert trial.value == trial.intermediate_values[step]  # Optuna's record of a pruned trial
    for trial in complete:  # only trials that ran the whole budget are complete, with its value
        assert trial.value == pytest.approx(trial.params["x"])


def test_only_early_stops_count_as_pruned():
    searcher = PruningOptunaSearch({"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
                                   metric="val_auc", mode="max", max_epochs=MAX_EPOCHS)
    assert searcher.stopped_early({"val_auc": 0.5, "epoch": 3}, error=False)
    assert not searcher.stopped_early({"val_auc": 0.5, "epoch": MAX_EPOCHS}, error=False)
    assert not searcher.stopped_early({"val_auc": 0.0, "epoch": 2, "diverged": 1}, error=False)
    assert not searcher.stopped_early({"val_auc": 0.5, "epoch": 2}, error=True)
    assert not searcher.stopped_early({"epoch": 2}, error=False)


def _searcher(**kwargs):
    return PruningOptunaSearch(
        {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}, max_epochs=3, metric="val_auc",
        mode="max", sampler=optuna.samplers.TPESampler(seed=0), **kwargs)


def test_full_trials_are_told_their_best_epoch_and_diverged_ones_are_infeasible():
    searcher = _searcher()
    for trial_id in ("peaked", "diverged"):
        searcher.suggest(trial_id)
    searcher.on_trial_result("peaked", {"val_auc": 0.7, "epoch": 1, "training_iteration": 1})
    searcher.on_trial_result("peaked", {"val_auc": 0.9, "epoch": 2, "training_iteration": 2})
    searcher.on_trial_complete("peaked", {"val_auc": 0.8, "epoch": 3, "training_iteration": 3})
    searcher.on_trial_result("diverged", {"val_auc": 0.6, "epoch": 1, "training_iteration": 1})
    searcher.on_trial_complete("diverged", {"val_auc": 0.0, "epoch": 2, "training_iteration": 2, "diverged": 1})
    peaked, diverged = searcher.study.trials
    # The best epoch's value: what the leaderboard ranks by and whose checkpoint is exported.
    assert peaked.state == optuna.trial.TrialState.COMPLETE and peaked.value == 0.9
    assert peaked.intermediate_values == {1: 0.7, 2: 0.9, 3: 0.8}
    assert diverged.state == optuna.trial.TrialState.COMPLETE and diverged.user_attrs["diverged"]
    # TPE's constraint machinery sees it as infeasible, the other feasible.
    assert diverged.constraints == {"diverged": 1.0} and peaked.constraints == {}


def test_optuna_steps_are_epochs_not_ray_iterations():
    """A restored trial restarts Ray's training_iteration count; Optuna must see the epoch."""
    searcher = _searcher()
    searcher.suggest("restored")
    searcher.on_trial_result("restored", {"val_auc": 0.5, "epoch": 2, "training_iteration": 1})
    searcher.on_trial_complete("restored", {"val_auc": 0.6, "epoch": 3, "training_iteration": 2})
    (trial,) = searcher.study.trials
    assert trial.intermediate_values == {2: 0.5, 3: 0.6}


def test_no_nan_ever_reaches_optuna():
    nan = float("nan")
    searcher = _searcher()
    for trial_id in ("nan_epoch", "nan_end", "nan_diverged"):
        searcher.suggest(trial_id)
    # A NaN epoch is skipped; the best is the finite one, whatever the order of the values.
    searcher.on_trial_result("nan_epoch", {"val_auc": 0.7, "epoch": 1})
    searcher.on_trial_result("nan_epoch", {"val_auc": nan, "epoch": 2})
    searcher.on_trial_complete("nan_epoch", {"val_auc": 0.6, "best_val_auc": nan, "epoch": 3})
    # Never a finite value: a failed trial, not a number.
    searcher.on_trial_complete("nan_end", {"val_auc": nan, "epoch": 3})
    searcher.on_trial_complete("nan_diverged", {"val_auc": nan, "epoch": 1, "diverged": 1})
    nan_epoch, nan_end, nan_diverged = searcher.study.trials
    assert nan_epoch.state == optuna.trial.TrialState.COMPLETE and nan_epoch.value == 0.7
    assert nan_epoch.intermediate_values == {1: 0.7, 3: 0.6}
    assert nan_end.state == optuna.trial.TrialState.FAIL and nan_end.value is None
    assert nan_diverged.state == optuna.trial.TrialState.COMPLETE and nan_diverged.value == float("-inf")
    assert nan_diverged.constraints == {"diverged": 1.0}


def test_the_trials_own_best_is_what_optuna_is_told():
    searcher = _searcher()
    searcher.suggest("t")
    # The trial reports its best (trainable.best); the searcher need not have seen that epoch.
    searcher.on_trial_complete("t", {"val_auc": 0.8, "best_val_auc": 0.93, "best_epoch": 2, "epoch": 3})
    assert searcher.study.trials[0].value == 0.93


def test_out_of_memory_trials_are_infeasible():
    searcher = _searcher()
    searcher.suggest("oom")
    searcher.on_trial_complete("oom", {"val_auc": 0.0, "epoch": 1, "diverged": 1, "out_of_memory": 1})
    (trial,) = searcher.study.trials
    assert trial.constraints == {"diverged": 1.0} and trial.user_attrs["out_of_memory"]


def test_the_saved_searcher_holds_running_trials_only(tmp_path):
    """Ray pickles the searcher into every experiment snapshot: finished trials live in the study,
    not in the snapshot, so its size stays flat as the search grows. A restored searcher goes on
    with the running trial and ignores a repeated completion of a finished one."""
    import os

    # As the driver keeps it: in the results folder's journal (search.tune.tuner.build_searcher).
    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.journal"))
    searcher = _searcher(storage=optuna.storages.JournalStorage(journal))
    for n in range(40):
        searcher.suggest(f"done{n}")
        searcher.on_trial_result(f"done{n}", {"val_auc": 0.5, "epoch": 1})
        searcher.on_trial_complete(f"done{n}", {"val_auc": 0.6, "epoch": 3})
    searcher.suggest("running")
    searcher.on_trial_result("running", {"val_auc": 0.4, "epoch": 1})
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))
    size_40 = os.path.getsize(path)
    for n in range(40, 200):
        searcher.suggest(f"done{n}")
        searcher.on_trial_complete(f"done{n}", {"val_auc": 0.6, "epoch": 3})
    searcher.save(str(tmp_path / "later.pkl"))
    # What still grows is Optuna's index of the journal's lines (a few integers a trial); a
    # finished trial kept in the searcher would add over a kilobyte.
    growth = (os.path.getsize(tmp_path / "later.pkl") - size_40) / 160
    assert growth < 200, f"the snapshot grows {growth:.0f} bytes a finished trial"
    restored = _searcher()
    restored.restore(str(path))
    restored.on_trial_complete("done3", {"val_auc": 0.99, "epoch": 3})  # repeated: ignored
    restored.on_trial_result("done3", {"val_auc": 0.99, "epoch": 2})
    restored.on_trial_complete("running", {"val_auc": 0.7, "epoch": 3})
    trials = {t.number: t for t in restored.study.trials}
    assert trials[3].value == 0.6 and 2 not in trials[3].intermediate_values
    assert trials[40].state == optuna.trial.TrialState.COMPLETE and trials[40].value == 0.7
    assert trials[40].intermediate_values == {1: 0.4, 3: 0.7}


def test_trials_asked_but_never_run_are_marked_failed_once_the_search_ends(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from search.tune.searcher import close_orphans

    journal = tmp_path / "optuna.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    ran, orphan = study.ask(), study.ask()
    study.tell(ran, 0.9)
    assert close_orphans(journal, "s") == 1
    states = {t.number: t.state for t in optuna.load_study(study_name="s", storage=storage).trials}
    assert states == {ran.number: TrialState.COMPLETE, orphan.number: TrialState.FAIL}
    assert close_orphans(journal, "s") == 0


def test_a_multi_objective_study_is_told_the_best_value_and_costs_and_stopped_trials_are_pruned():
    """Metric and throughput: a full trial gets its best epoch's AUC and its network's fastest
    throughput so far; a stopped one is pruned with its curve kept (Optuna takes no intermediate
    values here); a diverged one is infeasible; then TPE (MOTPE) suggests on from them."""
    searcher = PruningOptunaSearch(
        {"backbone": optuna.distributions.CategoricalDistribution(["a", "b"]),
         "x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        metric=["val_auc", "throughput"], mode=["max", "max"], max_epochs=3,
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=2),
        points_to_evaluate=[{"backbone": b, "x": 0.5} for b in ("a", "b", "b", "a")])
    for trial_id in ("full", "stopped", "diverged"):
        searcher.suggest(trial_id)
    for epoch, auc in ((1, 0.7), (2, 0.9), (3, 0.8)):
        searcher.on_trial_result("full", {"val_auc": auc, "throughput": 500.0, "epoch": epoch})
    searcher.on_trial_complete("full", {"val_auc": 0.8, "best_val_auc": 0.9, "throughput": 500.0, "epoch": 3})
    searcher.on_trial_result("stopped", {"val_auc": 0.6, "throughput": 900.0, "epoch": 1})
    searcher.on_trial_complete("stopped", {"val_auc": 0.65, "best_val_auc": 0.65, "throughput": 900.0, "epoch": 2})
    searcher.on_trial_complete("diverged", {"val_auc": 0.0, "throughput": 800.0, "epoch": 1, "diverged": 1})
    full, stopped, diverged = searcher.study.trials[:3]  # the fourth start point waits, enqueued
    assert full.state == optuna.trial.TrialState.COMPLETE and full.values == [0.9, 500.0]
    assert full.user_attrs["epoch_values"] == {"1": 0.7, "2": 0.9, "3": 0.8} and not full.intermediate_values
    assert stopped.state == optuna.trial.TrialState.PRUNED and stopped.values is None
    assert stopped.user_attrs["epoch_values"] == {"1": 0.6, "2": 0.65}
    assert diverged.constraints == {"diverged": 1.0} and diverged.user_attrs["diverged"]
    assert [d.name for d in searcher.study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    # A later trial of "full"'s network, timed while slowed: told its network's fastest, 500.
    searcher.suggest("again")
    searcher.on_trial_complete("again", {"best_val_auc": 0.5, "val_auc": 0.5, "throughput": 300.0, "epoch": 3})
    assert searcher.study.trials[-1].values == [0.5, 500.0]
    assert isinstance(searcher.suggest("next"), dict)
