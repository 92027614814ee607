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
    """The task registered in ``TASKS`` as ``name``, built with ``options``.

    ``make_task(name, **options) = TASKS[name](**options)``, after checking the options against
    the factory's signature, so that a configuration's ``[task]`` table (its ``name`` and the
    other keys) names a task: ``"adding"`` (:func:`lyapkit.trainers.tasks.adding_problem`),
    ``"smnist"`` / ``"psmnist"`` (:func:`lyapkit.trainers.tasks.sequential_mnist`),
    ``"scifar10"`` (:func:`lyapkit.trainers.tasks.sequential_cifar10`), ``"sdigits"`` /
    ``"psdigits"`` (:func:`lyapkit.trainers.tasks.sequential_digits`) and ``"teacher_student"``
    (:func:`lyapkit.trainers.tasks.teacher_student`); the ``p`` names are the permuted tasks.

    Parameters
    ----------
    name : str
        One of ``"adding"``, ``"smnist"``, ``"psmnist"``, ``"scifar10"``, ``"sdigits"``,
        ``"psdigits"``, ``"teacher_student"``.
    **options
        Keyword arguments of the task's factory (e.g. ``T=200`` for ``"adding"``).

    Returns
    -------
    Task
        The task the factory returns.

    Raises
    ------
    ValueError
        For an unknown task name (listing the known ones), an option the factory does not take, or a
        required option left out (listing the factory's options); and whatever the factory raises
        for a bad value.

    See Also
    --------
    lyapkit.trainers.tasks.Task : What a task holds.
    lyapkit.trainers.config.validate_config : Checks the other tables of a configuration.

    Examples
    --------
    >>> from lyapkit.trainers.tasks import make_task
    >>> task = make_task("adding", T=20, n_train=8, n_test=4)
    >>> task.name, tuple(task.train_inputs.shape), task.metric
    ('ADD(20)', (8, 20, 2), 'rms')
    >>> make_task("adding", length=20)
    Traceback (most recent call last):
    ...
    ValueError: unknown option(s) 'length'; task 'adding' takes the options: T, n_train, n_test, seed, min_performance
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
