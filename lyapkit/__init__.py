"""lyapkit: Lyapunov spectra, variational terms and learning dynamics of any discrete map.

``import lyapkit`` imports neither numba nor torch; backends load them on first use.
"""

from lyapkit.backend import (
    Backend,
    BackendError,
    CovariantPlan,
    CovariantRecord,
    GGNPlan,
    TangentPlan,
    TangentRecord,
    TrajectoryPlan,
    TrajectoryRecord,
    available_backends,
    backend_names,
    get_backend,
)
from lyapkit.clv import CovariantVectors, covariant_vectors
from lyapkit.curvature import CurvatureOperator
from lyapkit.effective import (
    AdamEffectiveRates,
    EffectiveRates,
    PreconditionedSharpness,
    TemporalEffectiveRates,
    adam_effective_rates,
    adam_preconditioner,
    edge_of_stability,
    preconditioned_sharpness,
    sgd_effective_rates,
    temporal_effective_rates,
)
from lyapkit.eigensolvers import Eigenpairs, inverse_participation_ratio
from lyapkit.flossing import finite_time_exponents
from lyapkit.gradients import GradientPropagation, gradient_propagation
from lyapkit.hutchpp import hutchpp_trace
from lyapkit.lyapunov import (
    IllConditionedBasisWarning,
    NonFiniteTrajectoryWarning,
    lyapunov_spectrum,
    max_lyapunov_twin,
)
from lyapkit.maps import (
    BUILTIN_MAPS,
    CatMap,
    CoupledStandardMaps,
    Henon,
    LinearMap,
    Logistic,
    Map,
    NumbaKernels,
    StackedRNNMap,
    TanhNetwork,
    Tent,
    WCRNNMap,
    from_numba,
    from_numpy,
    from_torch,
)
from lyapkit.operators import LinearOperator, PreconditionedOperator
from lyapkit.progress import Progress
from lyapkit.recurrent import RecurrentNetwork, adapt
from lyapkit.results import LyapunovSpectrum, kaplan_yorke_dimension, ks_entropy
from lyapkit.sensitivity import MapGGN, map_ggn
from lyapkit.slq import SpectralDensity, lanczos_quadrature
from lyapkit.store import RunStore, open_run, run_config
from lyapkit.unrolled import LayerContributions
from lyapkit.variational import (
    VariationalProfile,
    VariationalTerm,
    variational_profile,
    variational_term,
)

__version__ = "0.1.0"

#: Names served from the trainers on first use (``lyapkit.open_sweep``), so that ``import
#: lyapkit`` stays free of them.
_FROM_TRAINERS = {"open_sweep": "lyapkit.trainers.sweep"}


def __getattr__(name: str):
    if name in _FROM_TRAINERS:
        import importlib

        return getattr(importlib.import_module(_FROM_TRAINERS[name]), name)
    raise AttributeError(f"module 'lyapkit' has no attribute {name!r}")


__all__ = [
    "AdamEffectiveRates",
    "BUILTIN_MAPS",
    "Backend",
    "BackendError",
    "CatMap",
    "CoupledStandardMaps",
    "CovariantPlan",
    "CovariantRecord",
    "CovariantVectors",
    "CurvatureOperator",
    "EffectiveRates",
    "Eigenpairs",
    "GGNPlan",
    "GradientPropagation",
    "Henon",
    "IllConditionedBasisWarning",
    "LayerContributions",
    "LinearOperator",
    "LinearMap",
    "Logistic",
    "LyapunovSpectrum",
    "Map",
    "MapGGN",
    "NonFiniteTrajectoryWarning",
    "NumbaKernels",
    "PreconditionedOperator",
    "PreconditionedSharpness",
    "Progress",
    "RecurrentNetwork",
    "RunStore",
    "SpectralDensity",
    "StackedRNNMap",
    "TangentPlan",
    "TangentRecord",
    "TanhNetwork",
    "TemporalEffectiveRates",
    "Tent",
    "TrajectoryPlan",
    "TrajectoryRecord",
    "VariationalProfile",
    "VariationalTerm",
    "WCRNNMap",
    "adam_effective_rates",
    "adam_preconditioner",
    "adapt",
    "available_backends",
    "backend_names",
    "covariant_vectors",
    "edge_of_stability",
    "finite_time_exponents",
    "from_numba",
    "from_numpy",
    "from_torch",
    "get_backend",
    "gradient_propagation",
    "hutchpp_trace",
    "inverse_participation_ratio",
    "kaplan_yorke_dimension",
    "ks_entropy",
    "lanczos_quadrature",
    "lyapunov_spectrum",
    "map_ggn",
    "max_lyapunov_twin",
    "open_run",
    "open_sweep",
    "preconditioned_sharpness",
    "run_config",
    "sgd_effective_rates",
    "temporal_effective_rates",
    "variational_profile",
    "variational_term",
    "__version__",
]
