"""The lyapkit command line.

    lyapkit spectrum MAP [-p NAME=VALUE] [-o OUT.nc]  Lyapunov spectrum of a built-in map
    lyapkit spectrum RUN.nc                           ... of the model saved in a run file
    lyapkit train CONFIG.toml [--resume|--overwrite]  train with diagnostics into a run file
    lyapkit sweep SWEEP.toml [--workers N]            a grid of runs (resumable; --scheduler: Dask)
    lyapkit report RUN.nc [-o SHEET.png]              the report sheet of a run
    lyapkit report SWEEP_DIR [--x KEY --hue KEY]      a metric of a sweep against a swept key
    lyapkit demo [--dir DIR]                          analyse and train a small WCRNN (~30 s)

Exit codes: 0 success, 1 a run that failed (non-finite result or loss), 2 a usage or configuration
error, or a missing optional dependency (the message names the extra to install).
"""

# The parser of every command is built here, in the core, without importing the trainers or any
# optional dependency: `lyapkit --help` loads neither torch, netCDF4, matplotlib nor numba. Each
# handler imports what its command needs when it runs: the training commands (and the spectrum of a
# run file) are implemented in `lyapkit.trainers.cli`, which the core reaches only from them.

from __future__ import annotations

import argparse
import inspect
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

import numpy as np

import lyapkit as lk
from lyapkit._array import import_optional
from lyapkit._files import atomic_write, check_writable, netcdf_bytes

log = logging.getLogger("lyapkit")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """A command-line argument is invalid (exit code 2)."""


def _parse_params(items: Sequence[str]) -> dict[str, float | int | list[float]]:
    """``["a=1.4", "k=1,2,3"]`` → ``{"a": 1.4, "k": [1.0, 2.0, 3.0]}``."""
    params: dict[str, float | int | list[float]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            numbers = [float(v) for v in value.split(",")]
        except ValueError:
            raise UsageError(f"--param {name}: {value!r} is not a number or a list") from None
        if len(numbers) > 1:
            params[name] = numbers
        else:
            params[name] = (
                int(numbers[0]) if numbers[0].is_integer() and "." not in value else numbers[0]
            )
    return params


def build_map(name: str, params: dict) -> lk.Map:
    """A built-in map by name with scalar (or list) parameters from the command line."""
    if name not in lk.BUILTIN_MAPS:
        raise UsageError(f"unknown map {name!r}; built-in maps: {sorted(lk.BUILTIN_MAPS)}")
    cls = lk.BUILTIN_MAPS[name]
    signature = inspect.signature(cls)
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty and p.name not in params
    ]
    if missing:
        raise UsageError(
            f"map {name!r} needs array parameters {missing}; build it with the Python API"
        )
    unknown = sorted(set(params) - set(signature.parameters))
    if unknown:
        raise UsageError(
            f"map {name!r} has no parameter {unknown}; it takes {list(signature.parameters)}"
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as err:
        raise UsageError(f"map {name!r}: {err}") from err


def save_dataset(dataset, path: str) -> None:
    """Write an xarray Dataset to netCDF4/HDF5 atomically (:func:`lyapkit._files.atomic_write`)."""
    atomic_write(path, netcdf_bytes(dataset))


def format_spectrum(res: lk.LyapunovSpectrum) -> str:
    """The exponents as a table, with the Kaplan–Yorke dimension and KS entropy."""
    lines = [f"{'i':>3}  {'exponent':>12}  {'stderr':>9}"]
    lines += [
        f"{i:>3}  {v:>12.6f}  {e:>9.2g}"
        for i, (v, e) in enumerate(zip(res.exponents, res.stderr, strict=True), start=1)
    ]
    lines.append(
        f"Kaplan-Yorke dimension {res.kaplan_yorke_dimension:.4f}, "
        f"KS entropy {res.ks_entropy:.6f} (nats/step), backend {res.backend}, seed {res.seed}"
    )
    return "\n".join(lines)


def _require(*needs: tuple[str, str]) -> None:
    """Import each ``(module, extra)`` of a command before it starts, so that a missing optional
    dependency stops it at once with the ImportError of :func:`lyapkit._array.import_optional`
    (which names the extra), not after minutes of work."""
    for module, extra in needs:
        import_optional(module, extra)


# (module, extra) of the optional dependencies that commands need
_TORCH = ("torch", "torch")
_STORE = ("netCDF4", "store")
_PLOT = ("matplotlib", "plot")
_TASKS = ("sklearn", "tasks")
_DASK = ("distributed", "dask")


def _trainers_cli(*needs: tuple[str, str]) -> ModuleType:
    """:mod:`lyapkit.trainers.cli` (imported on first use: it imports torch), after ``needs``."""
    _require(_TORCH, *needs)
    from lyapkit.trainers import cli

    return cli


def cmd_spectrum(args: argparse.Namespace) -> int:
    if args.map.endswith(".nc"):  # a saved run: its model, driven by its task's test sequences
        return _trainers_cli(_STORE).cmd_run_spectrum(args)
    system = build_map(args.map, _parse_params(args.param))
    if args.output:  # before the computation, not after it
        _require(_STORE)
        check_writable(args.output, "--output")
    res = lk.lyapunov_spectrum(
        system,
        steps=args.steps,
        k=args.k,
        transient=args.transient,
        reortho_every=args.reortho_every,
        ensemble=args.ensemble,
        seed=args.seed,
        backend=args.backend,
        progress=not args.quiet,
    )
    print(format_spectrum(res))
    if args.output:
        save_dataset(res.to_xarray(), args.output)
        log.info("wrote %s", args.output)
    return EXIT_OK if np.isfinite(res.exponents).all() else EXIT_FAILURE


def cmd_train(args: argparse.Namespace) -> int:
    return _trainers_cli(_STORE).cmd_train(args)


def cmd_report(args: argparse.Namespace) -> int:
    return _trainers_cli(_STORE, _PLOT).cmd_report(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    return _trainers_cli(_STORE, *([_DASK] if args.scheduler else [])).cmd_sweep(args)


def cmd_demo(args: argparse.Namespace) -> int:
    return _trainers_cli(_STORE, _PLOT, _TASKS).cmd_demo(args)


def make_parser() -> argparse.ArgumentParser:
    """The parser of every command (built without importing any optional dependency)."""
    # -q/-v are accepted before and after the subcommand; their defaults are suppressed so that the
    # subcommand's copy does not reset what was given before it.
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
        help="only results and errors",
    )  # fmt: skip
    verbosity.add_argument(
        "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more logging"
    )
    parser = argparse.ArgumentParser(
        prog="lyapkit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[verbosity],
    )
    parser.add_argument("--version", action="version", version=f"lyapkit {lk.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    spectrum = sub.add_parser(
        "spectrum", help="Lyapunov spectrum of a built-in map or a saved run", parents=[verbosity]
    )
    spectrum.add_argument(
        "map",
        help=f"one of {sorted(lk.BUILTIN_MAPS)}, or a run file RUN.nc (needs lyapkit[torch]): "
        "the model of its checkpoint, driven by its task's test sequences",
    )
    spectrum.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="map parameter, e.g. -p a=1.4 (lists: -p k=1,1.5,2)",
    )
    spectrum.add_argument("--steps", type=int, default=100_000)
    spectrum.add_argument("--transient", type=int, default=1000)
    spectrum.add_argument("--k", type=int, default=None, help="number of exponents (default all)")
    spectrum.add_argument("--reortho-every", type=int, default=1)
    spectrum.add_argument("--ensemble", type=int, default=None)
    spectrum.add_argument("--seed", type=int, default=0)
    spectrum.add_argument("--backend", default="auto")
    spectrum.add_argument(
        "--output", "-o", help="write the result as netCDF4/HDF5 (.nc; needs lyapkit[store])"
    )
    spectrum.set_defaults(func=cmd_spectrum)

    train = sub.add_parser(
        "train", help="train a model with diagnostics (needs lyapkit[torch,store])",
        parents=[verbosity],
    )  # fmt: skip
    train.add_argument("config", help="TOML configuration (see docs/howto/training.md)")
    existing = train.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume", action="store_true",
        help="continue the run from its last checkpoint (the config must match the stored one in "
        "every key that changes the result); a finished run is left as it is",
    )  # fmt: skip
    existing.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing run (its run file and checkpoint) by a new one",
    )  # fmt: skip
    train.set_defaults(func=cmd_train)

    report = sub.add_parser(
        "report", help="report sheet of a run, or a sweep's figure (needs [torch,store,plot])",
        parents=[verbosity],
    )  # fmt: skip
    report.add_argument("run", help="run file (.nc), or a sweep directory")
    report.add_argument(
        "--output", "-o", help="image path (default: beside the run; a sweep: DIR/sweep.png)"
    )
    report.add_argument("--metric", help="sweep: the summary variable (default best_metric)")
    report.add_argument(
        "--x", help="sweep: the swept key on the x axis (default the first but --over, --hue)"
    )
    report.add_argument("--hue", help="sweep: one line per value of this key (default the next)")
    report.add_argument(
        "--over", help="sweep: mean ± std (ddof 0) over this key (default the seeds, run.seed)"
    )
    report.set_defaults(func=cmd_report)

    sweep = sub.add_parser(
        "sweep", help="run a grid of trainings (needs lyapkit[torch,store]; --scheduler: [dask])",
        parents=[verbosity],
    )  # fmt: skip
    sweep.add_argument("sweep", help="sweep file: a training config with a [sweep] table")
    sweep.add_argument("--dir", help="sweep directory (default: sweep.dir of the file)")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        help="processes of the local pool (default: one per CPU this process may use)",
    )
    where.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://h:8786")
    sweep.add_argument(
        "--retry-failed",
        action="store_true",
        help="run again the runs recorded as diverged, failed or lost",
    )
    sweep.add_argument(
        "--group", type=int, default=0, metavar="N",
        help="train up to N runs sharing an architecture together, vectorised (default: off)",
    )  # fmt: skip
    sweep.set_defaults(func=cmd_sweep)

    demo = sub.add_parser(
        "demo", help="analyse and train a small WCRNN with diagnostics (needs lyapkit[all])",
        parents=[verbosity],
    )  # fmt: skip
    demo.add_argument("--steps", type=int, default=3000, help="training steps")
    demo.add_argument("--analysis-steps", type=int, default=20_000)
    demo.add_argument("--dir", help="run directory (default: a new temporary directory)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lyapkit`` command line (the console script); returns the exit code."""
    args = make_parser().parse_args(argv)
    args.quiet, args.verbose = getattr(args, "quiet", False), getattr(args, "verbose", 0)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    # one line on stderr, no traceback (-v logs it): usage and configuration errors (ConfigError is
    # a ValueError), unreadable or unwritable files, a backend that is missing or cannot run the
    # map, and a missing optional dependency (an ImportError naming the extra to install)
    except (UsageError, lk.BackendError, ValueError, OSError, ImportError) as err:
        log.debug("%s: %s", type(err).__name__, err, exc_info=True)
        print(f"lyapkit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
