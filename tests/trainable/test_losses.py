"""Every registered loss keeps the contract, focal reduces to ce, and each one trains."""

import pytest
import torch
import torch.nn.functional as F

from trainable.errors import UserError
from trainable.losses import LOSSES, build_loss


def _classes_for(name: str) -> list[int]:
    return [2] if name == "bce" else [2, 3]


LOSS_AND_CLASSES = [(name, k) for name in LOSSES for k in _classes_for(name)]


def _batch(num_outputs: int, num_classes: int, n: int = 64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, num_outputs, generator=gen) * 3
    targets = torch.randint(0, num_classes, (n,), generator=gen)
    return logits, targets


@pytest.mark.parametrize("name,num_classes", LOSS_AND_CLASSES)
def test_contract(name, num_classes):
    loss = build_loss(name, num_classes)
    assert loss.num_outputs(num_classes) == LOSSES[name].num_outputs(num_classes)
    logits, targets = _batch(loss.num_outputs(num_classes), num_classes)
    value = loss(logits, targets)
    assert value.shape == () and value.dtype == torch.float32 and torch.isfinite(value)
    probs = loss.probabilities(logits)
    assert probs.shape == (len(logits), num_classes) and probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(len(logits)))
    # Half-precision logits (autocast) are computed in float32 and give nearly the same loss.
    half = loss(logits.to(torch.bfloat16), targets)
    assert half.dtype == torch.float32
    assert abs(half.item() - value.item()) < 0.05 * value.item() + 1e-3
    assert loss.probabilities(logits.to(torch.bfloat16)).dtype == torch.float32


def test_num_outputs():
    assert LOSSES["ce"].num_outputs(5) == 5
    assert LOSSES["focal"].num_outputs(5) == 5
    assert LOSSES["bce"].num_outputs(2) == 1


@pytest.mark.parametrize("num_classes", [2, 3, 5])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_focal_gamma_zero_is_cross_entropy(num_classes, smoothing):
    logits, targets = _batch(num_classes, num_classes, n=128, seed=num_classes)
    focal = build_loss("focal", num_classes, focal_gamma=0.0, label_smoothing=smoothing)
    ce = build_loss("ce", num_classes, label_smoothing=smoothing)
    expected = F.cross_entropy(logits, targets, label_smoothing=smoothing)
    torch.testing.assert_close(ce(logits, targets), expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(focal(logits, targets), expected, atol=1e-6, rtol=1e-6)


def test_focal_matches_formula():
    logits, targets = _batch(4, 4, n=32)
    gamma = 1.5
    p_true = torch.softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    expected = (-(1 - p_true) ** gamma * p_true.log()).mean()
    torch.testing.assert_close(build_loss("focal", 4, focal_gamma=gamma)(logits, targets), expected)


def test_focal_down_weights_easy_examples():
    targets = torch.tensor([0, 1, 2, 1, 0, 2])
    easy = F.one_hot(targets, 3).float() * 4.0  # confident and correct: p_true ~ 0.96
    ce = build_loss("ce", 3)(easy, targets)
    focal = build_loss("focal", 3, focal_gamma=2.0)(easy, targets)
    assert focal < 0.01 * ce
    # A confidently wrong batch keeps most of its cross-entropy: focusing spares hard examples.
    hard = F.one_hot((targets + 1) % 3, 3).float() * 4.0
    assert build_loss("focal", 3, focal_gamma=2.0)(hard, targets) > 0.9 * \
        build_loss("ce", 3)(hard, targets)


def test_focal_alpha_binary_float():
    logits, targets = _batch(2, 2, n=200, seed=1)
    alpha = 0.25
    weighted = build_loss("focal", 2, focal_gamma=0.0, focal_alpha=alpha)(logits, targets)
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    weights = torch.where(targets == 1, alpha, 1 - alpha)
    torch.testing.assert_close(weighted, (weights * per_sample).mean())


def test_focal_alpha_list_ignores_zero_weighted_classes():
    logits, targets = _batch(3, 3, n=120, seed=2)
    loss = build_loss("focal", 3, focal_gamma=2.0, focal_alpha=[1.0, 0.0, 0.0])
    unweighted = build_loss("focal", 3, focal_gamma=2.0)
    keep = targets == 0
    expected = unweighted(logits[keep], targets[keep]) * keep.float().mean()
    torch.testing.assert_close(loss(logits, targets), expected)
    # Changing the logits of class 1 and 2 samples does not change the loss.
    shuffled = logits.clone()
    shuffled[~keep] = torch.randn(int((~keep).sum()), 3)
    torch.testing.assert_close(loss(shuffled, targets), loss(logits, targets))


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5, -0.1, float("nan"), [1.0, 2.0],
                                   [1.0, -1.0, 0.5], [0.0, 0.0, 0.0], "0.5", True])
def test_focal_alpha_invalid(alpha):
    num_classes = 2 if isinstance(alpha, float) else 3
    with pytest.raises(UserError, match="focal_alpha"):
        build_loss("focal", num_classes, focal_alpha=alpha)


def test_focal_alpha_float_needs_binary_task():
    with pytest.raises(UserError, match="focal_alpha"):
        build_loss("focal", 3, focal_alpha=0.25)


def test_bce_rejects_multiclass():
    with pytest.raises(UserError, match=r"loss 'bce' needs a binary task \(one logit\); this data "
                                        r"set has 3 classes: use ce or focal"):
        build_loss("bce", 3)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_bce_matches_manual(smoothing):
    logits, targets = _batch(1, 2, n=50)
    y = targets.float() * (1 - smoothing) + smoothing / 2
    x = logits[:, 0]
    manual = (-(y * torch.sigmoid(x).log() + (1 - y) * (1 - torch.sigmoid(x)).log())).mean()
    loss = build_loss("bce", 2, label_smoothing=smoothing)
    torch.testing.assert_close(loss(logits, targets), manual, atol=1e-5, rtol=1e-5)
    probs = loss.probabilities(logits)
    torch.testing.assert_close(probs[:, 1], torch.sigmoid(x))


def test_unknown_loss():
    with pytest.raises(UserError, match=r"loss 'xyz' is unknown; known losses: ce, bce, focal"):
        build_loss("xyz", 2)


@pytest.mark.parametrize("kwargs", [{"label_smoothing": 1.0}, {"label_smoothing": -0.1},
                                    {"focal_gamma": -1.0}, {"focal_gamma": float("nan")}])
@pytest.mark.parametrize("name", list(LOSSES))
def test_out_of_range_knobs(name, kwargs):
    with pytest.raises(UserError, match=next(iter(kwargs))):
        build_loss(name, 2, **kwargs)


def test_label_smoothing_is_used():
    logits, targets = _batch(3, 3)
    for name in ("ce", "focal"):
        assert build_loss(name, 3, label_smoothing=0.2)(logits, targets) != \
            build_loss(name, 3)(logits, targets)


@pytest.mark.parametrize("name,num_classes", LOSS_AND_CLASSES)
def test_loss_trains_linear_model(name, num_classes):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    centres = torch.randn(num_classes, 2, generator=gen) * 4
    targets = torch.randint(0, num_classes, (300,), generator=gen)
    x = centres[targets] + 0.5 * torch.randn(300, 2, generator=gen)
    loss = build_loss(name, num_classes)
    model = torch.nn.Linear(2, loss.num_outputs(num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    start = loss(model(x), targets).item()
    for _ in range(300):
        optimizer.zero_grad()
        loss(model(x), targets).backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (loss.probabilities(model(x)).argmax(dim=1) == targets).float().mean()
        assert loss(model(x), targets).item() < 0.5 * start
    assert accuracy > 0.9


@pytest.mark.parametrize("gamma", [0.0, 0.1, 0.5, 0.9, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("margin", [20.0, 50.0, 100.0, 1000.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_focal_finite_value_and_gradient_on_saturated_logits(gamma, margin, smoothing):
    """A confident model (p = 1 in float32) must not get NaN gradients: with gamma < 1 the
    derivative of (1 - p) ** gamma is infinite at p = 1, and the weights turned NaN a step later."""
    loss = build_loss("focal", 3, focal_gamma=gamma, label_smoothing=smoothing)
    logits = torch.zeros(4, 3)
    logits[torch.arange(4), torch.tensor([0, 1, 2, 0])] = margin
    logits.requires_grad_(True)
    targets = torch.tensor([0, 1, 2, 1])  # three right with full confidence, one confidently wrong
    value = loss(logits, targets)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(logits.grad).all(), logits.grad
