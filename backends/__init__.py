"""lyapkit's built-in backends: ``numpy`` (reference), ``numba`` and ``torch``.

Each module defines one :class:`lyapkit.backend.Backend`; lyapkit reaches them through its registry
(:func:`lyapkit.get_backend`), never by importing them directly.
"""
