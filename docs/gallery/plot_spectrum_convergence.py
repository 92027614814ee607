"""
Convergence of a Lyapunov spectrum
==================================

The QR method's running estimates of the Hénon map's two exponents converge to
λ₁ ≈ 0.419 and λ₂ = log b − λ₁ ≈ −1.623 nats per step; the ensemble of trajectories gives the
standard errors.
"""

import matplotlib.pyplot as plt
import numpy as np

import lyapkit as lk

result = lk.lyapunov_spectrum(lk.Henon(), steps=50_000, transient=1000, ensemble=4, seed=0)
print(result)
print("sum of exponents:", result.exponents.sum(), "log b:", np.log(0.3))

fig, ax = plt.subplots(figsize=(6, 3.5))
result.plot(ax=ax)
ax.set_title("Hénon map: running estimates of the exponents")
fig.tight_layout()
