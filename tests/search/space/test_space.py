"""Space files: overrides, the cpu: block, every kind of bad file, and Optuna's conditional sampling."""

import optuna
import pytest
import yaml

from search.space import Distribution, define_by_run, load_space
from trainable.errors import UserError

GOOD = {
    "name": "tiny",
    "data": {"format": "digits"},
    "metric": "val_auc",
    "mode": "max",
    "trial": {"epochs": 6, "batch_size": 32, "resources": {"cpu": 1, "gpu": 0.25}},
    "space": {
        "backbone": {"choice": ["simple_cnn", "test_resnet"]},
        "lr": {"loguniform": [1.0e-4, 1.0e-2]},
        "scheduler": {"choice": ["exponential", "cosine_warm_restarts", "none"]},
        "gamma": {"uniform": [0.8, 0.99], "when": {"scheduler": "exponential"}},
        "t0": {"int": [2, 5], "when": {"scheduler": "cosine_warm_restarts"}},
        "loss": "ce",
    },
    "search": {"num_samples": 8, "grace_period": 1, "start_from": [{"lr": 1.0e-3, "scheduler": "none"}]},
    "wandb": {"mode": "offline"},
    "cpu": {"trial": {"epochs": 2, "resources": {"gpu": 0}}, "space": {"backbone": "simple_cnn"}},
}


def _write(tmp_path, content, name="space.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content) if isinstance(content, dict) else content)
    return path


def test_good_space_loads_with_distributions_and_conditions(tmp_path):
    space = load_space(_write(tmp_path, GOOD))
    assert space.epochs == 6 and space.resources == {"cpu": 1, "gpu": 0.25} and not space.cpu_applied
    assert space.space["gamma"] == Distribution("uniform", (0.8, 0.99), {"scheduler": ("exponential",)})
    assert space.space["loss"] == "ce" and space.search.num_samples == 8


def test_final_block_defaults_and_values(tmp_path):
    assert load_space(_write(tmp_path, GOOD)).final.ensemble == 3  # on by default: the top 3 averaged
    space = load_space(_write(tmp_path, {**GOOD, "final": {"ensemble": 1, "tta": True, "threshold": 0.3}}))
    assert (space.final.ensemble, space.final.tta, space.final.threshold, space.final.temperature) == (1, True, 0.3, True)
    assert load_space(_write(tmp_path, {**GOOD, "final": {"tta": "hflip"}})).final.tta == "hflip"


def test_cpu_block_applies_only_without_a_gpu_and_overrides_win(tmp_path):
    path = _write(tmp_path, GOOD)
    space = load_space(path, ["search.num_samples=3", "trial.batch_size=16"], has_gpu=False)
    assert space.cpu_applied and space.epochs == 2 and space.space["backbone"] == "simple_cnn"
    assert space.resources == {"cpu": 1, "gpu": 0} and space.trial["batch_size"] == 16
    assert space.search.num_samples == 3


def test_define_by_run_samples_conditional_parameters_only_when_they_apply(tmp_path):
    space = load_space(_write(tmp_path, GOOD))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    suggest = define_by_run(space)
    fixed = []
    for _ in range(40):
        trial = study.ask()
        fixed.append(suggest(trial))
        study.tell(trial, 0.5)
    for t in study.trials:
        p = t.params
        assert ("gamma" in p) == (p["scheduler"] == "exponential")
        assert ("t0" in p) == (p["scheduler"] == "cosine_warm_restarts")
        assert 1e-4 <= p["lr"] <= 1e-2 and p["backbone"] in ("simple_cnn", "test_resnet")
    assert all(f == {"loss": "ce"} for f in fixed)
    assert {t.params["scheduler"] for t in study.trials} == {"exponential", "cosine_warm_restarts", "none"}


BAD = [
    ({"colour": 1}, "colour: unknown key"),
    ({"metric": "val_precision"}, "metric: 'val_precision' is not reported"),
    ({"mode": "up"}, "mode: must be min or max"),
    ({"metric": "val_auc", "mode": "min"}, "mode: val_auc is better higher: mode max, not min"),
    ({"trial": {"epochs": 6, "batchsize": 2}}, "trial.batchsize: not a trainable setting"),
    ({"trial": {"epochs": "six"}}, "trial.epochs: expected int"),
    ({"trial": {"epochs": 6, "resources": {"gpu": -1}}}, "trial.resources.gpu: must be a number >= 0"),
    ({"space": {"lr": {"loguniform": [1e-2, 1e-4]}}}, "space.lr.loguniform: empty or inverted range"),
    ({"space": {"lr": {"uniform": [0.1, 0.1]}}}, "space.lr.uniform: empty or inverted range"),
    ({"space": {"lr": {"loguniform": [0, 1]}}}, "space.lr.loguniform: bounds must be positive"),
    ({"space": {"backbone": {"choice": []}}}, "space.backbone.choice: must be a non-empty list"),
    ({"space": {"t0": {"int": [2.5, 5]}}}, "space.t0.int: bounds must be integers"),
    ({"space": {"lr": {"normal": [0, 1]}}}, "space.lr: must be a value or one of"),
    ({"space": {"momentun": {"uniform": [0.8, 0.9]}}}, "space.momentun: not a trainable setting"),
    ({"space": {"epochs": {"int": [1, 5]}}}, "space.epochs: the epoch budget is fixed in trial.epochs"),
    ({"space": {"optimizer": {"choice": ["adam", "lamb"]}}}, "space.optimizer: 'lamb' is unknown"),
    ({"space": {"sampling": "smote"}}, "space.sampling: 'smote' is unknown; known: none, oversample"),
    ({"space": {"backbone": {"choice": ["simple_cnn", "resnet_18"]}}},
     "space.backbone: 'resnet_18' is not a timm model (timm.list_models()) nor simple_cnn; close: resnet18, "),
    ({"trial": {"epochs": 6, "backbone": "efficientnet_b9"}},
     "trial.backbone: 'efficientnet_b9' is not a timm model (timm.list_models()) nor simple_cnn; close: efficientnet_b"),
    ({"space": {"scheduler": {"choice": ["none"]},
                "gamma": {"uniform": [0.8, 0.9], "when": {"scheduler": "exponential"}}}},
     "space.gamma.when.scheduler: can never hold"),
    ({"space": {"gamma": {"uniform": [0.8, 0.9], "when": {"scheduler": "exponential"}}}},
     "space.gamma.when.scheduler: 'scheduler' is neither searched nor fixed"),
    ({"search": {"algorithm": "bayes"}}, "search.algorithm: must be one of optuna, random, grid"),
    ({"search": {"grace_period": 9}}, "search.grace_period: must be auto or an integer in [1, trial.epochs = 6]"),
    ({"search": {"start_from": [{"lr": 5.0}]}}, "search.start_from[0].lr: 5.0 is outside its loguniform"),
    ({"search": {"favour_default": "yes"}}, "search.favour_default: must be true or false"),
    ({"search": {"rung_margin": -1}}, "search.rung_margin: must be a number of standard errors, 0 or more, got -1"),
    ({"search": {"rung_margin": True}}, "search.rung_margin: must be a number of standard errors, 0 or more"),
    ({"data": {"format": "hdf5", "path": "x"}}, "data.format: unknown format 'hdf5'"),
    ({"wandb": {"mode": "cloud"}}, "wandb.mode: 'cloud' is not one of"),
    ({"final": {"ensemble": 0}}, "final.ensemble: must be a positive integer"),
    ({"final": {"threshold": "best"}}, "final.threshold: must be one of f1, youden, accuracy or a number in (0, 1)"),
    ({"final": {"threshold": 1.5}}, "final.threshold: must be one of f1, youden, accuracy or a number in (0, 1)"),
    ({"final": {"threshold_counts": "counted"}}, "final.threshold_counts: must be one of expected, labels"),
    ({"final": {"tta": "yes"}}, "final.tta: must be true (the 8 flips and rotations), hflip (the left-right mirror) or false"),
    ({"final": {"refit": "yes"}}, "final.refit: must be true or false"),
    ({"final": {"seeds": 1.5}}, "final.seeds: must be a whole number, 0 or more"),
    ({"final": {"refine": True}}, "final.refine: unknown key"),
]


@pytest.mark.parametrize("change,expected", BAD, ids=[e for _, e in BAD])
def test_bad_space_files_name_the_file_and_key(tmp_path, change, expected):
    content = {**GOOD, **change}
    if "space" in change and "scheduler" not in change["space"] and "gamma" not in change["space"]:
        content["space"] = {**GOOD["space"], **change["space"]}
    path = _write(tmp_path, content)
    with pytest.raises(UserError) as info:
        load_space(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_backbones_are_timms_names_with_or_without_a_tag_and_deprecated_ones(tmp_path):
    space = {"backbone": {"choice": ["simple_cnn", "resnet50.a1_in1k", "efficientnet_b0", "tf_efficientnet_b0_ap"]}}
    assert load_space(_write(tmp_path, {**GOOD, "space": {**GOOD["space"], **space}})).space["backbone"].values[1] \
        == "resnet50.a1_in1k"


def test_unreadable_and_non_yaml_files(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        load_space(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="not valid YAML"):
        load_space(_write(tmp_path, "space: [unclosed"))
    with pytest.raises(UserError, match=r"--set 'search\.num_samples': expected KEY=VALUE"):
        load_space(_write(tmp_path, GOOD), ["search.num_samples"])


def test_set_wins_over_the_cpu_block(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("data: {format: digits}\nsearch: {num_samples: 40}\n"
                    "cpu: {search: {num_samples: 6}, trial: {epochs: 3}}\n")
    assert load_space(path, has_gpu=False).search.num_samples == 6
    space = load_space(path, ["search.num_samples=1", "cpu.trial.epochs=2"], has_gpu=False)
    assert space.search.num_samples == 1 and space.epochs == 2
    assert load_space(path, ["search.num_samples=1"], has_gpu=True).search.num_samples == 1


@pytest.mark.parametrize("gpu", [2, 1.5])
def test_more_than_one_gpu_a_trial_is_refused(tmp_path, gpu):
    path = _write(tmp_path, {**GOOD, "trial": {"epochs": 6, "resources": {"cpu": 1, "gpu": gpu}}})
    with pytest.raises(UserError, match=r"trial\.resources\.gpu: at most 1, got .*one trial uses one device"):
        load_space(path)
    for fine in (1, 0.25):
        path = _write(tmp_path, {**GOOD, "trial": {"epochs": 6, "resources": {"cpu": 1, "gpu": fine}}})
        assert load_space(path).resources["gpu"] == fine


def test_objectives_set_the_metric_and_the_costs(tmp_path):
    content = {k: v for k, v in GOOD.items() if k not in ("metric", "mode")}
    space = load_space(_write(tmp_path, {**content, "objectives": [{"val_auc": "max"}, {"throughput": "max"}],
                                         "search": {**GOOD["search"], "scheduler": "mo_asha"},
                                         "final": {"pick": "cheapest_within:0.005"}}))
    assert (space.metric, space.mode, space.costs) == ("val_auc", "max", (("throughput", "max"),))
    assert space.search.scheduler == "mo_asha" and space.final.pick == "cheapest_within:0.005"
    # One mapping, in order, reads the same; metric and mode may repeat the first objective.
    text = yaml.safe_dump(GOOD) + "objectives: {val_auc: max, params: min, flops: min}\n"
    same = load_space(_write(tmp_path, text))
    assert same.objectives == (("val_auc", "max"), ("params", "min"), ("flops", "min"))
    assert load_space(_write(tmp_path, GOOD)).objectives == ()
    # No scheduler named: MO-ASHA with objectives, ASHA without; a named one stands.
    assert same.search.scheduler == "mo_asha" and load_space(_write(tmp_path, GOOD)).search.scheduler == "asha"
    named = load_space(_write(tmp_path, text.replace("search:", "search:\n  scheduler: asha", 1)))
    assert named.search.scheduler == "asha" and named.objectives


@pytest.mark.parametrize("change, expected", [
    ({"objectives": [{"val_auc": "max"}]}, "objectives: at least two"),
    ({"objectives": ["val_auc", "throughput"]}, "objectives: must be a list of metric: mode"),
    ({"objectives": [{"val_auc": "max"}, {"latency": "min"}]}, "objectives[1].latency: objectives after the first are costs"),
    ({"objectives": [{"val_auc": "max"}, {"throughput": "min"}]}, "objectives[1].throughput: throughput is better higher: mode max"),
    ({"objectives": [{"params": "min"}, {"val_auc": "max"}]}, "objectives[0].params: the first objective is a reported metric"),
    ({"objectives": [{"val_auc": "max"}, {"params": "min"}, {"params": "min"}]}, "objectives: params named twice"),
    ({"metric": "val_loss", "objectives": [{"val_auc": "max"}, {"params": "min"}]},
     "metric: 'val_loss' disagrees with the first objective (val_auc: max)"),
    ({"search": {"scheduler": "mo_asha"}}, "search.scheduler: mo_asha ranks by several objectives; this file has no objectives:"),
    ({"final": {"pick": "cheapest_within:0.01"}}, "final.pick: 'cheapest_within:0.01' trades the metric against a cost"),
    ({"objectives": [{"val_auc": "max"}, {"params": "min"}], "final": {"pick": "smallest"}},
     "final.pick: must be best or cheapest_within:D"),
    ({"objectives": [{"val_auc": "max"}, {"params": "min"}], "final": {"pick": "cheapest_within:-1"}},
     "final.pick: must be best or cheapest_within:D"),
])
def test_bad_objectives_name_the_file_and_key(tmp_path, change, expected):
    path = _write(tmp_path, {**GOOD, **change})
    with pytest.raises(UserError) as err:
        load_space(path)
    assert str(path) in str(err.value) and expected in str(err.value), str(err.value)


def test_mode_is_the_metrics_direction_when_left_out(tmp_path):
    raw = {k: v for k, v in yaml.safe_load(_write(tmp_path, GOOD).read_text()).items() if k != "mode"}
    for metric, mode in (("val_loss", "min"), ("val_accuracy", "max")):
        path = tmp_path / f"{metric}.yaml"
        path.write_text(yaml.safe_dump({**raw, "metric": metric}))
        assert load_space(path).mode == mode
