"""The search's summary run in W&B (``job_type: summary``), beside one run per trial
(:class:`search.tune.wandb.WandbCallback`): the leaderboard, importances, the final model's test
metrics and pictures, and a multi-objective search's Pareto plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.files import TRAIN_ON_DIR, TRAIN_ON_METRICS


def pareto_plots(summary: dict[str, Any]) -> dict[str, Any]:
    """A multi-objective search's trials as a W&B table (the metric, each cost, backbone, whether
    on the Pareto front) and a scatter of the metric against each cost (``wandb.plot.scatter``)."""
    import wandb

    metric, *costs = [o["metric"] for o in summary["objectives"]]
    front = {row["trial_id"] for row in summary.get("pareto") or []}
    rows = [[t["trial_id"], t["best"], *((t.get("costs") or {}).get(c) for c in costs),
             str((t.get("config") or {}).get("backbone", "")), t["trial_id"] in front]
            for t in summary.get("trials") or [] if t.get("best") is not None]
    table = wandb.Table(columns=["trial", metric, *costs, "backbone", "pareto"], data=rows)
    out: dict[str, Any] = {"objectives": table}
    for cost in costs:
        out[f"pareto/{cost}"] = wandb.plot.scatter(table, cost, metric, title=f"{metric} against {cost}")
    return out


def log_search_summary(project: str, entity: str | None, group: str, mode: str, folder: Path,
                       summary: dict[str, Any], importances: dict[str, float] | None = None,
                       pictures: dict[str, Path] | None = None) -> None:
    """One more run in the search's group (``job_type: summary``): the leaderboard table, the
    parameter importances, the final model's test metrics (at its threshold) with W&B's ROC curve,
    operating point and confusion matrix of the test split, the final stage's steps side by side
    (``final_steps``), the epochs the best trial trained on after the others (``train_on``), in a
    multi-objective search the trials' objectives (``objectives``) and a scatter of the metric
    against each cost (``pareto/<cost>``), and the report's pictures."""
    import pandas as pd
    import wandb

    from search.files import LEADERBOARD_FILE, PREDICTIONS_FILE

    run = _start_summary_run(project, entity, group, mode, folder, summary)
    try:
        data: dict[str, Any] = {"leaderboard": wandb.Table(dataframe=pd.read_csv(folder / LEADERBOARD_FILE))}
        if importances:
            data["importance"] = _importance_bar(importances)
        test = summary.get("test")
        if test and (folder / PREDICTIONS_FILE).is_file():
            data.update(_test_split(run, folder / PREDICTIONS_FILE, test))
        data.update(_train_on(run, folder, summary))
        if summary.get("final"):
            data.update(_final_stage(summary["final"]))
        if summary.get("objectives"):
            data.update(pareto_plots(summary))
            run.summary["pareto"] = [row["trial_id"] for row in summary.get("pareto") or []]
        for name, path in (pictures or {}).items():
            data[f"report/{name}"] = wandb.Image(str(path))
        run.log(data)
        run.summary.update({"best_trial": summary.get("best_trial"), "num_trials": summary.get("num_trials"),
                            **{f"best_{k}": v for k, v in (summary.get("best_val") or {}).items()}})
    finally:
        run.finish()


def _start_summary_run(project: str, entity: str | None, group: str, mode: str, folder: Path,
                       summary: dict[str, Any]):
    """The summary run, resumed when it exists (one id a search), its config the best trial's."""
    import wandb

    return wandb.init(project=project, entity=entity, group=group, job_type="summary", name=f"{group} (summary)",
                      id=f"{group}-summary"[-64:], resume="allow", dir=str(folder), mode=mode,
                      reinit="create_new", config={"best_trial": summary.get("best_trial"),
                                                   **(summary.get("best_config") or {})},
                      settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                              x_disable_machine_info=True))


def _importance_bar(importances: dict[str, float]):
    """The parameter importances as a W&B bar chart."""
    import wandb

    table = wandb.Table(columns=["parameter", "importance"],
                        data=[[k, float(v)] for k, v in importances.items()])
    return wandb.plot.bar(table, "parameter", "importance", title="Parameter importance")


def _test_split(run, predictions: Path, test: dict[str, Any]) -> dict[str, Any]:
    """W&B's ROC curve and confusion matrix of the final model's test predictions; its test
    metrics, and in a binary task its operating point, go into the run's summary."""
    import pandas as pd
    import wandb

    frame = pd.read_csv(predictions)
    names = [str(c) for c in test["class_names"]]
    probabilities = frame[[f"p_{c}" for c in names]].to_numpy()
    truth = frame["true"].astype(str).map({c: i for i, c in enumerate(names)}).to_numpy()
    data = {"test_roc": wandb.plot.roc_curve(truth, probabilities, labels=names, title="ROC (test, final model)")}
    # The predicted column holds the final model's decisions, at its threshold.
    predicted = frame["predicted"].astype(str).map({c: i for i, c in enumerate(names)}).to_numpy()
    data["test_confusion_matrix"] = wandb.plot.confusion_matrix(
        y_true=truth.tolist(), preds=predicted.tolist(), class_names=names,
        title="Confusion matrix (test, final model)")
    for key in ("accuracy", "f1_macro", "precision", "recall", "auc", "tpr0", "tpr10", "ece", "threshold"):
        if test.get(key) is not None:
            run.summary[f"test_{key}"] = test[key]
    if len(names) == 2:  # the operating point: where the threshold sits on the test ROC
        chosen, positive = predicted == 1, truth == 1
        run.summary["test_operating_point"] = {"fpr": float(chosen[~positive].mean()),
                                               "tpr": float(chosen[positive].mean()),
                                               "threshold": test.get("threshold")}
    return data


def _train_on(run, folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The best trial's epochs after the others (search.train_on) as a table, its run having
    ended with them; nothing when it did not train on."""
    import pandas as pd
    import wandb

    on = summary.get("train_on")
    if not (on and (folder / TRAIN_ON_DIR / TRAIN_ON_METRICS).is_file()):
        return {}
    rows = pd.read_json(folder / TRAIN_ON_DIR / TRAIN_ON_METRICS, lines=True)
    keep = [c for c in ("epoch", "train_loss", "val_loss", "val_accuracy", "val_f1", "val_auc", "val_tpr10", "lr")
            if c in rows]
    data = {"train_on": wandb.Table(dataframe=rows[keep])}
    run.summary["train_on"] = on
    return data


def _final_stage(final: dict[str, Any]) -> dict[str, Any]:
    """The final stage's steps side by side, and the seed check (search.final.retrain), one row a
    seed's run, when it ran."""
    import pandas as pd
    import wandb

    from search.final.describe import side_by_side

    data = {"final_steps": wandb.Table(dataframe=side_by_side(final))}
    if final.get("seeds"):
        rows = [{"trial": row["trial_id"], "trial_value": row["value"], "seed_run": i, "value": value}
                for row in final["seeds"] for i, value in enumerate(row["seeds"], 1)]
        data["seed_check"] = wandb.Table(dataframe=pd.DataFrame(rows))
    return data
