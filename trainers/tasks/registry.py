"""The named tasks, for configuration files: ``make_task(config["task"]["name"], **options)``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from lyapkit.trainers.tasks.base import Task
from lyapkit.trainers.tasks.images import sequential_cifar10, sequential_digits, sequential_mnist
from lyapkit.trainers.tasks.synthetic import adding_problem, teacher_student

#: Task factories by name; each returns a :class:`Task`.
TASKS: dict[str, Callable[..., Task]] = {
    "adding": adding_problem,
    "smnist": sequential_mnist,
    "psmnist": partial(sequential_mnist, permuted=True),
    "scifar10": sequential_cifar10,
    "sdigits": sequential_digits,
    "psdigits": partial(sequential_digits, permuted=True),
    "teacher_student": teacher_student,
}


def make_task(name: str, **options: Any) -> Task:
    """The task registered in :data:`TASKS` as ``name``, built with ``options``.

    Parameters
    ----------
    name : str
        One of ``"adding"``, ``"smnist"``, ``"psmnist"``, ``"scifar10"``, ``"sdigits"``,
        ``"psdigits"``, ``"teacher_student"``.
    **options
        Keyword arguments of the task's factory (e.g. ``T=200`` for ``"adding"``).

    Raises
    ------
    ValueError
        For an unknown task name (listing the known ones), an option the factory does not take, or a
        required option left out (listing the factory's options).
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the tasks are: {', '.join(TASKS)}")
    factory = TASKS[name]
    parameters = inspect.signature(factory).parameters
    accepted = f"task {name!r} takes the options: {', '.join(parameters)}"
    unknown = [option for option in options if option not in parameters]
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))}; {accepted}")
    missing = [
        p for p, spec in parameters.items() if spec.default is spec.empty and p not in options
    ]
    if missing:
        raise ValueError(f"missing required option(s) {', '.join(map(repr, missing))}; {accepted}")
    return factory(**options)
