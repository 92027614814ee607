"""Progress meters: quiet by default; tqdm (off when not on a terminal) on request."""

from __future__ import annotations

import logging
import os

from lyapkit.backend import Progress

log = logging.getLogger(__name__)


class TqdmProgress(Progress):
    """A tqdm bar over steps; ``TQDM_*`` environment variables keep control of its settings."""

    enabled = True

    def __init__(self, total: int, desc: str):
        from tqdm.auto import tqdm

        kwargs = {} if "TQDM_DISABLE" in os.environ else {"disable": None}  # None: off unless a TTY
        self._bar = tqdm(total=total, desc=desc, unit="step", **kwargs)

    def update(self, n: int) -> None:
        if n:
            self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


def progress_bar(progress: bool | None | Progress, total: int, desc: str) -> Progress:
    """A progress meter: ``None``/``False`` quiet, ``True`` a tqdm bar, or the given meter."""
    if isinstance(progress, Progress):
        return progress
    if not progress:
        return Progress()
    try:
        return TqdmProgress(total, desc)
    except ImportError:
        log.info("tqdm is not installed (pip install lyapkit[plot]); running without progress bar")
        return Progress()
