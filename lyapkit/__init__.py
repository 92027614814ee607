"""lyapkit: Lyapunov spectra, variational terms and learning dynamics of any discrete map.

``import lyapkit`` imports neither numba nor torch; backends load them on first use.
"""

from lyapkit.backend import (
    Backend,
    BackendError,
    TangentPlan,
    TangentRecord,
    available_backends,
    backend_names,
    get_backend,
)
from lyapkit.curvature import (
    CurvatureOperator,
    Eigenpairs,
    LayerContributions,
    SpectralDensity,
    hutchpp_trace,
    inverse_participation_ratio,
    lanczos_quadrature,
)
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
    TanhNetwork,
    Tent,
    WCRNNMap,
    from_numba,
    from_numpy,
    from_torch,
)
from lyapkit.progress import Progress
from lyapkit.results import LyapunovSpectrum, kaplan_yorke_dimension, ks_entropy

__version__ = "0.1.0"

__all__ = [
    "BUILTIN_MAPS",
    "Backend",
    "BackendError",
    "CatMap",
    "CoupledStandardMaps",
    "CurvatureOperator",
    "Eigenpairs",
    "Henon",
    "IllConditionedBasisWarning",
    "LayerContributions",
    "LinearMap",
    "Logistic",
    "LyapunovSpectrum",
    "Map",
    "NonFiniteTrajectoryWarning",
    "NumbaKernels",
    "Progress",
    "SpectralDensity",
    "TangentPlan",
    "TangentRecord",
    "TanhNetwork",
    "Tent",
    "WCRNNMap",
    "available_backends",
    "backend_names",
    "from_numba",
    "from_numpy",
    "from_torch",
    "get_backend",
    "hutchpp_trace",
    "inverse_participation_ratio",
    "kaplan_yorke_dimension",
    "ks_entropy",
    "lanczos_quadrature",
    "lyapunov_spectrum",
    "max_lyapunov_twin",
    "__version__",
]
