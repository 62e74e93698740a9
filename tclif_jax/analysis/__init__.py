"""Analyses of the paper: gradient norms and Jacobians (Eq. 14-15, Table 7), gradient flow
over time (Figure 3), learning curves (Figure 4), loss landscapes (Figure 5), the
beta-grid study (Figure 2) and energy (Table 2).

``paper_inf_norm`` is the paper's Eq. 15; ``transition_jacobian`` is the exact
one-step Jacobian of the implemented step, obtained by autodiff. The submodules
(``gradient_norms``, ``gradient_flow``, ``curves``, ``landscape``, ``beta_grid``,
``energy``) hold the rest. Network analyses take ``(config, params)``: a
``tclif_jax.config.NetworkConfig`` (``model.config``) and the NNX-named parameter dict
(``tclif_jax.models.parameters(model)``); inputs are batch-major ``(B, T, F)``.
Their entry points are ``experiments/analyses/*.py``, configured by
``experiments/configs/analyses/*.py``.
"""

from tclif_jax.analysis.jacobian import (  # noqa: F401
    jacobian_over_time,
    paper_inf_norm,
    spectral_radius,
    transition_jacobian,
)
