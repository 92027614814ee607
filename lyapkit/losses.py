"""Losses of the learning-dynamics analyses (torch), as per-term losses and their data-set mean.

A loss is named (``"mse"``, ``"cross_entropy"``) or a callable ``loss(outputs, targets)`` that
returns the *unreduced* per-term losses (any shape). The loss of a batch, or of a whole data set,
is the mean over all its terms::

    mse:            ℓ = (y − ŷ)²            one term per output element
    cross_entropy:  ℓ = −log softmax(y)_c   one term per output vector (class scores on the last axis)

which is what ``torch.nn.functional.mse_loss`` and ``cross_entropy`` compute with
``reduction="mean"``. Over a data set given in batches, the mean is ``Σ_b Σ ℓ / Σ_b n_b`` with
``n_b`` the number of terms in batch ``b``, so unequal batches are weighted correctly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LOSSES = ("mse", "cross_entropy")

#: ``(outputs, targets) -> per-term losses`` (unreduced).
LossTerms = Callable[[Any, Any], Any]


def loss_terms_fn(loss: str | LossTerms) -> LossTerms:
    """The per-term loss function of ``loss`` (a name in :data:`LOSSES` or a callable)."""
    if callable(loss):
        return loss
    if loss == "mse":
        return _mse_terms
    if loss == "cross_entropy":
        return _cross_entropy_terms
    raise ValueError(
        f"loss must be one of {LOSSES} or a callable returning per-term losses, got {loss!r}"
    )


def _mse_terms(outputs: Any, targets: Any) -> Any:
    if targets.shape != outputs.shape:
        raise ValueError(
            f"targets must have the shape of the outputs {tuple(outputs.shape)} for the mse loss, "
            f"got {tuple(targets.shape)}"
        )
    return (outputs - targets) ** 2


def _cross_entropy_terms(outputs: Any, targets: Any) -> Any:
    import torch.nn.functional as F

    if tuple(targets.shape) != tuple(outputs.shape[:-1]) or targets.dtype.is_floating_point:
        raise ValueError(
            f"targets must be integer class labels of shape {tuple(outputs.shape[:-1])} for the "
            f"cross_entropy loss (outputs {tuple(outputs.shape)}), got {targets.dtype} of shape "
            f"{tuple(targets.shape)}"
        )
    classes = outputs.shape[-1]
    if targets.numel() and not (0 <= int(targets.min()) and int(targets.max()) < classes):
        raise ValueError(
            f"targets must be class labels in [0, {classes}) for the cross_entropy loss over "
            f"{classes} output scores, got labels from {int(targets.min())} to "
            f"{int(targets.max())}"
        )
    scores = outputs.reshape(-1, classes)
    return F.cross_entropy(scores, targets.reshape(-1), reduction="none").reshape(targets.shape)


def mean_loss(loss: str | LossTerms, outputs: Any, targets: Any) -> Any:
    """The mean of the per-term losses of ``loss`` over one batch."""
    return loss_terms_fn(loss)(outputs, targets).mean()
