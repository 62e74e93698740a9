"""Analyses of the paper: gradient norms and Jacobians (Eq. 14-15, Table 7), and more.

``paper_inf_norm`` is the paper's Eq. 15; ``transition_jacobian`` is the exact
one-step Jacobian of the implemented step, obtained by autodiff.
"""

from tclif_jax.analysis.jacobian import (  # noqa: F401
    jacobian_over_time, paper_inf_norm, spectral_radius, transition_jacobian,
)
