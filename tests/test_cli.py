"""The ``lyapkit`` command line."""

import numpy as np
import xarray as xr

from lyapkit.cli import main


def test_spectrum_prints_table_and_writes_netcdf(tmp_path, capsys):
    out = tmp_path / "henon.nc"
    code = main(
        [
            "-q",
            "spectrum",
            "henon",
            "-p",
            "a=1.4",
            "-p",
            "b=0.3",
            "--steps",
            "20000",
            "--backend",
            "numpy",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "Kaplan-Yorke dimension" in text
    ds = xr.open_dataset(out, engine="h5netcdf")
    assert ds["exponent_value"].shape == (2,)
    assert abs(float(ds["exponent_value"][0]) - 0.4192) < 0.01
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing left behind
    ds.close()


def test_list_parameters(capsys):
    assert (
        main(
            [
                "-q",
                "spectrum",
                "coupled_standard_maps",
                "-p",
                "M=2",
                "-p",
                "k=1,1.5",
                "--steps",
                "2000",
                "--backend",
                "numpy",
            ]
        )
        == 0
    )
    rows = [line for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()]
    values = np.array([float(r.split()[1]) for r in rows])
    assert len(values) == 4 and abs(values.sum()) < 1e-9  # symplectic: exponents sum to zero


def test_usage_errors_exit_2_and_name_the_problem(capsys):
    assert main(["spectrum", "nonsense"]) == 2
    assert "unknown map 'nonsense'" in capsys.readouterr().err
    assert main(["spectrum", "henon", "-p", "zz=1"]) == 2
    assert "no parameter ['zz']" in capsys.readouterr().err
    assert main(["spectrum", "linear"]) == 2
    assert "needs array parameters ['A']" in capsys.readouterr().err
    assert main(["spectrum", "henon", "--k", "3"]) == 2
    assert "k must be an integer between 1 and dim=2" in capsys.readouterr().err
    assert main(["spectrum", "henon", "--backend", "jax"]) == 2
    assert "backend must be" in capsys.readouterr().err


def test_quiet_and_verbose_work_after_the_subcommand(capsys):
    assert main(["spectrum", "henon", "--steps", "2000", "--backend", "numpy", "-q"]) == 0
    assert "Kaplan-Yorke dimension" in capsys.readouterr().out
    assert main(["-q", "spectrum", "henon", "--steps", "2000", "--backend", "numpy", "-v"]) == 0
