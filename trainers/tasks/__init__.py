"""The data sets the trainers train on, as :class:`Task` objects with seeded data loaders.

- :func:`adding_problem` — ADD(T) of Dubinin & Effenberger (2023), generated;
- :func:`sequential_mnist` — sMNIST and psMNIST (784 steps), from the official IDX files;
- :func:`sequential_cifar10` — grayscale sCIFAR10 (1024 steps), from the official python batches;
- :func:`sequential_digits` — scikit-learn's bundled 8×8 digits as a 64-step task (offline);
- :func:`teacher_student` — the linear teacher–student regression of Zucchet & Orvieto (2024).

:func:`make_task` builds one by its name in :data:`TASKS`. Every task is deterministic: the same
arguments (seeds included) give identical tensors. Downloaded data live under :func:`data_root`
(``root`` argument, else ``$LYAPKIT_DATA``, else ``~/.lyapkit/data``).

**Minimal performance.** Dubinin & Effenberger measure learning efficiency as the number of
training iterations until the test performance first reaches a task-specific threshold of
minimal performance (MP), chosen to capture "a non-negligible deviation from chance-level
performance". Their numeric thresholds are not reproduced here, so each task's default follows
that rule as "twice as good as chance": an accuracy of twice the chance level (0.2 for ten
classes), or an RMS error of half that of the best constant guess (``sqrt(1/6)/2 ≈ 0.204`` for
ADD(T); half the standard deviation of the training targets for the teacher–student task). Pass
``min_performance=`` to any factory to use another threshold.
"""

from lyapkit.trainers.tasks.base import Task, data_root
from lyapkit.trainers.tasks.images import (
    read_idx,
    sequential_cifar10,
    sequential_digits,
    sequential_mnist,
)
from lyapkit.trainers.tasks.registry import TASKS, make_task
from lyapkit.trainers.tasks.synthetic import adding_problem, teacher_student

__all__ = [
    "Task",
    "TASKS",
    "make_task",
    "data_root",
    "adding_problem",
    "sequential_mnist",
    "sequential_cifar10",
    "sequential_digits",
    "teacher_student",
    "read_idx",
]
