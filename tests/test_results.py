"""Result objects: xarray datasets on disk, plots, Kaplan–Yorke dimension, KS entropy, progress."""

import math

import numpy as np
import pytest
import xarray as xr

import lyapkit as lk


@pytest.fixture(scope="module")
def henon_result():
    return lk.lyapunov_spectrum(
        lk.Henon(),
        steps=20_000,
        transient=100,
        ensemble=3,
        finite_time=1000,
        seed=5,
        backend="numpy",
    )


def test_to_xarray_has_named_dims_units_and_roundtrips_through_hdf5(henon_result, tmp_path):
    ds = henon_result.to_xarray()
    assert ds["exponent_value"].dims == ("exponent",)
    assert ds["member_exponent"].dims == ("member", "exponent")
    assert ds["running_estimate"].dims == ("step", "exponent")
    assert ds["finite_time_exponent"].dims == ("member", "window", "exponent")
    for name in ("exponent_value", "stderr", "running_estimate", "finite_time_exponent"):
        assert ds[name].attrs["units"] == "1/step"
        assert ds[name].attrs["long_name"]
    assert ds.attrs["seed"] == "5" and ds.attrs["backend"] == "numpy"
    np.testing.assert_array_equal(ds["exponent_value"].values, henon_result.exponents)
    path = tmp_path / "henon.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = xr.open_dataset(path, engine="h5netcdf")  # plain xarray reads it
    xr.testing.assert_identical(back.load(), ds)
    back.close()


def test_plot_accepts_ax(henon_result):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert henon_result.plot(ax=ax) is ax
    assert len(ax.get_lines()) == 4  # two running estimates, two final values
    assert ax.get_xscale() == "log"
    plt.close(fig)


@pytest.mark.parametrize(
    ("exponents", "dim", "expected"),
    [
        ([0.4192, -1.6232], 2, 1 + 0.4192 / 1.6232),
        ([-0.1, -0.5], 2, 0.0),
        ([0.5, 0.2], 2, 2.0),  # expanding in every direction: the full dimension
        ([0.5, 0.2], 5, math.nan),  # partial spectrum with non-negative sums: undetermined
        ([0.9, 0.0, -0.3, -1.0], 4, 3 + 0.6 / 1.0),
        ([1.0, -0.4, -0.8], 3, 2 + 0.6 / 0.8),
        ([math.nan, 0.1], 2, math.nan),
    ],
)
def test_kaplan_yorke_dimension(exponents, dim, expected):
    got = lk.kaplan_yorke_dimension(np.array(exponents), dim)
    assert got == pytest.approx(expected, nan_ok=True)


def test_ks_entropy_sums_positive_exponents():
    assert lk.ks_entropy(np.array([0.7, 0.2, -0.1, -2.0])) == pytest.approx(0.9)
    assert lk.ks_entropy(np.array([-0.1, -2.0])) == 0.0
    assert math.isnan(lk.ks_entropy(np.array([math.nan, 1.0])))


def test_seed_is_recorded_and_reproduces_the_run():
    a = lk.lyapunov_spectrum(lk.Henon(), steps=500, ensemble=2, backend="numpy")
    b = lk.lyapunov_spectrum(lk.Henon(), steps=500, ensemble=2, seed=a.seed, backend="numpy")
    np.testing.assert_array_equal(a.member_exponents, b.member_exponents)
    c = lk.lyapunov_spectrum(lk.Henon(), steps=500, ensemble=2, backend="numpy")
    assert c.seed != a.seed


def test_progress_bar_off_a_terminal_is_quiet(capsys):
    res = lk.lyapunov_spectrum(lk.Henon(), steps=5000, progress=True, backend="numpy")
    assert np.isfinite(res.exponents).all()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


class CountingProgress(lk.Progress):
    enabled = True

    def __init__(self):
        self.done, self.closed = 0, False

    def update(self, n):
        self.done += n

    def close(self):
        self.closed = True


@pytest.mark.parametrize("backend", ["numpy", "numba", "torch"])
def test_progress_strategy_sees_every_step(backend):
    meter = CountingProgress()
    lk.lyapunov_spectrum(lk.Henon(), steps=3000, transient=77, progress=meter, backend=backend)
    assert meter.done == 3077 and meter.closed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(steps=0), "steps must be a positive integer"),
        (dict(steps=10, k=3), "k must be an integer between 1 and dim=2"),
        (dict(steps=10, k=0), "k must be"),
        (dict(steps=10, transient=-1), "transient must be"),
        (dict(steps=10, reortho_every=0), "reortho_every must be"),
        (dict(steps=10, ensemble=0), "ensemble must be"),
        (dict(steps=10, x0=[1.0, 2.0, 3.0]), r"x0 must have shape \(2,\)"),
        (dict(steps=10, x0=np.zeros((3, 2)), ensemble=2), "x0 has 3 states but ensemble=2"),
        (dict(steps=10, x0=[np.nan, 0.0]), "x0 must be finite"),
        (dict(steps=10, inputs=np.zeros((10, 1))), "has no input"),
        (dict(steps=10, finite_time=3, reortho_every=2), "finite_time must be a multiple"),
        (dict(steps=10, seed=-1), "seed must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lk.lyapunov_spectrum(lk.Henon(), backend="numpy", **kwargs)


def test_bad_inputs_are_named():
    system = lk.TanhNetwork(3, input_dim=2)
    with pytest.raises(ValueError, match=r"inputs must have shape \(T, 2\)"):
        lk.lyapunov_spectrum(system, steps=10, inputs=np.zeros((10, 3)), backend="numpy")
    with pytest.raises(ValueError, match="inputs has 10 time steps but transient \\+ steps = 15"):
        lk.lyapunov_spectrum(system, steps=10, transient=5, inputs=np.zeros((10, 2)))
    with pytest.raises(ValueError, match="separation must be"):
        lk.max_lyapunov_twin(lk.Henon(), steps=10, separation=0.0)


def test_kaplan_yorke_and_entropy_take_minus_infinity():
    assert lk.kaplan_yorke_dimension([0.4, -0.1, -np.inf]) == 2.0
    assert lk.kaplan_yorke_dimension([0.4, -np.inf]) == 1.0
    assert lk.ks_entropy([0.4, -np.inf]) == pytest.approx(0.4)
    assert math.isnan(lk.kaplan_yorke_dimension([0.4, np.nan]))
    assert math.isnan(lk.ks_entropy([0.4, np.nan]))
