"""Every space file in spaces/ is valid, with and without a GPU, and every configuration Optuna
samples from it is a valid trainable configuration."""

from pathlib import Path

import optuna
import pytest
import timm

from search.space import Distribution, define_by_run, load_space
from tests.search.test_spaces import WRITERS
from trainable.data.formats import FORMATS
from trainable.config import TrainConfig

SPACES = sorted((Path(__file__).resolve().parents[3] / "spaces").glob("*.yaml"))


def test_the_documented_spaces_exist():
    assert {p.name for p in SPACES} >= {"lens_finding.yaml", "substructure.yaml", "digits.yaml",
                                        "generated_images.yaml", "cifar10.yaml"}


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
@pytest.mark.parametrize("has_gpu", [True, False], ids=["gpu", "cpu"])
def test_space_file_is_valid_and_samples_valid_configs(path, has_gpu):
    space = load_space(path, has_gpu=has_gpu)
    assert space.cpu_applied != has_gpu
    # A space runs on a fresh machine (its simulator, or bundled data), or its layout is written
    # and run by tests/search/test_spaces.py.
    assert space.data.simulate or not FORMATS[space.data.format].needs_path or path.stem in WRITERS
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    suggest = define_by_run(space)
    for _ in range(25):
        trial = study.ask()
        fixed = suggest(trial)
        config = TrainConfig.from_mapping({**space.trial, **trial.params, **fixed})
        assert config.backbone == "simple_cnn" or timm.is_model(config.backbone)
        study.tell(trial, 0.5)
    # The first start_from is the space's default configuration: complete for the top-level choices.
    first = space.search.start_from[0]
    searched = {k for k, v in space.space.items() if isinstance(v, Distribution) and not v.when}
    assert {"optimizer", "lr", "scheduler", "loss"} & searched <= set(first)
    assert ("backbone" in first) == ("backbone" in searched)  # a fixed backbone is not repeated
