"""What a model costs to run (trainable.cost), and a trial that measures it once and keeps it."""

import math

import pytest
import torch

from trainable import cost
from trainable.report import LocalReporter
from trainable.train import train


def small_net():
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 8 * 8, 2))


def test_params_and_flops_are_counted_exactly():
    net = small_net()
    assert cost.count_params(net) == (4 * 9 + 4) + (256 * 2 + 2)
    # torch counts 2 FLOPs a multiply-add: the convolution's 4 x 64 outputs of 9 products each,
    # the linear layer's 2 outputs of 256.
    assert cost.count_flops(net, (1, 8, 8), torch.device("cpu")) == 2 * 4 * 64 * 9 + 2 * 256 * 2


def test_throughput_is_images_a_second_and_leaves_the_model_as_it_was():
    net = small_net().train()
    measured = cost.measure(["throughput", "params"], net, (1, 8, 8), torch.device("cpu"), batch_size=16)
    assert set(measured) == {"throughput", "params"} and measured["throughput"] > 0 and net.training
    wide = torch.nn.Sequential(torch.nn.Conv2d(1, 256, 3, padding=1), torch.nn.Conv2d(256, 256, 3, padding=1),
                               torch.nn.Flatten(), torch.nn.Linear(256 * 64, 2))
    assert cost.images_per_second(wide, (1, 8, 8), torch.device("cpu"), 16) < measured["throughput"] / 5
    with pytest.raises(ValueError, match="unknown costs"):
        cost.measure(["latency"], net, (1, 8, 8), torch.device("cpu"))


def test_a_trial_reports_its_costs_every_epoch_and_a_resumed_one_keeps_them(three_digits, tmp_path):
    config = {"backbone": "simple_cnn", "cnn_width": 8, "cnn_depth": 2, "epochs": 2, "batch_size": 64,
              "throughput_batch": 16}
    reporter = LocalReporter(tmp_path / "run")
    train(config, three_digits, reporter, costs=("throughput", "params", "flops"))
    first = reporter.history
    assert [set(h) >= {"throughput", "params", "flops"} for h in first] == [True, True]
    assert first[0]["throughput"] == first[1]["throughput"] > 0 and first[0]["flops"] > first[0]["params"] > 0
    # Two more epochs from the checkpoint: the costs come back from it, not measured again (a
    # second measurement would differ in its last digits).
    resumed = LocalReporter(tmp_path / "run")
    train({**config, "epochs": 4}, three_digits, resumed, costs=("throughput", "params", "flops"))
    assert [h["epoch"] for h in resumed.history][-2:] == [3, 4]
    assert all(h["throughput"] == first[0]["throughput"] and h["params"] == first[0]["params"]
               for h in resumed.history[-2:])
    assert not math.isnan(resumed.history[-1]["val_loss"])
