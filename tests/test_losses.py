"""The losses (``lyapkit.losses``): the per-term conventions against torch's own losses, and class
labels out of range named."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lyapkit import losses  # noqa: E402
from lyapkit.losses import mean_loss  # noqa: E402

F = torch.nn.functional


def test_out_of_range_class_labels_are_named():
    outputs = torch.zeros(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"class labels in \[0, 3\).*from 0 to 3"):
        losses.mean_loss("cross_entropy", outputs, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="from -1 to 2"):
        losses.mean_loss("cross_entropy", outputs, torch.tensor([-1, 1, 2, 0]))
    good = losses.mean_loss("cross_entropy", outputs, torch.tensor([0, 1, 2, 2]))
    assert float(good) == pytest.approx(np.log(3), rel=1e-12)


def test_mean_loss_conventions_match_torch():
    out = torch.randn(5, 3, 4, dtype=torch.float64)
    labels = torch.randint(0, 4, (5, 3))
    assert mean_loss("cross_entropy", out, labels) == pytest.approx(
        float(F.cross_entropy(out.reshape(-1, 4), labels.reshape(-1)))
    )
    target = torch.randn_like(out)
    assert mean_loss("mse", out, target) == pytest.approx(float(F.mse_loss(out, target)))
