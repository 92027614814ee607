"""The shared argument validators (``lyapkit._checks``): what they accept, what they refuse and what
their messages say."""

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lyapkit._checks import integer, interval, number, real_array
from lyapkit.trainers.config import ConfigError


@given(value=st.integers(-(2**62), 2**62), low=st.integers(-10, 10), span=st.integers(0, 20))
def test_integer_accepts_exactly_the_integers_within_the_bounds(value, low, span):
    high = low + span
    inside = low <= value <= high
    for given_value in (value, np.int64(value)):
        if inside:
            result = integer(given_value, "n", low, high)
            assert result == value and type(result) is int
        else:
            with pytest.raises(ValueError, match=f"n must be an integer between {low} and {high}"):
                integer(given_value, "n", low, high)


@pytest.mark.parametrize("bad", [True, np.bool_(False), 2.0, 2.5, "2", None, np.float64(3.0)])
def test_integer_refuses_what_is_not_an_integer(bad):
    with pytest.raises(ValueError, match=re.escape(f"steps must be an integer, got {bad!r}")):
        integer(bad, "steps")


@pytest.mark.parametrize(
    ("minimum", "words"),
    [(0, "a non-negative integer"), (1, "a positive integer"), (3, "an integer >= 3")],
)
def test_integer_messages_name_the_bound(minimum, words):
    with pytest.raises(ValueError, match=f"^seed must be {words}, got -1$"):
        integer(-1, "seed", minimum)
    assert integer(minimum, "seed", minimum) == minimum


def test_integer_raises_the_requested_type_and_names_the_upper_bound():
    with pytest.raises(TypeError, match="seed must be an integer"):
        integer(1.5, "seed", error=TypeError)
    with pytest.raises(ConfigError, match="run.seed must be a non-negative integer"):
        integer(-3, "run.seed", 0, error=ConfigError)
    with pytest.raises(ValueError, match="k must be an integer between 1 and dim=2, got 3"):
        integer(3, "k", 1, 2, maximum_is="dim=2")


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_number_accepts_exactly_the_finite_reals_in_range(value):
    finite = math.isfinite(value)
    assert (number(value, "x") == value) if finite else True
    if not finite:
        with pytest.raises(ValueError, match="x must be a finite number"):
            number(value, "x")
    cases = [
        ({"positive": True}, finite and value > 0, "a positive number"),
        ({"non_negative": True}, finite and value >= 0, "a non-negative number"),
        ({"non_negative": True, "below": 1.0}, finite and 0 <= value < 1, r"a number in \[0, 1\)"),
        ({"positive": True, "below": 1.0}, finite and 0 < value < 1, r"a number in \(0, 1\)"),
    ]
    for options, accepted, words in cases:
        if accepted:
            assert number(value, "lr", **options) == value
        else:
            with pytest.raises(ValueError, match=f"lr must be {words}"):
                number(value, "lr", **options)


def test_number_converts_scalars_and_refuses_bools_and_strings():
    torch = pytest.importorskip("torch")
    for scalar in (np.float32(0.5), np.array(0.5), torch.tensor(0.5), 1):
        result = number(scalar, "lr", positive=True)
        assert result == 0.5 or result == 1.0
        assert type(result) is float
    for bad in (True, "0.5", None, 1j, [0.5, 0.5], 10**400, np.array([0.5])):
        with pytest.raises(
            ValueError, match=re.escape(f"lr must be a positive number, got {bad!r}")
        ):
            number(bad, "lr", positive=True)
    with pytest.raises(ConfigError, match="optimizer.lr must be a positive number, got -1.0"):
        number(-1.0, "optimizer.lr", positive=True, error=ConfigError)


def test_real_array_and_interval():
    np.testing.assert_array_equal(real_array([1, 2], "P", 1), [1.0, 2.0])
    assert real_array([1, 2], "P", 1).dtype == np.float64
    with pytest.raises(ValueError, match="P must be real numbers, got dtype complex128"):
        real_array([1j], "P", 1)
    for bad in ([], [[1.0]]):
        with pytest.raises(ValueError, match="P must be a non-empty finite 1-d array"):
            real_array(bad, "P", 1)
    with pytest.raises(ValueError, match=r"P must be finite, got 2 NaN or infinite value\(s\)"):
        real_array([np.inf, 1.0, np.nan], "P", 1)  # the shape is right: say what is wrong
    assert interval((0, 2), "r_range") == (0.0, 2.0)
    with pytest.raises(ValueError, match="r_range must be an interval"):
        interval(3, "r_range")
    with pytest.raises(ValueError, match="with low ≤ high"):
        interval((2, 1), "r_range")
