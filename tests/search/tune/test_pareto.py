"""Non-dominated sorting, MO-ASHA's rung decisions, and what a multi-objective search hands back
(search.pareto), against brute force and hand-worked cases."""

import itertools
import math
import types

import numpy as np
import pytest
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from search.plan import rungs
from search.tune.schedulers.pareto_asha import ParetoASHA
from search.results.pareto import model_costs, pareto_records, pick_trial, pool_throughput
from search.tune.pareto import crowding_distance, front_ranks, pareto_mask, pareto_order
from search.space import FinalSettings


def brute_force_front(points, modes):
    """Indices no other point dominates, by the definition, one pair at a time."""
    sign = [1 if m == "max" else -1 for m in modes]
    better = [[s * v for s, v in zip(sign, p)] for p in points]
    return {i for i, a in enumerate(better)
            if not any(all(x >= y for x, y in zip(b, a)) and any(x > y for x, y in zip(b, a)) for b in better)}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("modes", [("max", "max"), ("max", "min"), ("min", "min", "max")])
def test_the_front_and_its_ranks_are_the_definition_on_random_points_with_ties(seed, modes):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 5, size=(40, len(modes))).astype(float)  # small integers: many ties
    mask = pareto_mask(points, modes)
    assert set(np.flatnonzero(mask)) == brute_force_front(points, modes)
    ranks, rest, rank = front_ranks(points, modes), list(range(len(points))), 0
    while rest:  # peel the fronts off one by one
        front = {rest[i] for i in brute_force_front(points[rest], modes)}
        assert {i for i in rest if ranks[i] == rank} == front
        rest, rank = [i for i in rest if i not in front], rank + 1


def test_nan_counts_as_the_worst_value():
    points = [[0.9, 100.0], [math.nan, 100.0], [0.8, 200.0]]
    assert list(pareto_mask(points, ["max", "max"])) == [True, False, True]


def test_crowding_gives_the_ends_infinity_and_the_crowded_middle_less():
    points = [[0.0, 10.0], [5.0, 5.0], [5.1, 4.9], [5.2, 4.8], [10.0, 0.0]]
    distance = crowding_distance(points, ["min", "min"])
    assert math.isinf(distance[0]) and math.isinf(distance[4])
    assert np.allclose(distance[1:4], [1.02, 0.04, 0.98])
    # The front in crowding order (the ends by the first objective), then the dominated point.
    order = pareto_order([*points, [6.0, 6.0]], ["min", "min"])
    assert list(order) == [0, 4, 1, 3, 2, 5]


def test_rungs_are_where_rays_asha_puts_them():
    """One rung function (search.plan.rungs) for the sizing, the dry run and both schedulers: Ray's
    ASHA's rungs below max_t (one at max_t decides nothing: a trial stops there)."""
    for grace, max_t, rf in ((1, 9, 3), (1, 30, 3), (2, 20, 2), (3, 27, 3), (1, 4, 2), (2, 50, 3)):
        expected = [m for m, _ in reversed(ASHAScheduler(grace_period=grace, max_t=max_t, reduction_factor=rf,
                                                         metric="m", mode="max")._brackets[0]._rungs) if m < max_t]
        assert rungs(grace, max_t, rf) == expected
        scheduler = ParetoASHA(time_attr="epoch", metrics=["m", "params"], modes=["max", "min"],
                               grace_period=grace, max_t=max_t, reduction_factor=rf)
        assert [m for m, _ in scheduler._rungs] == expected


def trial(name):
    return types.SimpleNamespace(trial_id=name, config={"backbone": name})  # each its own network


def test_mo_asha_keeps_a_cheap_weak_trial_that_asha_stops():
    """At the first rung (epoch 1, reduction factor 2) four strong, slow trials have been
    recorded; a weak trial 10 times faster is dominated by none, so MO-ASHA lets it go on, ASHA on
    the metric alone stops it, and a trial both weaker and slower is stopped by both."""
    mo = ParetoASHA("epoch", ["best_val_auc", "throughput"], ["max", "max"], max_t=4, grace_period=1,
                    reduction_factor=2)
    asha = ASHAScheduler(time_attr="epoch", metric="best_val_auc", mode="max", max_t=4, grace_period=1,
                         reduction_factor=2)
    results = [("strong", 0.90, 100.0), ("s2", 0.88, 110.0), ("s3", 0.86, 120.0), ("s4", 0.85, 105.0),
               ("cheap", 0.70, 1000.0), ("worse", 0.60, 90.0)]
    decisions = {}
    for name, auc, speed in results:
        asha.on_trial_add(None, trial(name))
        result = {"epoch": 1, "best_val_auc": auc, "throughput": speed}
        decisions[name] = (mo.on_trial_result(None, trial(name), result), asha.on_trial_result(None, trial(name), result))
    assert decisions["strong"] == (TrialScheduler.CONTINUE, TrialScheduler.CONTINUE)
    assert decisions["cheap"] == (TrialScheduler.CONTINUE, TrialScheduler.STOP)
    assert decisions["worse"] == (TrialScheduler.STOP, TrialScheduler.STOP)


def test_mo_asha_reads_each_architectures_fastest_throughput():
    """A trial timed while another slowed it counts, at every later decision, with the fastest
    throughput its network measured: a trial of a slower network that was undominated beside the
    slowed measurement is dominated once the same network is timed again, undisturbed."""
    mo = ParetoASHA("epoch", ["best_val_auc", "throughput"], ["max", "max"], max_t=9, grace_period=1,
                    reduction_factor=3)

    def result(name, backbone, auc, speed):
        config = {"backbone": backbone}
        return mo.on_trial_result(None, types.SimpleNamespace(trial_id=name, config=config),
                                  {"epoch": 1, "best_val_auc": auc, "throughput": speed})

    assert result("slowed", "resnet18", 0.90, 300.0) == TrialScheduler.CONTINUE
    assert result("other", "resnet50", 0.85, 400.0) == TrialScheduler.STOP  # on the front, but ceil(2/3) = 1
    assert result("fast", "resnet18", 0.95, 1000.0) == TrialScheduler.CONTINUE
    assert mo._pooled_values("slowed", (0.90, 300.0)) == (0.90, 1000.0)
    recorded = mo._rungs[0][1]
    ranks = front_ranks([mo._pooled_values(i, v) for i, v in recorded.items()], ["max", "max"])
    assert dict(zip(recorded, ranks)) == {"slowed": 1, "other": 2, "fast": 0}


def test_mo_asha_promotes_the_top_share_and_stops_at_max_t(tmp_path):
    mo = ParetoASHA("epoch", ["best_val_loss", "params"], ["min", "min"], max_t=9, grace_period=1,
                    reduction_factor=3)
    # Six trials on one front at the first rung, then a dominated one: ceil(7/3) = 3 go on, and
    # the dominated seventh is ranked last.
    front = [(0.1 * i, 60.0 - 10 * i) for i in range(1, 7)]
    actions = [mo.decide(f"t{i}", 1, values) for i, values in enumerate(front)]
    assert actions[0] == TrialScheduler.CONTINUE  # alone on its rung
    assert mo.decide("late", 1, (0.65, 65.0)) == TrialScheduler.STOP
    assert mo.decide("t0", 2, front[0]) == TrialScheduler.CONTINUE  # between rungs: no decision
    assert mo.decide("t0", 9, front[0]) == TrialScheduler.STOP
    mo.save(str(tmp_path / "state.pkl"))
    back = ParetoASHA("epoch", ["a", "b"], ["max", "max"], max_t=2)
    back.restore(str(tmp_path / "state.pkl"))
    assert back._rungs == mo._rungs and back._modes == ["min", "min"]


def space_of(costs=(("throughput", "max"),), pick="best", mode="max"):
    return types.SimpleNamespace(objectives=(("val_auc", mode), *costs), costs=tuple(costs), mode=mode,
                                 metric="val_auc", final=FinalSettings(pick=pick))


def record(trial_id, best, throughput, backbone="resnet18", **extra):
    return {"trial_id": trial_id, "best": best, "costs": {"throughput": throughput}, "epochs": 3,
            "status": "completed", "config": {"backbone": backbone}, **extra}


def test_pareto_records_are_the_non_dominated_best_first_without_those_missing_a_cost():
    records = [record("a", 0.95, 100.0), record("b", 0.90, 500.0), record("c", 0.89, 400.0),
               record("d", 0.80, 2000.0), record("e", 0.99, None), record("f", None, 5000.0)]
    assert [r["trial_id"] for r in pareto_records(records, space_of())] == ["a", "b", "d"]


def test_cheapest_within_picks_the_cheapest_near_the_best_and_only_cheaper_trials_follow_it():
    records = [record("a", 0.95, 100.0), record("b", 0.947, 500.0), record("c", 0.946, 450.0),
               record("d", 0.90, 2000.0), record("e", 0.9455, 600.0)]
    ranked = sorted(records, key=lambda r: -r["best"])
    chosen, pick = pick_trial(ranked, space_of(pick="cheapest_within:0.005"))
    assert pick["trial_id"] == "e" and pick["candidates"] == 4 and math.isclose(pick["best_value"], 0.95)
    assert [r["trial_id"] for r in chosen] == ["e", "d"]  # d is cheaper; a, b and c cost more
    chosen, pick = pick_trial(ranked, space_of(pick="best"))
    assert chosen == ranked and pick == {"rule": "best", "trial_id": "a"}
    # For a loss (min), "within" is above the best.
    losses = [record("a", 0.20, 100.0), record("b", 0.24, 900.0), record("c", 0.30, 5000.0)]
    _, pick = pick_trial(losses, space_of(pick="cheapest_within:0.05", mode="min"))
    assert pick["trial_id"] == "b"


def test_throughput_is_pooled_by_architecture_and_model_costs_add_up():
    records = [record("a", 0.9, 400.0), record("b", 0.8, 900.0), record("c", 0.7, 3000.0, backbone="resnet10t"),
               record("d", 0.6, None)]
    pool_throughput(records)
    assert [r["costs"]["throughput"] for r in records] == [900.0, 900.0, 3000.0, None]
    assert records[0]["measured_throughput"] == 400.0
    costs = model_costs({"members": ["a", "c"], "tta": "hflip"}, records, space_of())
    # One image: 2 views through both members, one after the other.
    assert math.isclose(costs["throughput"], 1 / (2 * (1 / 900 + 1 / 3000)))
    params = [{**record("a", 0.9, 1.0), "costs": {"params": 1e6}}, {**record("b", 0.9, 1.0), "costs": {"params": 3e6}}]
    assert model_costs({"members": ["a", "b"], "tta": False}, params, space_of(costs=(("params", "min"),)))["params"] == 4e6


def test_a_single_objective_search_has_no_model_costs_and_picks_the_best():
    space = types.SimpleNamespace(objectives=(), costs=(), mode="max", final=FinalSettings())
    ranked = [record("a", 0.9, None), record("b", 0.8, None)]
    assert pick_trial(ranked, space) == (ranked, {"rule": "best", "trial_id": "a"})
    assert model_costs({"members": ["a"]}, ranked, space) is None
    assert list(itertools.islice(pareto_order([[1.0]], ["max"]), 1)) == [0]
