"""tclif_jax: two-compartment spiking neurons (TC-LIF, Zhang et al., AAAI 2024) in JAX/Flax NNX."""

__version__ = "0.1.0"

from tclif_jax import surrogate, neurons, layers, models  # noqa: E402,F401
from tclif_jax.models import SpikingNetwork, count_params, from_preset  # noqa: E402,F401
