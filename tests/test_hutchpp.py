"""Hutch++ (``lyapkit.hutchpp``) on explicit matrices: exact when its sketch spans the space,
unbiased otherwise."""

import numpy as np
import pytest
from cases import random_symmetric

from lyapkit.hutchpp import hutchpp_trace


def test_hutchpp_exact_when_the_sketch_spans_the_space():
    A, eig = random_symmetric(12)
    assert hutchpp_trace(A, num_matvecs=36, seed=1) == pytest.approx(eig.sum(), rel=1e-10)


def test_hutchpp_is_unbiased():
    A, eig = random_symmetric(60)
    estimates = np.array([hutchpp_trace(A, num_matvecs=9, seed=s) for s in range(300)])
    stderr = estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert abs(estimates.mean() - eig.sum()) < 4 * stderr + 1e-12
