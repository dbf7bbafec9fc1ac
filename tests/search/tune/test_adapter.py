"""The one module that uses Ray's and Optuna's private names (search/tune/adapter.py) still works with
the installed versions: this fails loudly, naming what changed, when an upgrade breaks it."""

import re
from importlib.metadata import version
from pathlib import Path

import optuna
import pytest

from search.tune.adapter import (TESTED_MAJORS, asha_bracket_base, asha_brackets, completed_trials, optuna_study,
                            optuna_trials, validate_cluster_config)
from search.tune.searcher import PruningOptunaSearch

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("package", sorted(TESTED_MAJORS))
def test_installed_major_is_the_tested_one_and_pyproject_bounds_it(package):
    major = int(version(package).split(".")[0])
    assert major == TESTED_MAJORS[package], (
        f"{package} {version(package)} is installed; search/tune/searcher.py was tested on "
        f"{package} {TESTED_MAJORS[package]}.x: check search/tune/adapter.py, then update TESTED_MAJORS")
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in dependencies if re.match(rf"{package}\b", d))
    assert f"<{TESTED_MAJORS[package] + 1}" in spec, f"pyproject.toml: {spec!r} needs an upper bound"


def test_ray_optuna_search_still_has_what_the_adapter_reads():
    searcher = PruningOptunaSearch({"x": optuna.distributions.FloatDistribution(0.0, 1.0)}, max_epochs=2,
                                   metric="val_auc", mode="max", sampler=optuna.samplers.RandomSampler(seed=0))
    for name in ("_ot_trials", "_completed_trials", "_ot_study"):
        assert hasattr(searcher, name), f"Ray's OptunaSearch no longer has {name}: update search/tune/adapter.py"
    config = searcher.suggest("a")
    assert set(config) == {"x"}
    assert isinstance(optuna_study(searcher), optuna.Study)
    assert isinstance(optuna_trials(searcher)["a"], optuna.Trial), "OptunaSearch._ot_trials changed meaning"
    searcher.on_trial_result("a", {"val_auc": 0.4, "epoch": 1})
    searcher.on_trial_complete("a", {"val_auc": 0.5, "epoch": 2})
    assert "a" in completed_trials(searcher), "OptunaSearch._completed_trials changed meaning"
    (trial,) = searcher.study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == 0.5
    assert trial.intermediate_values == {1: 0.4, 2: 0.5}
    # A second completion is ignored by Ray's own code path (it warns), not told twice.
    searcher.on_trial_complete("a", {"val_auc": 0.9, "epoch": 2})
    assert searcher.study.trials[0].value == 0.5


def test_rays_cluster_config_validation_is_still_where_the_adapter_reads_it():
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        validate_cluster_config({"cluster_name": "x", "no_such_setting": 1})


def test_rays_asha_still_decides_a_rung_with_its_brackets_cutoff():
    from ray.tune.schedulers import ASHAScheduler

    scheduler = ASHAScheduler(time_attr="epoch", metric="m", mode="max", max_t=9, grace_period=1, reduction_factor=3)
    brackets = asha_brackets(scheduler)
    assert brackets and all(isinstance(b, asha_bracket_base()) for b in brackets), \
        "AsyncHyperBandScheduler._brackets changed: update search/tune/adapter.py"
    # cutoff(recorded) is the value a trial at a rung must reach: the 1 - 1/rf percentile.
    assert brackets[0].cutoff({"a": 0.2, "b": 0.5, "c": 0.8}) == pytest.approx(0.6)
    assert brackets[0].cutoff({}) is None


def test_the_trial_table_can_still_turn_its_sorting_off():
    from ray.tune import CLIReporter

    from search.tune.adapter import reporter_sorted_while

    reporter = CLIReporter(metric="val_auc", mode="max", sort_by_metric=True)
    assert hasattr(reporter, "_sort_by_metric"), "CLIReporter._sort_by_metric changed: update search/tune/adapter.py"
    table = reporter_sorted_while(lambda trials: False)(metric="val_auc", mode="max", sort_by_metric=True)
    table._progress_str([], False)
    assert table._sort_by_metric is False
