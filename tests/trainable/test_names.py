"""trainable.names holds every registry's names (the space check reads them without torch): each
registry's own names equal them, in order, and the scan of timm's source equals timm's registry."""

import importlib

import pytest
import torch

from trainable import names
from trainable.backbone_names import close_backbones, deprecated_names, is_backbone, timm_names

# (module, its registry) -> the names trainable.names gives for it
REGISTRIES = [
    ("trainable.losses", "LOSSES", names.LOSSES),
    ("trainable.optim", "OPTIMIZERS", names.OPTIMIZERS),
    ("trainable.optim", "SCHEDULERS", names.SCHEDULERS),
    ("trainable.sampling", "SAMPLERS", names.SAMPLERS),
    ("trainable.cost", "COSTS", tuple(names.COSTS)),
    ("trainable.models", "CUSTOM_BACKBONES", names.CUSTOM_BACKBONES),
    ("trainable.decide", "THRESHOLD_RULES", names.THRESHOLD_RULES),
    ("trainable.decide", "THRESHOLD_COUNTS", names.THRESHOLD_COUNTS),
    ("trainable.decide", "BALANCING", names.BALANCING),
]


@pytest.mark.parametrize("module,registry,expected", REGISTRIES, ids=[f"{m}.{r}" for m, r, _ in REGISTRIES])
def test_each_registry_has_the_names_the_space_check_reads(module, registry, expected):
    assert tuple(getattr(importlib.import_module(module), registry)) == expected


def test_costs_have_their_directions_in_one_place():
    from trainable.cost import COSTS

    assert COSTS is names.COSTS and set(COSTS.values()) <= {"min", "max"}


def test_balancing_strategies_are_sampling_strategies():
    assert set(names.BALANCING) <= set(names.SAMPLERS)


@pytest.mark.parametrize("scheduler", names.SCHEDULERS)
def test_every_scheduler_name_builds(scheduler):
    """build_scheduler is a chain of names, not a dict: each name of trainable.names builds."""
    from trainable.optim import build_optimizer, build_scheduler

    model = torch.nn.Linear(2, 2)
    built = build_scheduler(build_optimizer(model, "adam", 1e-3), scheduler, epochs=3)
    assert (built is None) == (scheduler == "none")


@pytest.mark.parametrize("backbone", names.CUSTOM_BACKBONES)
def test_every_custom_backbone_builds(backbone):
    from trainable.models import build_backbone

    assert isinstance(build_backbone(backbone, 2, 3), torch.nn.Module)


def test_named_choices_cover_the_trainable_settings_that_name_a_registry():
    from trainable.config import TrainConfig

    defaults = TrainConfig()
    assert all(getattr(defaults, key) in choices for key, choices in names.NAMED_CHOICES.items())


def test_the_scan_of_timms_source_is_timms_registry():
    import timm
    from timm.models import get_deprecated_models

    registered, deprecated = timm_names()
    assert registered == set(timm.list_models())
    assert deprecated == set(get_deprecated_models())
    assert all(timm.is_model(name) for name in deprecated)


def test_is_backbone_agrees_with_timm_is_model():
    import timm

    for name in ["resnet18", "resnet50.a1_in1k", "test_resnet", "efficientnet_b9", "resnet_18", "simple_cnn.x"]:
        assert is_backbone(name) == timm.is_model(name), name
    assert is_backbone("simple_cnn") and not is_backbone(None) and not is_backbone(18)


def test_deprecations_are_read_from_the_call_not_a_bracket_in_a_string():
    text = ('x = 1\nregister_model_deprecations(__name__, {\n    "old_a": "new_a.tag",  # ) a comment\n'
            '    "old_b": None,\n    "old_c": "c)",\n})\nregister_model_deprecations(__name__, {"d": "e"})\n')
    assert deprecated_names(text) == {"old_a": "new_a.tag", "old_b": None, "old_c": "c)", "d": "e"}


def test_close_backbones_suggest_the_intended_name():
    assert close_backbones("resnet_18")[0] == "resnet18"
    assert close_backbones("simple_cn")[0] == "simple_cnn"
    assert close_backbones("zzzzzzzz") == []
