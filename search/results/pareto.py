"""What a finished multi-objective search hands back: the Pareto set of its trials, the trial
``final.pick`` builds the final model on, what that model costs, and their printed lines."""

from __future__ import annotations

import math
from pathlib import Path

from search.space import pick_distance
from search.tune.pareto import FastestByArchitecture, pareto_mask
from trainable.best import top, within
from trainable.metrics import METRICS


def pool_throughput(records: list[dict]) -> None:
    """Give each trial the fastest ``throughput`` measured by any trial of its architecture
    (:class:`FastestByArchitecture`), keeping its own as ``measured_throughput``."""
    pool = FastestByArchitecture()
    measured = [(r, (r.get("costs") or {}).get("throughput")) for r in records]
    for record, value in measured:
        if value is not None:
            pool.update(record["config"], value)
    for record, value in measured:
        if value is not None:
            record["measured_throughput"] = value
            record["costs"]["throughput"] = pool.get(record["config"])


def objective_values(record: dict, space) -> list[float] | None:
    """A trial's objectives in the space's order: its best value, then its costs; None when the
    trial has no value or a cost is missing (it never reported one, or did not finish an epoch)."""
    costs = record.get("costs") or {}
    values = [record.get("best"), *(costs.get(name) for name, _ in space.costs)]
    return None if any(v is None or not math.isfinite(v) for v in values) else [float(v) for v in values]


def pareto_records(records: list[dict], space) -> list[dict]:
    """The trials no other trial beats on every objective at once (their best validation value,
    their costs), best first on the metric. Stopped trials count: each is a model with the value it
    reached, whatever its scheduler thought of its prospects."""
    scored = [(r, objective_values(r, space)) for r in records]
    scored = [(r, v) for r, v in scored if v is not None]
    if not scored:
        return []
    modes = [mode for _, mode in space.objectives]
    keep = pareto_mask([v for _, v in scored], modes)
    front = [r for (r, _), k in zip(scored, keep) if k]
    return sorted(front, key=lambda r: -r["best"] if space.mode == "max" else r["best"])


def cheaper_or_equal(a: dict, b: dict, space) -> bool:
    """Whether trial ``a`` costs no more than ``b`` on every cost objective."""
    return all((a["costs"][name] >= b["costs"][name]) if mode == "max" else (a["costs"][name] <= b["costs"][name])
               for name, mode in space.costs)


def pick_trial(ranked: list[dict], space) -> tuple[list[dict], dict | None]:
    """``final.pick`` applied to the ranked trials (search.results.records.rank). Returns the trials the
    final stage builds from, the picked one first, and what was picked (None: no trial has a
    value).

    * ``best``: the ranked order as it is: the best on the metric (the default configuration
      when the one-standard-error rule kept it).
    * ``cheapest_within:D``: among trials whose metric is within ``D`` of the best trial's, the
      cheapest by the first cost (the next costs, then the metric, break ties). Only trials no
      costlier than it on every cost follow it, so an ensemble (``final.ensemble``) never adds a
      costlier member to the model a cost-aware search hands back.
    """
    scored = [r for r in ranked if r["best"] is not None]
    if not scored:
        return ranked, None
    rule = space.final.pick
    if rule == "best" or not space.costs:
        return ranked, {"rule": "best", "trial_id": scored[0]["trial_id"]}
    distance, sign = pick_distance(rule), METRICS[space.metric].sign
    best = top((r["best"] for r in scored), space.mode)
    near = [r for r in scored if objective_values(r, space) is not None
            and within(r["best"], best, distance, space.mode)]
    if not near:  # no trial near the best reported its costs: the best, as ranked
        return ranked, {"rule": rule, "trial_id": scored[0]["trial_id"], "note": "no trial with costs near the best"}

    def key(r):
        return (*(-r["costs"][c] if m == "max" else r["costs"][c] for c, m in space.costs), -sign * r["best"])

    picked = min(near, key=key)
    followers = [r for r in scored if r is not picked and objective_values(r, space) is not None
                 and cheaper_or_equal(r, picked, space)]
    return [picked, *followers], {"rule": rule, "trial_id": picked["trial_id"], "distance": distance,
                                  "best_value": best, "candidates": len(near)}

TTA_VIEWS = {False: 1, True: 8, "hflip": 2}


def model_costs(final: dict | None, records: list[dict], space) -> dict[str, float] | None:
    """What the model handed back costs to run: its members' costs added up (parameters and FLOPs
    summed, throughput combined as the members run one after the other) and multiplied by the
    views its test-time augmentation averages. None without costs or a final model."""
    if not space.costs or not final:
        return None
    by_id = {r["trial_id"]: r for r in records}
    members = [by_id.get(t) for t in final.get("members", [])]
    if not members or any(m is None or not m.get("costs") for m in members):
        return None
    views = TTA_VIEWS.get(final.get("tta"), 1)
    out = {"members": len(members), "tta_views": views}
    for name, _ in space.costs:
        values = [m["costs"].get(name) for m in members]
        if any(v is None or not v for v in values):
            continue
        if name == "throughput":
            out[name] = 1.0 / (views * sum(1.0 / v for v in values))
        elif name == "flops":
            out[name] = views * sum(values)
        else:
            out[name] = sum(values)
    return out


def format_cost(name: str, value: float | None) -> str:
    """A cost as people read it: images/s, parameters and FLOPs with an SI prefix."""
    if value is None or not math.isfinite(value):
        return "-"
    if name == "throughput":
        return f"{value:,.0f} img/s"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}" + (" FLOPs" if name == "flops" else "")
    return f"{value:.0f}" + (" FLOPs" if name == "flops" else "")


def describe_pareto(summary: dict) -> list[str]:
    """The printed lines of a multi-objective search: the Pareto set, best first on the metric,
    what ``final.pick`` took, and what the final model costs. Empty for one objective."""
    if not summary.get("objectives"):
        return []
    metric, *costs = [o["metric"] for o in summary["objectives"]]
    front = summary.get("pareto") or []
    lines = [f"Pareto set ({len(front)} of {summary.get('num_trials', '?')} trials: none beaten on "
             f"{metric} and {', '.join(costs)} at once):"]
    for row in front:
        cells = ", ".join(format_cost(c, row.get(c)) for c in costs)
        lines.append(f"  {row['trial_id']}  {metric} {row[metric]:.4f}  {cells}  "
                     f"({row.get('backbone') or '?'}, {row['epochs']} epochs, {row['status']})")
    pick = summary.get("pick") or {}
    if pick.get("rule", "best") != "best":
        lines.append(f"final.pick {pick['rule']}: trial {pick['trial_id']}, the cheapest of "
                     f"{pick.get('candidates', '?')} within {pick.get('distance', 0):g} of the best {metric} ({pick.get('best_value', math.nan):.4f})")
    else:
        folder = str(Path(summary["model"]).parent) if summary.get("model") else "RESULTS"
        lines.append(f"final.pick best: trial {pick.get('trial_id')}; the cheapest trial within 0.005 of the best "
                     f"instead: python -m search.final {folder} --set final.pick=cheapest_within:0.005")
    model = summary.get("model_costs")
    if model:
        cells = ", ".join(format_cost(c, model.get(c)) for c in costs)
        lines.append(f"the final model ({model['members']} member(s) x {model['tta_views']} TTA view(s)) costs {cells}")
    return lines
