"""Parameter importances: which searched parameters moved the metric, from the Optuna study in the
results folder (fANOVA, else PED-ANOVA), on every trial's value at the first ASHA rung."""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from search.files import STUDY_FILE
from search.report.figures.common import Skipped, require, saved_figure

FANOVA_MIN_TRIALS = 3  # trials with a value; fANOVA's forest on fewer is a coin toss
PED_ANOVA_MIN_TRIALS = 2
FEW_TRIALS = 10  # below this, importances are flagged as indicative only


@dataclass
class Importances:
    """A study's parameter importances and what they were computed from."""

    values: dict[str, float]  # parameter -> importance, summing to 1, most important first
    method: str  # fANOVA or PED-ANOVA
    n_trials: int  # the trials they come from
    left_out: list[str]  # the study's parameters not assessed (fANOVA: not set in every trial)
    epoch: int | None = None  # the first rung's epoch the values are from; None: complete trials' own


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's info lines and warnings (experimental arguments, few trials) held back, and its
    verbosity restored after: the driver calling this has its own."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def load_study(path: Path, name: str | None = None):
    """The Optuna study in a journal file, as an in-memory copy without its diverged trials.

    The journal is read from a copy: opening one appends to it, and the results folder may be
    read-only. Diverged trials hold sentinel values (0 AUC, infinite loss), not results: left out.
    """
    import optuna

    with tempfile.TemporaryDirectory() as scratch, _quiet_optuna():
        copy = Path(scratch) / path.name
        shutil.copyfile(path, copy)
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(copy)))
        names = [s.study_name for s in storage.get_all_studies()]
        if not names:
            raise Skipped(f"{path.name} holds no study")
        study = optuna.load_study(study_name=name if name in names else names[0], storage=storage)
        memory = optuna.create_study(directions=study.directions)
        memory.add_trials([t for t in study.trials if not t.user_attrs.get("diverged")
                           and all(math.isfinite(v) for v in (t.values or []))])
    return memory


def first_rung_study(study):
    """Every COMPLETE or PRUNED trial's value at the first rung, each as a COMPLETE trial of a new
    in-memory study, and the rung's epoch; ``(None, None)`` when no trial reported per-epoch values.

    ASHA stops most trials early: the rung every trial reached (the smallest last-reported step,
    steps being epochs) compares them all, on the same budget.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    def by_epoch(trial) -> dict[int, float]:
        # A multi-objective study has no intermediate values: the searcher kept them as a user
        # attribute (search.tune.searcher.EPOCH_VALUES), for the first objective, the metric.
        kept = trial.user_attrs.get("epoch_values") or {}
        return dict(trial.intermediate_values) or {int(k): float(v) for k, v in kept.items()}

    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    reported = [(t, by_epoch(t)) for t in finished]
    reported = [(t, values) for t, values in reported if values]
    if not reported:
        return None, None
    epoch = min(max(values) for _, values in reported)
    rung = optuna.create_study(direction=study.directions[0])
    rung.add_trials([create_trial(params=t.params, distributions=t.distributions, value=values[epoch])
                     for t, values in reported if math.isfinite(values.get(epoch, math.nan))])
    return rung, epoch


def param_importances(study) -> Importances:
    """Parameter importances on every trial's value at the first rung (:func:`first_rung_study`),
    or on the COMPLETE trials' values when no trial reported per-epoch values: fANOVA (seed 0), or
    PED-ANOVA when fANOVA cannot tell (too few trials, no parameter present in every trial, an error).

    Raises:
        Skipped: neither can, with the reason.
    """
    from optuna.trial import TrialState

    rung, epoch = first_rung_study(study)
    if rung is None and len(study.directions) > 1:
        raise Skipped("a multi-objective study whose trials kept no per-epoch values")
    trials = (rung or study).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    which = f"trial(s) at epoch {epoch} (the first rung)" if rung else "complete trial(s)"
    if len({t.value for t in trials}) < 2:
        raise Skipped(f"{len(trials)} {which} with {len({t.value for t in trials})} distinct "
                      "value(s): too few for parameter importances")
    seen = list(dict.fromkeys(k for t in study.get_trials(deepcopy=False) for k in t.params))
    values, method, problems = _evaluate(rung or study, len(trials))
    if values is None:
        raise Skipped(f"no parameter importances from {len(trials)} {which}: " + "; ".join(problems))
    return Importances(values, method, len(trials), [k for k in seen if k not in values], epoch)


def _evaluate(study, n_trials: int) -> tuple[dict[str, float] | None, str | None, list[str]]:
    """fANOVA's normalized importances on ``study``'s COMPLETE trials, else PED-ANOVA's:
    ``(values, method, [])``, or ``(None, None, what went wrong with each)``."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    problems = []
    for method, evaluator, least in (("fANOVA", FanovaImportanceEvaluator(seed=0), FANOVA_MIN_TRIALS),
                                     ("PED-ANOVA", PedAnovaImportanceEvaluator(), PED_ANOVA_MIN_TRIALS)):
        if n_trials < least:
            problems.append(f"{method} needs {least} trials")
            continue
        try:
            with _quiet_optuna():  # normalize=False, to see an all-zero result, is experimental
                raw = optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=False)
        except Exception as err:  # any failure here means: try the next evaluator
            problems.append(f"{method} failed ({type(err).__name__}: {err})")
            continue
        total = sum(float(v) for v in raw.values())
        if not raw or not math.isfinite(total) or total <= 0:
            problems.append(f"{method} found no parameter to assess" if not raw
                            else f"{method} cannot tell the parameters apart")
            continue
        return dict(sorted(((k, float(v) / total) for k, v in raw.items()), key=lambda kv: -kv[1])), method, []
    return None, None, problems


def plot_importance(folder: Path, summary: dict[str, Any], png: Path) -> str:
    """The parameters' importances as bars, most important on top; returns the caption, which
    says which trials they come from and how far to trust them."""
    path = require(folder, STUDY_FILE)
    found = param_importances(load_study(path, summary.get("name")))
    names, values = list(found.values)[::-1], list(found.values.values())[::-1]
    which = (f"{found.n_trials} trials at epoch {found.epoch} (the first rung)" if found.epoch is not None
             else f"{found.n_trials} complete trials")
    with saved_figure(png, figsize=(6.5, 1.1 + 0.38 * len(names))) as fig:
        ax = fig.add_subplot()
        bars = ax.barh(names, values, color="tab:blue", height=0.6)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=9)
        ax.set(xlabel="importance (normalized to sum 1)", xlim=(0, max(values) * 1.18),
               title=f"{found.method} importance for {summary['metric']}\n{which}")
    caption = f"{found.method} on the {summary['metric']} of the Optuna study's {which}"
    if found.epoch is not None:
        caption += ", the epoch every trial reached"
    if found.method == "PED-ANOVA":
        caption += " (fANOVA could not run on them)"
    if found.left_out:
        caption += f"; not assessed (not set in every trial): {', '.join(found.left_out)}"
    if found.n_trials < FEW_TRIALS:
        caption += f". Fewer than {FEW_TRIALS} trials: indicative only"
    return caption + "."
