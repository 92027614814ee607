"""The ``lyapkit`` command line of the analysis core: ``lyapkit spectrum``.

The installed ``lyapkit`` command (:mod:`lyapkit.trainers.cli`) adds ``train``, ``report`` and ``demo``
through the ``extend`` hook of :func:`main`, so the core never imports the trainers.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import lyapkit as lk

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
    """Write an xarray Dataset to netCDF4/HDF5 atomically (temporary file, then ``os.replace``)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".nc.tmp", dir=directory)
    os.close(fd)
    try:
        dataset.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


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


def cmd_spectrum(args: argparse.Namespace) -> int:
    system = build_map(args.map, _parse_params(args.param))
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


def make_parser(
    extend: Callable[[Any, argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """The parser; ``extend(subparsers, verbosity_parent)`` adds commands (the trainers do)."""
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
    parser = argparse.ArgumentParser(prog="lyapkit", description=__doc__, parents=[verbosity])
    parser.add_argument("--version", action="version", version=f"lyapkit {lk.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    spectrum = sub.add_parser(
        "spectrum", help="Lyapunov spectrum of a built-in map", parents=[verbosity]
    )
    spectrum.add_argument(
        "map",
        help=f"one of {sorted(lk.BUILTIN_MAPS)}, or (with the trainers installed) a run file "
        "RUN.nc: the model of its checkpoint, driven by its task's test sequences",
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
    spectrum.add_argument("--output", "-o", help="write the result as netCDF4/HDF5 (.nc)")
    spectrum.set_defaults(func=cmd_spectrum)

    if extend is not None:
        extend(sub, verbosity)
    return parser


def main(
    argv: Sequence[str] | None = None,
    extend: Callable[[Any, argparse.ArgumentParser], None] | None = None,
    usage_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Run the command line; ``usage_errors`` are further exception types reported with exit 2."""
    parser = make_parser(extend)
    args = parser.parse_args(argv)
    args.quiet, args.verbose = getattr(args, "quiet", False), getattr(args, "verbose", 0)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (UsageError, lk.BackendError, *usage_errors) as err:
        print(f"lyapkit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError) as err:
        print(f"lyapkit {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
