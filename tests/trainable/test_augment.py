import math

import pytest
import torch

from trainable.augment import AugmentConfig, _affine, augment
from trainable.errors import UserError

ALL_ON = AugmentConfig(flip=True, rot90=True, rotate=30.0, translate=0.1)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed)


def random_images(batch=8, channels=3, height=16, width=16, dtype=torch.float32, seed=0):
    return torch.randn(batch, channels, height, width, generator=generator(seed)).to(dtype)


def smooth_image(height: int, width: int) -> torch.Tensor:
    """A smooth, asymmetric (1, 1, H, W) image, so every rotation and flip of it differs."""
    y = torch.linspace(-1, 1, height).view(-1, 1)
    x = torch.linspace(-1, 1, width).view(1, -1)
    return (torch.sin(2.0 * x + 0.5) * torch.cos(1.3 * y - 0.2) + 0.7 * x * y + 0.4 * y)[None, None]


def dihedral_index(output: torch.Tensor, candidates: list[torch.Tensor]) -> int:
    matches = [i for i, c in enumerate(candidates) if torch.equal(output, c)]
    assert matches, "output is none of the expected transforms of its input"
    return matches[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_device_kept(dtype, channels):
    images = random_images(channels=channels, dtype=dtype)
    out = augment(images, ALL_ON, generator())
    assert out.shape == images.shape and out.dtype == dtype and out.device == images.device
    assert torch.isfinite(out.float()).all()
    assert not torch.equal(out, images)


def test_non_square_shape_kept_by_rotate_and_translate():
    images = random_images(height=12, width=20)
    out = augment(images, AugmentConfig(flip=True, rotate=45.0, translate=0.2), generator())
    assert out.shape == images.shape


def test_disabled_config_returns_input_unchanged():
    images = random_images()
    assert not AugmentConfig().enabled
    out = augment(images, AugmentConfig(), generator())
    assert torch.equal(out, images)


@pytest.mark.parametrize("config", [AugmentConfig(flip=True), AugmentConfig(rot90=True),
                                    AugmentConfig(rotate=1.0), AugmentConfig(translate=0.01),
                                    AugmentConfig(hflip=True), AugmentConfig(crop=0.1)])
def test_enabled_when_any_option_on(config):
    assert config.enabled


@pytest.mark.parametrize("config", [ALL_ON, AugmentConfig(flip=True), AugmentConfig(rot90=True),
                                    AugmentConfig(rotate=180.0), AugmentConfig(translate=0.2)])
def test_same_seed_same_output_different_seed_different(config):
    images = random_images(batch=32)
    first = augment(images, config, generator(1))
    assert torch.equal(first, augment(images, config, generator(1)))
    assert not torch.equal(first, augment(images, config, generator(2)))


def test_flip_gives_each_of_the_four_flips():
    images = random_images(batch=256, channels=1, height=6, width=6)
    out = augment(images, AugmentConfig(flip=True), generator())
    seen = set()
    for x, y in zip(images, out):
        seen.add(dihedral_index(y, [x, x.flip(-1), x.flip(-2), x.flip(-1).flip(-2)]))
    assert seen == {0, 1, 2, 3}


def test_hflip_mirrors_left_right_only():
    images = random_images(batch=64, channels=3, height=6, width=6)
    out = augment(images, AugmentConfig(hflip=True), generator())
    seen = {dihedral_index(y, [x, x.flip(-1)]) for x, y in zip(images, out)}  # never upside down
    assert seen == {0, 1}


def test_crop_takes_every_whole_pixel_window_of_the_edge_padded_image():
    images = random_images(batch=400, channels=3, height=8, width=12)
    out = augment(images, AugmentConfig(crop=0.25), generator())  # pads 2 rows, 3 columns
    assert out.shape == images.shape
    padded = torch.nn.functional.pad(images, (3, 3, 2, 2), mode="replicate")
    offsets = set()
    for x, y in zip(padded, out):
        found = [(dy, dx) for dy in range(5) for dx in range(7) if torch.equal(y, x[:, dy:dy + 8, dx:dx + 12])]
        assert found, "a crop is a window of the padded image, not a resampling"
        offsets.add(found[0])
    assert offsets == {(dy, dx) for dy in range(5) for dx in range(7)}


def test_rot90_gives_each_of_the_four_turns():
    images = random_images(batch=256, channels=3, height=6, width=6)
    out = augment(images, AugmentConfig(rot90=True), generator())
    counts = [0] * 4
    for x, y in zip(images, out):
        counts[dihedral_index(y, [torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])] += 1
    assert all(c > 30 for c in counts), counts


@pytest.mark.parametrize("angle, k", [(90.0, 1), (-90.0, 3), (180.0, 2), (-180.0, 2)])
def test_affine_quarter_turn_matches_rot90(angle, k):
    image = smooth_image(24, 24)
    out = _affine(image, torch.tensor([angle]), torch.zeros(1, 2))
    expected = torch.rot90(image, k, dims=(-2, -1))
    torch.testing.assert_close(out[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1],
                               atol=1e-4, rtol=0)


def test_affine_rotation_is_a_pixel_rotation_for_non_square_images():
    """A 90-degree turn of a wide image, in its central square, equals the same turn of the
    square image it was cut from: the aspect ratio does not stretch the rotation."""
    square = smooth_image(24, 24)
    wide = square[..., 6:18, :]  # 12 x 24, centred in the square
    out = _affine(wide, torch.tensor([90.0]), torch.zeros(1, 2))
    expected = torch.rot90(square, 1, dims=(-2, -1))[..., 6:18, :]
    # Only the central 12 x 12 columns come from inside the wide image.
    torch.testing.assert_close(out[..., 1:-1, 7:17], expected[..., 1:-1, 7:17], atol=1e-4, rtol=0)


@pytest.mark.parametrize("height, width, dx, dy", [(16, 16, 3, 0), (16, 16, 0, -2),
                                                   (12, 20, -4, 2), (20, 12, 2, 5)])
def test_affine_integer_shift_matches_roll(height, width, dx, dy):
    images = random_images(batch=2, height=height, width=width)
    shifts = torch.tensor([[dx / width, dy / height]] * 2)
    out = _affine(images, torch.zeros(2), shifts)
    expected = torch.roll(images, shifts=(dy, dx), dims=(-2, -1))
    rows = slice(max(dy, 0), height + min(dy, 0))
    cols = slice(max(dx, 0), width + min(dx, 0))
    torch.testing.assert_close(out[..., rows, cols], expected[..., rows, cols], atol=1e-5, rtol=0)


def test_affine_shift_then_rotate_order():
    """The shift is applied after the rotation, in output pixels: a 90-degree turn plus a
    shift right equals rot90 followed by a roll right."""
    image = smooth_image(20, 20)
    out = _affine(image, torch.tensor([90.0]), torch.tensor([[3 / 20, 0.0]]))
    expected = torch.roll(torch.rot90(image, 1, dims=(-2, -1)), 3, dims=-1)
    torch.testing.assert_close(out[..., 1:-1, 4:-1], expected[..., 1:-1, 4:-1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("height, width", [(48, 48), (40, 64)])
def test_rotation_conserves_flux_of_centred_blob(height, width):
    y = torch.arange(height).view(-1, 1) - (height - 1) / 2
    x = torch.arange(width).view(1, -1) - (width - 1) / 2
    blob = torch.exp(-((x / 5.0) ** 2 + (y / 2.5) ** 2) / 2)[None, None]  # elongated arc-like
    angles = torch.tensor([17.0, 45.0, 90.0, -120.0, 180.0])
    out = _affine(blob.expand(len(angles), 1, -1, -1), angles, torch.zeros(len(angles), 2))
    sums = out.sum(dim=(1, 2, 3))
    torch.testing.assert_close(sums, blob.sum().expand(len(angles)), rtol=0.01, atol=0)
    # The second moments rotate with it: not stretched along either axis.
    for image, angle in zip(out[:, 0], angles.tolist()):
        weights = image / image.sum()
        var_x, var_y = (weights * x ** 2).sum(), (weights * y ** 2).sum()
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        assert var_x.item() == pytest.approx(25 * c * c + 6.25 * s * s, rel=0.05)
        assert var_y.item() == pytest.approx(25 * s * s + 6.25 * c * c, rel=0.05)


def test_uncovered_corners_repeat_the_border_not_zero():
    """A standardized image's background is not 0: rotating or shifting a constant image must
    give the same constant everywhere, with no dark frame."""
    images = torch.full((3, 1, 16, 24), 2.5)
    out = _affine(images, torch.tensor([45.0, 0.0, -170.0]),
                  torch.tensor([[0.0, 0.0], [0.3, -0.3], [0.1, 0.2]]))
    torch.testing.assert_close(out, images)


def test_augment_rotation_angles_stay_within_range():
    """With rotate=10, a horizontal bar comes out at most 10 degrees off horizontal, and at
    some angle other than 0."""
    image = torch.zeros(1, 1, 33, 33)
    image[..., 16, 4:29] = 1.0
    out = augment(image.expand(64, -1, -1, -1), AugmentConfig(rotate=10.0), generator())
    y = torch.arange(33.0).view(-1, 1) - 16
    x = torch.arange(33.0).view(1, -1) - 16
    w = out[:, 0] / out[:, 0].sum(dim=(-2, -1), keepdim=True)
    angle = 0.5 * torch.atan2(2 * (w * x * y).sum((-2, -1)),
                              (w * (x ** 2 - y ** 2)).sum((-2, -1)))
    degrees = angle.rad2deg().abs()
    assert degrees.max() <= 10.5 and degrees.max() > 5


def test_half_precision_identity_affine_keeps_dtype_and_values():
    images = random_images(dtype=torch.bfloat16)
    out = _affine(images, torch.zeros(len(images)), torch.zeros(len(images), 2))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, images)


def test_from_config_reads_flat_keys_and_defaults():
    config = AugmentConfig.from_config({"augment_flip": True, "augment_rotate": 45,
                                        "lr": 0.1, "backbone": "resnet18"})
    assert config == AugmentConfig(flip=True, rot90=False, rotate=45, translate=0.0)
    assert AugmentConfig.from_config({}) == AugmentConfig()


@pytest.mark.parametrize("key, value", [("augment_rotate", -1.0), ("augment_rotate", 181.0),
                                        ("augment_rotate", float("nan")),
                                        ("augment_rotate", "90"), ("augment_translate", -0.1),
                                        ("augment_translate", 0.5), ("augment_translate", True),
                                        ("augment_flip", "yes"), ("augment_rot90", 1),
                                        ("augment_hflip", 1), ("augment_crop", 0.5), ("augment_crop", -0.1)])
def test_invalid_values_raise_naming_the_key(key, value):
    with pytest.raises(UserError, match=key):
        AugmentConfig.from_config({key: value})


def test_non_square_rot90_raises_naming_the_key():
    config = AugmentConfig(rot90=True)
    with pytest.raises(UserError, match="augment_rot90"):
        config.check_image_size(16, 24)
    with pytest.raises(UserError, match="augment_rot90"):
        augment(random_images(height=16, width=24), config, generator())
    config.check_image_size(16, 16)  # square is fine
