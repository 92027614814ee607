"""Shared test configuration: deterministic hypothesis profiles and common fixtures."""

import importlib.util
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Deterministic by default; HYPOTHESIS_PROFILE=dev explores new examples on every run.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op torch thread in every test (where torch is installed).

    The tests' tensors are small: their products take microseconds, less than handing them to
    OpenMP workers, and while another process (or numba's and OpenBLAS's spinning workers) holds
    one of two cores, every parallel region waits for a time slice: a torch loop of 3000 small
    steps measured 0.35 s with one thread and 5–12 s with two. Tests that set their own thread
    count restore it to this one."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _close_figures():
    """Every figure closed after each test: plots without ``ax=`` draw on the current Axes
    (matplotlib's convention), so a figure left open would make a later test's count of lines
    depend on the order the tests ran in."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def torch_float64():
    """torch's default dtype set to float64 for the test, and restored afterwards."""
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
