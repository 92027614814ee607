"""Discrete maps: the protocol, built-in maps and wrappers for user maps."""

from lyapkit.maps.base import ArrayMap, Map, NumbaKernels
from lyapkit.maps.builtin import (
    CatMap,
    CoupledStandardMaps,
    Henon,
    LinearMap,
    Logistic,
    TanhNetwork,
    Tent,
)
from lyapkit.maps.rnn import StackedRNNMap
from lyapkit.maps.torch_map import TorchMap, from_torch
from lyapkit.maps.user import CallableMap, NumbaMap, from_numba, from_numpy
from lyapkit.maps.wcrnn import WCRNNMap

BUILTIN_MAPS: dict[str, type[Map]] = {
    cls.name: cls
    for cls in (
        Henon,
        Logistic,
        Tent,
        CatMap,
        CoupledStandardMaps,
        LinearMap,
        TanhNetwork,
        WCRNNMap,
    )
}

__all__ = [
    "BUILTIN_MAPS",
    "ArrayMap",
    "CallableMap",
    "CatMap",
    "CoupledStandardMaps",
    "Henon",
    "LinearMap",
    "Logistic",
    "Map",
    "NumbaKernels",
    "NumbaMap",
    "StackedRNNMap",
    "TanhNetwork",
    "Tent",
    "TorchMap",
    "WCRNNMap",
    "from_numba",
    "from_numpy",
    "from_torch",
]
