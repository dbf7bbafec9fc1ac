"""The model file: one network or an ensemble, with its prior correction, temperature, threshold
and test-time augmentation, and files of the first format."""

from pathlib import Path

import numpy as np
import pytest
import torch

from trainable.checkpoint import BEST_FILE
from trainable.config import TrainConfig
from trainable.decide import calibrate
from trainable.export import FORMATS, dihedral, export_model, load_model
from trainable.models import build_backbone

ABOUT = {"class_names": ["a", "b"], "in_chans": 1, "normalization": {"method": "none"}, "input_size": [16, 16]}


def checkpoint(folder: Path, seed: int, loss: str = "ce", **about) -> Path:
    """A trial checkpoint folder holding an untrained simple_cnn's weights (``best.pt``)."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True)
    outputs = 1 if loss == "bce" else 2
    torch.save({"model": build_backbone("simple_cnn", outputs, 1).state_dict(), "epoch": seed + 1, "value": 0.5,
                "config": TrainConfig(loss=loss).to_dict(), **ABOUT, **about}, folder / BEST_FILE)
    return folder


@pytest.fixture
def images():
    return torch.from_numpy(np.random.default_rng(0).random((6, 1, 16, 16), dtype=np.float32))


def test_ensemble_probabilities_are_the_mean_of_its_members(tmp_path, images):
    dirs = [checkpoint(tmp_path / str(i), i, loss) for i, loss in enumerate(["ce", "bce", "focal"])]
    singles = [load_model(export_model(d, tmp_path / f"single{i}.pt")).predict(images).numpy()
               for i, d in enumerate(dirs)]
    assert np.ptp([s[:, 1] for s in singles], axis=0).max() > 1e-4  # the members differ
    ensemble = load_model(export_model(dirs, tmp_path / "ensemble.pt", members=[{"trial_id": f"t{i}"} for i in range(3)]))
    assert len(ensemble.members) == 3 and [m.trial_id for m in ensemble.members] == ["t0", "t1", "t2"]
    np.testing.assert_allclose(ensemble.predict(images).numpy(), np.mean(singles, axis=0), rtol=0, atol=1e-6)
    assert ensemble.info["epoch"] == 1  # the first member's: the single best trial's


def test_tta_is_the_mean_over_the_eight_flips_and_rotations(tmp_path, images):
    path = export_model(checkpoint(tmp_path / "c", 0), tmp_path / "m.pt", decision={"tta": True})
    model = load_model(path)
    views = dihedral(images)
    assert len(views) == 8 and len({v.numpy().tobytes() for v in views}) == 8
    each = [model.predict(v, tta=False).numpy() for v in views]
    assert np.ptp([e[:, 1] for e in each], axis=0).max() > 1e-6
    expected = np.mean(each, axis=0)
    np.testing.assert_allclose(model.predict(images).numpy(), expected, rtol=0, atol=1e-6)  # the file's setting
    np.testing.assert_allclose(model.predict(images, tta=True).numpy(), expected, rtol=0, atol=1e-6)


def test_mirror_tta_is_the_mean_of_each_image_and_its_left_right_mirror(tmp_path, images):
    model = load_model(export_model(checkpoint(tmp_path / "c", 0), tmp_path / "m.pt", decision={"tta": "hflip"}))
    assert model.tta == "hflip"
    plain, mirrored = model.predict(images, tta=False).numpy(), model.predict(images.flip(-1), tta=False).numpy()
    assert np.abs(plain - mirrored).max() > 1e-6
    np.testing.assert_allclose(model.predict(images).numpy(), (plain + mirrored) / 2, rtol=0, atol=1e-6)
    eight = model.predict(images, tta=True).numpy()  # the 8 views, asked for
    assert np.abs(eight - (plain + mirrored) / 2).max() > 1e-6


def test_prior_correction_temperature_and_threshold_are_kept_and_used(tmp_path, images):
    dirs = [checkpoint(tmp_path / str(i), i) for i in range(2)]
    plain = load_model(export_model(dirs, tmp_path / "plain.pt"))
    weights = [np.log([0.7, 0.3]), np.zeros(2)]
    decided = load_model(export_model(dirs, tmp_path / "decided.pt",
                                      members=[{"log_weights": w} for w in weights],
                                      decision={"temperature": 2.0, "threshold": 0.45, "threshold_rule": "f1"}))
    members = [m.probabilities(images) for m in plain.members]
    expected = calibrate(np.mean([calibrate(p, 1.0, w) for p, w in zip(members, weights)], axis=0), 2.0)
    probabilities = decided.predict(images).numpy()
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    assert (decided.temperature, decided.threshold, decided.info["threshold_rule"]) == (2.0, 0.45, "f1")
    assert decided.decide(probabilities).tolist() == (probabilities[:, 1] >= 0.45).astype(int).tolist()
    assert plain.decide(probabilities).tolist() == probabilities.argmax(1).tolist()


def test_members_trained_on_other_data_are_refused(tmp_path):
    dirs = [checkpoint(tmp_path / "a", 0), checkpoint(tmp_path / "b", 1, input_size=[32, 32])]
    with pytest.raises(ValueError, match="input_size"):
        export_model(dirs, tmp_path / "m.pt")


def test_a_file_of_the_first_format_loads_as_one_member(tmp_path, images):
    folder = checkpoint(tmp_path / "c", 0)
    state = torch.load(folder / BEST_FILE, weights_only=True)
    old = {"format": FORMATS[0], "model": state["model"], "config": state["config"], "num_outputs": 2,
           "epoch": 1, **ABOUT}
    torch.save(old, tmp_path / "old.pt")
    model = load_model(tmp_path / "old.pt")
    assert len(model.members) == 1 and model.temperature == 1.0 and model.threshold is None and not model.tta
    with torch.no_grad():
        expected = torch.softmax(model.network(images), 1).numpy()
    np.testing.assert_allclose(model.predict(images).numpy(), expected, rtol=0, atol=1e-6)


def test_refreshed_batchnorm_statistics_are_the_images_own_with_dropout_off():
    from torch import nn

    from trainable.models import refresh_batchnorm

    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout(0.5), nn.BatchNorm2d(4)).eval()
    images = torch.randn(128, 1, 8, 8) * 3 + 1
    assert refresh_batchnorm(network, images, batch_size=32)
    with torch.no_grad():
        features = network[0](images)
    batches = features.split(32)
    bn = network[2]
    torch.testing.assert_close(bn.running_mean, features.mean((0, 2, 3)))
    torch.testing.assert_close(bn.running_var, torch.stack([b.var((0, 2, 3), unbiased=True) for b in batches]).mean(0))
    assert not network.training and not bn.training and bn.momentum == 0.1
    assert not refresh_batchnorm(nn.Sequential(nn.Conv2d(1, 4, 3)), images)  # nothing to refresh


def test_simple_cnn_width_and_depth_are_rebuilt_from_the_config(tmp_path, images):
    default = [m.out_channels for m in build_backbone("simple_cnn", 2, 1).modules() if isinstance(m, torch.nn.Conv2d)]
    assert default == [64, 64, 128, 256]  # the reference's CNN
    torch.manual_seed(0)
    network = build_backbone("simple_cnn", 2, 1, cnn_width=16, cnn_depth=5)
    assert [m.out_channels for m in network.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 16, 32, 64, 64]
    folder = tmp_path / "narrow"
    folder.mkdir()
    torch.save({"model": network.state_dict(), "epoch": 1, "value": 0.5,
                "config": TrainConfig(cnn_width=16, cnn_depth=5).to_dict(), **ABOUT}, folder / BEST_FILE)
    model = load_model(export_model(folder, tmp_path / "narrow.pt"))  # the state dict fits only this shape
    expected = torch.softmax(network.eval()(images), dim=1)
    assert torch.allclose(model.predict(images), expected, atol=1e-5)
