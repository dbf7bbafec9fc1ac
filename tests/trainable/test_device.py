"""Where a trial computes and keeps its data: the rules run here without a GPU; the GPU paths run
where there is one."""

import math
import tempfile

import pytest
import torch

from trainable.config import TrainConfig
from trainable.device import (DATA_SHARE, autocast_dtype, batches, bf16_native, data_placement,
                              place_split, split_bytes, trial_cpus, trial_gpu_fraction)
from trainable.report import LocalReporter
from trainable.train import setup, train, train_epoch

GIB = 2**30
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


@pytest.mark.parametrize("amp,device_type,native,expected", [
    (True, "cuda", True, torch.bfloat16),
    (True, "cuda", False, torch.float16),  # a T4 or V100: float16 with loss scaling
    (False, "cuda", True, None),
    (True, "cpu", True, None),
])
def test_autocast_dtype(amp, device_type, native, expected):
    assert autocast_dtype(amp, device_type, native) is expected


def test_emulated_bf16_does_not_count_as_native(monkeypatch):
    asked = {}

    def is_bf16_supported(including_emulation=True):
        asked["including_emulation"] = including_emulation
        return including_emulation  # a T4: only by emulation

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert bf16_native() is False and asked == {"including_emulation": False}


@pytest.mark.parametrize("need,fraction,resident", [
    (1 * GIB, 1.0, True),
    (1 * GIB, 0.25, True),    # room 16 x 0.25 x 0.5 = 2 GiB
    (2 * GIB, 0.25, True),    # exactly the room
    (2 * GIB + 1, 0.25, False),
    (1 * GIB, 0.1, False),
])
def test_rows_go_to_the_gpu_when_they_fit_the_trials_share(need, fraction, resident):
    assert DATA_SHARE == 0.5
    placed, line = data_placement(need, "cuda", 16 * GIB, fraction)
    assert placed is resident and f"GPU fraction {fraction:g}" in line
    assert ("on the GPU once" if resident else "streamed from pinned host memory") in line


def test_rows_stay_on_the_host_without_a_gpu():
    placed, line = data_placement(10, "cpu", None, 1.0)
    assert not placed and "host memory" in line and "\n" not in line


def test_split_bytes_counts_images_and_labels(three_digits):
    rows = [torch.from_numpy(three_digits.splits[n]) for n in ("train", "val")]
    images, labels = (torch.cat([t[r] for r in rows]) for t in (three_digits.images, three_digits.labels))
    assert split_bytes(three_digits.images, three_digits.labels, *rows) == (
        images.nbytes + labels.nbytes)


def test_a_resident_split_gives_the_batches_the_shared_copy_gives(three_digits):
    rows = torch.from_numpy(three_digits.splits["train"])
    cpu = torch.device("cpu")
    shared = place_split(three_digits.images, three_digits.labels, rows, cpu, resident=False)
    copied = place_split(three_digits.images, three_digits.labels, rows, cpu, resident=True, chunk=50)
    assert shared.rows is not None and copied.rows is None and len(copied) == len(rows)
    assert torch.equal(copied.images, three_digits.images[rows])
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    slices = [slice(0, 32), slice(32, 64)]
    for (x1, y1), (x2, y2) in zip(batches(shared, order, slices, cpu),
                                  batches(copied, order, slices, cpu), strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_outside_ray_a_trial_has_the_whole_gpu_and_this_processs_cpus():
    assert trial_gpu_fraction() == 1.0 and trial_cpus() >= 1


def test_in_a_ray_worker_cpus_and_gpu_fraction_come_from_ray():
    ray = pytest.importorskip("ray")
    # Ray counts GPUs as a resource it is told of: a logical GPU is enough to assign a fraction.
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        @ray.remote(num_cpus=2, num_gpus=0.25)
        def resources():
            from trainable.device import trial_cpus, trial_gpu_fraction

            return trial_cpus(), trial_gpu_fraction()

        assert ray.get(resources.remote()) == (2, 0.25)
    finally:
        ray.shutdown()


@cuda
def test_a_gpu_trial_sets_amp_cudnn_and_its_cpu_threads(three_digits):
    trial = setup(TrainConfig(backbone="simple_cnn", amp=True), three_digits)
    assert torch.backends.cudnn.benchmark and torch.get_num_threads() == trial_cpus()
    assert trial.autocast_dtype in (torch.bfloat16, torch.float16)
    assert trial.scaler.is_enabled() == (trial.autocast_dtype == torch.float16)


@cuda
@pytest.mark.parametrize("resident", [True, False])
def test_both_data_paths_train_on_the_gpu(resident, three_digits, monkeypatch, capsys):
    monkeypatch.setattr("trainable.train.data_placement",
                        lambda *args: (resident, "data: forced by the test"))
    with tempfile.TemporaryDirectory() as folder:
        metrics = train({"backbone": "simple_cnn", "epochs": 3, "batch_size": 32, "lr": 3e-3},
                        three_digits, LocalReporter(folder))
    assert metrics["diverged"] == 0 and metrics["val_accuracy"] > 0.8


@cuda
def test_an_epoch_on_the_gpu_synchronizes_less_than_once_a_step(three_digits):
    trial = setup(TrainConfig(backbone="simple_cnn", batch_size=16), three_digits)
    images, labels = three_digits.split("train")
    images = images.to(trial.device)
    torch.cuda.synchronize()
    with pytest.warns(UserWarning) as warned:
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loss = train_epoch(trial, images, labels, 0)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in warned if "synchroniz" in str(w.message)]
    assert math.isfinite(loss) and 1 <= len(syncs) <= 5  # 23 steps; the old loop: two a step
