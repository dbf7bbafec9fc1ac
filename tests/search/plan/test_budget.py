"""The budget rule (search.budget): ASHA's first rung from the set's size and batch size, and a
time budget turned into epochs, trials and an image size; end to end, a search that fills its
time budget and does not run past it."""

import json
import math

import pandas as pd
import pytest
import yaml

from search import plan
from search.space import complete_point, default_config
from search.plan import Cost, asha_epochs, grace_epochs, size_search
from search.space import load_space
from tests.search.test_run import SPACE, run_search
from trainable.errors import UserError


def space_file(tmp_path, **blocks):
    raw = {**SPACE, **{k: {**SPACE.get(k, {}), **v} if isinstance(v, dict) else v for k, v in blocks.items()}}
    raw.pop("cpu")
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("n_train, batch, max_t, grace", [
    (720, 64, None, 10),      # 11 steps an epoch: 10 epochs for 100 steps
    (720, 32, None, 5),       # 22 steps an epoch
    (14400, 64, None, 1),     # 225 steps: one epoch is plenty
    (3200, 32, None, 1),      # exactly 100 steps
    (3199, 32, None, 2),      # 99 steps: not enough
    (100, 32, 9, 3),          # 3 steps an epoch wants 34 epochs; one rung below max_t = 9 at most
    (10, 32, None, 100),      # fewer images than a batch: one step an epoch
])
def test_grace_period_gives_the_first_rung_enough_optimizer_steps(n_train, batch, max_t, grace):
    assert grace_epochs(n_train, batch, max_t, 3) == grace
    if max_t is None:
        steps = plan.steps_per_epoch(n_train, batch)
        assert grace * steps >= plan.MIN_RUNG_STEPS > (grace - 1) * steps


def test_asha_cost_counts_stopped_trials_only_up_to_their_rung():
    # Rungs 1, 3, 9 of 27: all train 1 epoch, a third 2 more, a ninth 6 more, a 27th 18 more.
    assert asha_epochs(1, 27, 3) == pytest.approx(1 + 2 / 3 + 6 / 9 + 18 / 27)
    assert asha_epochs(5, 15, 3) == pytest.approx(5 + 10 / 3)
    assert asha_epochs(4, 4, 3) == 4  # no rung below max_t: every trial trains it all


def test_auto_grace_period_without_a_time_budget_comes_from_the_set(tmp_path):
    space = load_space(space_file(tmp_path, trial={"epochs": 30, "batch_size": 32},
                                  search={"grace_period": "auto"}))
    assert space.auto == {"grace_period"}
    sizing = size_search(space, n_train=720, n_val=90, native=101, slots=2, cost=None, budget_s=None)
    assert (sizing.epochs, sizing.grace_period, sizing.num_samples, sizing.steps) == (30, 5, SPACE["search"]["num_samples"], 22)
    sized = plan.apply(space, sizing)
    assert sized.search.grace_period == 5 and sized.raw["search"]["grace_period"] == 5 and not sized.auto
    assert "epochs 5, 15 of 30; the first after 110 optimizer steps (22 per epoch" in sizing.rung_line(3, "asha")
    # A fixed grace period stands.
    fixed = load_space(space_file(tmp_path, trial={"epochs": 30}, search={"grace_period": 2}))
    assert size_search(fixed, 720, 90, 101, 2, None, None).grace_period == 2


def lens_budget_space(tmp_path, seconds=480, train_on=0):
    """train_on 0: the trials have the whole budget (the share for training on is tested apart)."""
    return load_space(space_file(
        tmp_path, data={"image_size": "auto"}, trial={"epochs": "auto", "batch_size": 32},
        search={"time_budget": seconds, "num_samples": "auto", "grace_period": "auto", "reduction_factor": 3,
                "train_on": train_on}))


@pytest.mark.parametrize("n", [900, 4000, 18000])
def test_time_budget_sizes_a_search_that_fits_it(tmp_path, n):
    space = lens_budget_space(tmp_path)
    assert space.auto == {"epochs", "num_samples", "grace_period", "image_size"}
    cost = Cost(step_s=0.25, val_image_s=0.002, image_size=101)
    n_train, n_val = int(n * 0.8), n // 10
    sizing = size_search(space, n_train, n_val, 101, slots=2, cost=cost, budget_s=480)
    # The expected cost of the planned trials fits the budget; one more trial would not have.
    epoch_s = cost.epoch_s(n_train, n_val, 32, sizing.image_size)
    trial_s = epoch_s * asha_epochs(sizing.grace_period, sizing.epochs, 3) + plan.TRIAL_START_S
    capacity = 480 * 2 * plan.SAFETY
    # The first trial runs all its epochs: asynchronous ASHA promotes a trial alone at its rung.
    first_s = epoch_s * sizing.epochs + plan.TRIAL_START_S
    assert first_s + (sizing.expected_trials - 1) * trial_s <= capacity < first_s + sizing.expected_trials * trial_s
    assert sizing.expected_trials >= plan.MIN_TRIALS
    # max_t is the grace period times a power of the reduction factor: ASHA's rungs land on it.
    k = round(math.log(sizing.epochs / sizing.grace_period, 3))
    assert sizing.epochs == sizing.grace_period * 3 ** k and plan.MIN_PROMOTIONS <= k <= plan.MAX_PROMOTIONS
    # A full trial, the winner's, ends within the budget.
    assert sizing.epochs * epoch_s + plan.TRIAL_START_S <= 480 and sizing.short_of is None
    assert sizing.start_until_s == pytest.approx(480 - epoch_s * sizing.grace_period - plan.TRIAL_START_S)
    assert sizing.num_samples >= sizing.expected_trials


def test_images_keep_their_native_size_when_it_fits_and_shrink_when_it_does_not(tmp_path):
    space = lens_budget_space(tmp_path)
    cost = Cost(step_s=0.25, val_image_s=0.002, image_size=101)
    small = size_search(space, 720, 90, 101, 2, cost, 480)
    large = size_search(space, 14400, 1800, 101, 2, cost, 480)
    assert small.image_size is None  # 900 images: native 101 px
    assert large.image_size in plan.IMAGE_SIZES and large.image_size < 101
    # The largest size that holds the rule: at the next size up, no trial length both leaves time
    # for MIN_TRIALS and ends within the budget.
    bigger = max(s for s in (101, *plan.IMAGE_SIZES) if s > large.image_size)
    epoch_s = cost.epoch_s(14400, 1800, 32, bigger)
    for k in range(plan.MIN_PROMOTIONS, plan.MAX_PROMOTIONS + 1):
        epochs = large.grace_period * 3 ** k
        trial_s = epoch_s * asha_epochs(large.grace_period, epochs, 3) + plan.TRIAL_START_S
        first_s = epoch_s * epochs + plan.TRIAL_START_S
        assert first_s + (plan.MIN_TRIALS - 1) * trial_s > 480 * 2 * plan.SAFETY or first_s > 480
    # A fixed image size is never changed, whatever the budget.
    fixed = load_space(space_file(tmp_path, trial={"epochs": "auto", "batch_size": 32},
                                  search={"time_budget": 480, "num_samples": "auto"}))
    assert size_search(fixed, 14400, 1800, 101, 2, cost, 480).image_size is None


def test_a_longer_budget_buys_longer_trials_then_more_trials(tmp_path):
    space = load_space(space_file(tmp_path, trial={"epochs": "auto", "batch_size": 32},
                                  search={"time_budget": 480, "num_samples": "auto", "grace_period": "auto",
                                          "reduction_factor": 3, "train_on": 0}))
    cost = Cost(step_s=1.0, val_image_s=0.002, image_size=101)
    sizes = [size_search(space, 720, 90, 101, 2, cost, seconds) for seconds in (1800, 7200, 28800)]
    epochs = [s.epochs for s in sizes]
    grace = sizes[0].grace_period
    assert epochs == [grace * 3 ** plan.MIN_PROMOTIONS] + 2 * [grace * 3 ** plan.MAX_PROMOTIONS]
    assert sizes[-1].expected_trials > 3 * sizes[-2].expected_trials
    assert all(s.short_of is None for s in sizes)


def test_a_budget_too_short_for_a_search_trains_the_default_alone_and_says_what_would_do(tmp_path):
    space = lens_budget_space(tmp_path, seconds=300)
    cost = Cost(step_s=1.0, val_image_s=0.002, image_size=101)
    short = size_search(space, 14400, 1800, 101, 2, cost, 300, node_slots=2)
    assert short.alone and short.num_samples == 1 and short.widen == 2
    # The largest size at which the default configuration trains MIN_FULL_EPOCHS (here none: the smallest).
    assert short.image_size == plan.IMAGE_SIZES[-1]
    assert 300 * 2 * plan.SAFETY / short.epoch_s < plan.MIN_FULL_EPOCHS
    assert short.epochs * short.epoch_s >= 300 * 2 * plan.SAFETY  # a bound: the budget ends the trial
    assert f"needs a time budget of about {short.short_of:.0f} s" in short.short_line() and "which is what runs" in short.short_line()
    assert "the default configuration trains alone" in short.budget_line(300, cost, 32)
    # The space runs the default configuration, completed, on two trials' CPUs.
    alone = plan.apply(space, short)
    assert alone.search.num_samples == 1 and alone.resources == {"cpu": 2, "gpu": 0}
    assert alone.search.start_from == (complete_point(space, dict(space.search.start_from[0])),)
    assert alone.raw["trial"]["resources"] == {"cpu": 2, "gpu": 0}
    # The budget it names holds a search.
    enough = size_search(space, 14400, 1800, 101, 2, cost, short.short_of * 1.01)
    assert not enough.alone and enough.short_of is None and enough.expected_trials >= plan.MIN_TRIALS
    assert enough.epochs == short.short_epochs and enough.short_line() is None
    # A file that names its number of trials gets its search, and the warning.
    named = load_space(space_file(tmp_path, data={"image_size": "auto"}, trial={"epochs": "auto", "batch_size": 32},
                                  search={"time_budget": 300, "num_samples": 6, "reduction_factor": 3, "train_on": 0}))
    searched = size_search(named, 14400, 1800, 101, 2, cost, 300)
    assert not searched.alone and searched.num_samples == 6 and searched.expected_trials < 6
    assert searched.short_of is not None and "unlikely to beat" in searched.short_line()


@pytest.mark.parametrize("train_on", ["auto", 0.5])
def test_the_budget_the_warning_names_is_the_whole_budget_a_search_needs(tmp_path, train_on):
    """With a share of the budget kept for training on, the warning names the whole budget: given
    it, the driver searches (and trains on); given a little less, it trains the default alone. (It
    named the trials' share once: lens4000 was told a search needs 513 s, with 540 s given.)"""
    space = lens_budget_space(tmp_path, seconds=300, train_on=train_on)
    cost = Cost(step_s=1.0, val_image_s=0.002, image_size=101)
    short = size_search(space, 14400, 1800, 101, 2, cost, 300, node_slots=2)
    assert short.alone and short.short_of > 300
    enough = size_search(space, 14400, 1800, 101, 2, cost, short.short_of * 1.01, node_slots=2)
    assert not enough.alone and enough.short_of is None and enough.train_on_s > 0
    assert enough.expected_trials >= plan.MIN_TRIALS and enough.epochs == short.short_epochs
    assert enough.epochs + enough.train_on_epochs >= plan.MIN_FULL_EPOCHS
    assert size_search(space, 14400, 1800, 101, 2, cost, short.short_of * 0.97, node_slots=2).alone


@pytest.mark.parametrize("share", ["auto", 0.5])
def test_a_share_of_the_budget_is_kept_for_the_best_trial_to_train_on(tmp_path, share):
    """The trials are sized to the budget less the share (search.train_on); the best trial's
    epochs with those it trains on reach MIN_FULL_EPOCHS, which lets max_t be shorter."""
    space = lens_budget_space(tmp_path, seconds=900, train_on=share)
    cost = Cost(step_s=0.25, val_image_s=0.002, image_size=101)
    part = plan.TRAIN_ON if share == "auto" else share
    sizing = size_search(space, 3200, 400, 101, slots=2, cost=cost, budget_s=900, node_slots=2)
    assert not sizing.alone and sizing.widen == 2
    assert sizing.search_s == pytest.approx(900 * (1 - part)) and sizing.train_on_s == pytest.approx(900 * part)
    epoch_s = cost.epoch_s(3200, 400, 32, sizing.image_size)
    trial_s = epoch_s * asha_epochs(sizing.grace_period, sizing.epochs, 3) + plan.TRIAL_START_S
    first_s = epoch_s * sizing.epochs + plan.TRIAL_START_S
    capacity = sizing.search_s * 2 * plan.SAFETY
    assert first_s + (sizing.expected_trials - 1) * trial_s <= capacity < first_s + sizing.expected_trials * trial_s
    assert first_s <= sizing.search_s and sizing.expected_trials >= plan.MIN_TRIALS
    assert sizing.start_until_s == pytest.approx(sizing.search_s - epoch_s * sizing.grace_period - plan.TRIAL_START_S)
    assert sizing.train_on_epochs == int(sizing.train_on_s * plan.SAFETY / epoch_s)
    assert sizing.epochs + sizing.train_on_epochs >= plan.MIN_FULL_EPOCHS
    assert f"then the best trial trains on for the last {sizing.train_on_s:.0f} s on 2 trial(s)' resources" \
        in sizing.budget_line(900, cost, 32)
    # The share is written into the saved space (what --resume trains on for).
    sized = plan.apply(space, sizing)
    assert sized.search.train_on == pytest.approx(part, abs=1e-4) == sized.raw["search"]["train_on"]
    # Without the share the trials get the whole budget, and max_t alone must reach MIN_FULL_EPOCHS.
    whole = size_search(lens_budget_space(tmp_path, seconds=900), 3200, 400, 101, 2, cost, 900)
    assert whole.train_on_s == 0 and whole.search_s == 900 and whole.epochs >= plan.MIN_FULL_EPOCHS
    # A budget that holds no search: the default alone has all of it, and nothing is kept.
    short = size_search(space, 14400, 1800, 101, 2, Cost(step_s=1.0, val_image_s=0.002, image_size=101), 300)
    assert short.alone and short.train_on_s == 0
    assert plan.apply(space, short).raw["search"]["train_on"] == 0


def test_a_multi_objective_search_keeps_no_share_for_one_trial_unless_told(tmp_path):
    """One trial trained on past the others' max_t would dominate the whole front: auto is 0."""
    cost = Cost(step_s=0.25, val_image_s=0.002, image_size=101)
    space = load_space(space_file(tmp_path, trial={"epochs": "auto", "batch_size": 32},
                                  search={"time_budget": 900, "num_samples": "auto", "grace_period": "auto"},
                                  objectives=[{"val_auc": "max"}, {"params": "min"}]))
    sizing = size_search(space, 3200, 400, 101, slots=2, cost=cost, budget_s=900, node_slots=2)
    assert plan.train_on_share(space) == 0 and sizing.train_on_s == 0 and sizing.search_s == 900
    told = load_space(space_file(tmp_path, trial={"epochs": "auto", "batch_size": 32},
                                 search={"time_budget": 900, "num_samples": "auto", "train_on": 0.25},
                                 objectives=[{"val_auc": "max"}, {"params": "min"}]))
    assert plan.train_on_share(told) == 0.25


def test_the_cost_of_an_epoch_is_a_line_in_the_pixel_count_through_both_timed_sizes():
    cost = Cost(step_s=1.0, val_image_s=0.01, image_size=101, small_step_s=0.2, small_val_image_s=0.004,
                small_size=32)
    extra = plan.EPOCH_EXTRA_S
    epoch = {side: cost.epoch_s(3200, 400, 32, side) for side in (32, 48, 64, 101)}
    assert epoch[101] == pytest.approx(100 * 1.0 + 400 * 0.01 + extra)
    assert epoch[32] == pytest.approx(100 * 0.2 + 400 * 0.004 + extra)
    slope = (epoch[101] - epoch[32]) / (101 ** 2 - 32 ** 2)
    for side in (48, 64):
        assert epoch[side] == pytest.approx(epoch[32] + slope * (side ** 2 - 32 ** 2))
    # A step timed at one size only: all of it per pixel, so a quarter of the pixels costs a quarter.
    alone = Cost(step_s=1.0, val_image_s=0.01, image_size=64)
    assert alone.epoch_s(3200, 400, 32, 32) - extra == pytest.approx((alone.epoch_s(3200, 400, 32) - extra) / 4)
    # The fixed part makes small images dearer than pixel scaling says: a size fits less often.
    assert epoch[48] > (epoch[101] - extra) * (48 / 101) ** 2 + extra


def test_image_sizes_stop_at_the_floor_which_is_a_candidate_itself():
    assert plan.image_sizes(101, True) == [None, 96, 80, 64, 48, 32]
    assert plan.image_sizes(101, True, 48) == [None, 96, 80, 64, 48]
    assert plan.image_sizes(101, True, 40) == [None, 96, 80, 64, 48, 40]
    assert plan.image_sizes(101, True, 101) == plan.image_sizes(101, True, 150) == [None]
    assert plan.image_sizes(101, False, 48) == [None]


def test_a_floor_on_the_image_size_costs_trials_instead_of_pixels(tmp_path):
    """The quick start on a slow day (the step as timed then): 32 px and a full search without a
    floor; at data.min_image_size 48, fewer trials at 48 px; slower still, the default alone,
    never under the floor."""
    def lens(**data):
        return load_space(space_file(
            tmp_path, data={"image_size": "auto", **data}, trial={"epochs": "auto", "batch_size": 32},
            search={"time_budget": 540, "num_samples": "auto", "grace_period": "auto", "reduction_factor": 3}))

    slow = Cost(step_s=1.46, val_image_s=0.006, image_size=101, small_step_s=0.24, small_val_image_s=0.0006,
                small_size=32)
    free = size_search(lens(), 720, 120, 101, 2, slow, 540, node_slots=2)
    assert free.image_size == 32 and free.expected_trials >= plan.MIN_TRIALS and free.floor is None
    floored = lens(min_image_size=48)
    assert floored.min_image_size == 48
    sizing = size_search(floored, 720, 120, 101, 2, slow, 540, node_slots=2)
    assert sizing.image_size == 48 and not sizing.alone and sizing.floor == 48
    assert plan.MIN_TRIALS_AT_FLOOR <= sizing.expected_trials < plan.MIN_TRIALS
    assert sizing.train_on_s > 0 and sizing.epochs + sizing.train_on_epochs >= plan.MIN_FULL_EPOCHS
    assert "rather than images under data.min_image_size, 48 px" in sizing.budget_line(540, slow, 32)
    # Where a size above the floor holds a whole search, the floor changes nothing.
    fast = Cost(step_s=0.56, val_image_s=0.003, image_size=101, small_step_s=0.1, small_val_image_s=0.0003,
                small_size=32)
    assert size_search(floored, 720, 120, 101, 2, fast, 540) == size_search(lens(), 720, 120, 101, 2, fast, 540)
    # Too slow for even MIN_TRIALS_AT_FLOOR: the default alone, at the largest size it trains
    # MIN_FULL_EPOCHS at, and not under the floor even where that size gives it fewer.
    slower = Cost(step_s=7.0, val_image_s=0.02, image_size=101, small_step_s=1.5, small_val_image_s=0.002,
                  small_size=32)
    alone = size_search(floored, 720, 120, 101, 2, slower, 540, node_slots=2)
    assert alone.alone and alone.image_size == 48 and alone.floor is None
    assert 540 * 2 * plan.SAFETY / alone.epoch_s < plan.MIN_FULL_EPOCHS
    assert size_search(lens(), 720, 120, 101, 2, slower, 540, node_slots=2).image_size == 32
    # Settled, the saved file has a fixed size and no floor, and loads again (--resume).
    sized = plan.apply(floored, sizing)
    assert sized.raw["data"]["image_size"] == 48 and "min_image_size" not in sized.raw["data"]
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(sized.raw))
    assert load_space(again).data.image_size == (48, 48)
    # A size the user fixes stands, under the floor too (--set data.image_size=32 on the quick start).
    fixed = load_space(space_file(tmp_path, data={"image_size": 32, "min_image_size": 48},
                                  trial={"epochs": "auto", "batch_size": 32},
                                  search={"time_budget": 540, "num_samples": "auto"}))
    assert fixed.min_image_size is None and fixed.data.image_size == (32, 32)
    assert "min_image_size" not in fixed.raw["data"]  # the saved data: block is load_dataset's
    assert size_search(fixed, 720, 120, 101, 2, slow, 540).image_size is None  # None: as loaded, 32 px


@pytest.mark.parametrize("auto", [True, False])
def test_the_step_is_timed_at_the_smallest_size_too_when_the_size_is_auto(tmp_path, auto):
    import numpy as np
    import torch

    from trainable.data.dataset import ImageDataset

    blocks = {"trial": {"epochs": "auto"}, "search": {"time_budget": 60, "num_samples": "auto"},
              "space": {"backbone": "simple_cnn"}}
    if auto:
        blocks["data"] = {"image_size": "auto"}
    space = load_space(space_file(tmp_path, **blocks))
    floored = load_space(space_file(tmp_path, **{**blocks, "data": {"image_size": "auto", "min_image_size": 40}}))
    n = 160
    dataset = ImageDataset(images=torch.randn(n, 1, 64, 64), labels=torch.arange(n) % 2, class_names=("0", "1"),
                           splits={"train": np.arange(128), "val": np.arange(128, n), "test": np.arange(0)},
                           files=tuple(f"{i}.fits" for i in range(n)))
    cost = plan.measure(space, dataset, local=True)
    assert cost.image_size == 64 and cost.step_s > 0 and cost.val_image_s > 0
    if auto:
        assert cost.small_size == min(plan.IMAGE_SIZES) and cost.small_step_s > 0 and cost.small_val_image_s > 0
        # With data.min_image_size, at the floor: the smallest size the rule may choose.
        assert plan.measure(floored, dataset, local=True).small_size == 40
    else:
        assert cost.small_size is None and cost.small_step_s is None


@pytest.mark.parametrize("blocks, message", [
    ({"trial": {"epochs": "auto"}}, "trial.epochs: auto needs search.time_budget (seconds) to size it"),
    ({"search": {"num_samples": "auto"}}, "search.num_samples: auto needs search.time_budget"),
    ({"data": {"image_size": "auto"}}, "data.image_size: auto needs search.time_budget"),
    ({"search": {"grace_period": "soon"}}, "search.grace_period: must be auto or an integer in [1, trial.epochs = 4]"),
    ({"search": {"num_samples": 0}}, "search.num_samples: must be a positive integer or auto"),
    ({"search": {"train_on": 0.9, "time_budget": 60}}, "search.train_on: must be auto or a share of search.time_budget in [0, 0.8]"),
    ({"search": {"train_on": 0.25}}, "search.train_on: a share of search.time_budget, which is not set"),
    ({"data": {"image_size": "auto", "min_image_size": "48px"}, "search": {"time_budget": 60}},
     "data.min_image_size: must be a positive number of pixels, got '48px'"),
])
def test_auto_values_are_checked_before_anything_runs(tmp_path, blocks, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        load_space(space_file(tmp_path, **blocks))


def test_the_default_configuration_is_one_configuration(tmp_path):
    """start_from's unnamed parameters: the trainable's default where the range holds it, else the
    range's middle; conditional ones only where their condition holds."""
    space = load_space(space_file(tmp_path, space={"weight_decay": {"loguniform": [1.0e-6, 1.0e-2]},
                                                   "drop_rate": {"uniform": [0.0, 0.4]},
                                                   "focal_gamma": {"uniform": [1.0, 3.0], "when": {"loss": "focal"}}}))
    point = complete_point(space, dict(space.search.start_from[0]))
    assert point["backbone"] == "simple_cnn" and point["lr"] == 1.0e-3 and point["loss"] == "bce"
    assert point["drop_rate"] == 0.0  # TrainConfig's default, inside the range
    assert point["weight_decay"] == pytest.approx(1.0e-4)  # 0 is outside: the geometric middle
    assert point["gamma"] == 0.9 and "t0" not in point and "focal_gamma" not in point
    assert default_config(space)["augment_flip"] is True


def budgeted_search(tmp_path, seconds, epochs, train_on="auto"):
    raw = {**SPACE, "name": "budgeted",
           "trial": {"epochs": epochs, "batch_size": 8, "resources": {"cpu": 1, "gpu": 0}},
           "space": {**SPACE["space"], "backbone": "simple_cnn"},
           "search": {**SPACE["search"], "num_samples": "auto", "grace_period": "auto", "reduction_factor": 3,
                      "time_budget": seconds, "train_on": train_on,
                      "start_from": [{"lr": 1.0e-3, "scheduler": "exponential", "gamma": 0.9, "loss": "bce"}]},
           "wandb": {"mode": "disabled"}}
    raw.pop("cpu")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(raw))
    proc = run_search(tmp_path, "space.yaml")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "results/budgeted/summary.json").read_text())
    saved = yaml.safe_load((tmp_path / "results/budgeted/space.yaml").read_text())
    history = pd.read_csv(tmp_path / "results/budgeted/history.csv")
    return proc, summary, saved, history


def assert_budget_kept(summary, history):
    """No epoch ends after the trials' share of the budget by more than one epoch's time, and the
    trials ran until the last moment a trial could start and reach its first rung."""
    if summary.get("train_on"):  # the epochs the best trial trained on after the trials
        on = summary["train_on"]
        history = history[(history["trial"] != on["trial_id"]) | (history["epoch"] <= on["from_epoch"])]
    sizing = summary["budget"]
    left = sizing["trials_budget_s"]  # what is left after the timing and the workers' start
    assert 0 < left < sizing["time_budget_s"]
    epoch_s = max(history.groupby("trial")["time_total_s"].diff().max(), history["time_total_s"].min())
    ended = (history["timestamp"] - summary["trials_began"]).max()
    assert ended <= left + epoch_s + 1.0, (ended, left, epoch_s)  # timestamps are whole seconds
    # Trials keep starting until start_until_s (the budget's end less a first rung and a trial's
    # start), so every slot is busy until then; after it a slot that frees stays free.
    assert summary["trials_s"] >= sizing["start_until_s"] - 1.0, (summary["trials_s"], sizing["start_until_s"], left)


# A real search that fills its time budget and keeps it, then trains its best trial on:
# tests/search/test_spaces.py's digits run (the README's first command) checks it with
# assert_budget_kept and the train-on record.


def test_a_budget_too_short_for_a_search_trains_the_default_alone_to_its_end(tmp_path):
    """trial.epochs and num_samples auto, and a budget far too short for a search of full-length
    trials: one trial, the default configuration on both trials' CPUs, until the budget ends."""
    seconds = 45  # a Ray worker's start and a first epoch fit in it on a loaded 2-core machine
    proc, summary, saved, history = budgeted_search(tmp_path, seconds, "auto")
    sizing = summary["budget"]
    assert sizing["alone"] and sizing["short_of"] > seconds and sizing["widen"] == 2
    assert "warning: the time budget is too short for a search" in proc.stdout
    assert "trials: one, the default configuration, until the time budget ends" in proc.stdout
    assert summary["num_trials"] == 1
    (trial,) = summary["trials"]
    assert trial["config"]["lr"] == 1.0e-3 and trial["config"]["gamma"] == 0.9 and trial["config"]["loss"] == "bce"
    assert saved["trial"]["resources"] == {"cpu": 2, "gpu": 0} and saved["search"]["num_samples"] == 1
    assert trial["epochs"] < sizing["epochs"]  # the budget ended it, not its epochs
    assert_budget_kept(summary, history)
