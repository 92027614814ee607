"""What the reproduction scripts share: the verdict words, the Markdown table and the command line.

Every script defines ``ITEMS`` (item name → function of ``(budget, out)`` returning table rows with
the keys ``item``, ``paper``, ``ours``, ``verdict`` and ``criterion``) and ``BUDGETS`` (``smoke``,
``default``, ``full``), and calls :func:`main`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def verdict(good: int, total: int, unit: str) -> str:
    """``reproduced`` when all ``total`` cases pass, ``partly (good of total unit)``, or ``not``."""
    if good == total:
        return "reproduced"
    return f"partly ({good} of {total} {unit})" if good else "not reproduced"


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table: item, paper, ours, verdict (criterion)."""
    lines = ["| item | paper | ours | verdict (criterion) |", "|---|---|---|---|"]
    cell = lambda text: text.replace("|", "\\|")  # noqa: E731
    lines += [
        f"| {row['item']} | {cell(row['paper'])} | {cell(row['ours'])} | {row['verdict']} "
        f"({cell(row['criterion'])}) |"
        for row in rows
    ]
    return "\n".join(lines)


def main(
    prefix: str,
    description: str,
    items: dict[str, Callable[[Any, Path], list[dict]]],
    budgets: dict[str, Any],
    default_out: Path,
    argv: list[str] | None = None,
    *,
    details: dict[str, Any] | None = None,
    sweeps: list[dict] | None = None,
    learning_rate: bool = False,
) -> int:
    """Run the chosen items at the chosen budget; write ``<out>/<prefix>_<item>.json`` and print
    each item's table. ``details`` holds extra data an item left for its record (popped);
    ``sweeps`` the cost of each sweep an item ran (emptied before each item, saved in its record
    as ``"sweeps"``); ``learning_rate`` adds ``--lr`` (replacing the budget's ``lr``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--full", action="store_true", help="the paper's size (a GPU helps)")
    parser.add_argument("--smoke", action="store_true", help="a tiny size, for the test suite")
    parser.add_argument("--only", choices=sorted(items), action="append", help="items to run")
    parser.add_argument("--out", type=Path, default=default_out, help="output folder")
    if learning_rate:
        parser.add_argument("--lr", type=float, help="learning rate of the trained items")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    budget = budgets["full" if args.full else "smoke" if args.smoke else "default"]
    if learning_rate and args.lr is not None:
        budget = dataclasses.replace(budget, name=f"{budget.name}, lr {args.lr:g}", lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    for name in args.only or sorted(items):
        if sweeps is not None:
            sweeps.clear()
        start = time.perf_counter()
        rows = items[name](budget, args.out)
        seconds = time.perf_counter() - start
        record = {"item": name, "budget": budget.name, "seconds": round(seconds, 1), "rows": rows}
        if details and name in details:
            record["data"] = details.pop(name)
        if sweeps:
            record["sweeps"] = list(sweeps)
        (args.out / f"{prefix}_{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"\n{name} ({budget.name}; {seconds:.0f} s)\n\n{markdown(rows)}")
    return 0
