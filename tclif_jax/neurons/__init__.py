"""Neuron models: pure step functions and the ``Neuron`` protocol every neuron type follows.

Every neuron is a pure function ``step(params, state, current) -> (state, spike)`` on
arrays of any batch shape ``(..., n)``, with ``params`` a dict of arrays and ``state`` a
small NamedTuple holding the membrane potentials *before* reset at step t and the spike
``S[t]``. The reset of ``S[t-1]`` is applied at the start of step t+1, which lets one state
layout serve both the paper's equations and the official code's order of operations.
Units are those of the paper: the input current and all potentials are dimensionless,
thresholds ``v_th`` in the same unit, one step per time bin.

``Neuron`` (``base``) is the public protocol: the step, the initial state and parameters,
the potential compared with the threshold, the compartments, the state as a vector (for
Jacobians), the preset settings a neuron takes over when swapped into a preset, and the
step's adjoint that the hand-differentiated time loops of ``tclif_jax.adjoint`` run
backwards (``save``, ``restore``, ``adjoint``, ``param_grads``: written out for every
neuron here, with a ``jax.vjp`` default for a new one). Every setting is checked when a
neuron is built. The families, one module each: ``two_compartment`` (TC-LIF and the
general two-compartment neuron), ``lif`` (LIF, PLIF), ``adaptive`` (the LSNN's ALIF and
the official ALIF), ``glif`` (GLIF). Adding a neuron type is one subclass of ``Neuron``
with a ``name`` and a ``State``; it registers itself in ``NEURONS``,
``tests/test_neuron_contract.py`` runs the contract on it and ``tests/test_adjoint.py``
checks its adjoint against autodiff. Outside this package nothing dispatches on neuron
types. No Flax here: modules in ``tclif_jax.layers`` hold the parameters and call these.

All steps take an optional ``probe`` (added to the potential that is compared with the
threshold, zero by default): the gradient with respect to it is the gradient with respect
to the membrane potential, used by the analyses.
"""

# isort: off
# The families register in this order, which is NEURONS' (and error messages'): TC-LIF first.
from tclif_jax.neurons import two_compartment, lif, adaptive, glif  # noqa: F401
# isort: on

from tclif_jax.neurons.adaptive import ALIF as ALIF
from tclif_jax.neurons.adaptive import ALIFOfficial as ALIFOfficial
from tclif_jax.neurons.adaptive import adaptive_threshold as adaptive_threshold
from tclif_jax.neurons.adaptive import alif_adjoint as alif_adjoint
from tclif_jax.neurons.adaptive import alif_official_adjoint as alif_official_adjoint
from tclif_jax.neurons.adaptive import alif_official_step as alif_official_step
from tclif_jax.neurons.adaptive import alif_step as alif_step
from tclif_jax.neurons.base import NEURONS as NEURONS
from tclif_jax.neurons.base import RESET_ORDERS as RESET_ORDERS
from tclif_jax.neurons.base import ALIFState as ALIFState
from tclif_jax.neurons.base import LIFState as LIFState
from tclif_jax.neurons.base import Neuron as Neuron
from tclif_jax.neurons.base import TCLIFState as TCLIFState
from tclif_jax.neurons.base import make_neuron as make_neuron
from tclif_jax.neurons.base import neuron_settings as neuron_settings
from tclif_jax.neurons.glif import GLIF as GLIF
from tclif_jax.neurons.glif import GLIF_PARAMS as GLIF_PARAMS
from tclif_jax.neurons.glif import glif_adjoint as glif_adjoint
from tclif_jax.neurons.glif import glif_step as glif_step
from tclif_jax.neurons.lif import LIF as LIF
from tclif_jax.neurons.lif import PLIF as PLIF
from tclif_jax.neurons.lif import lif_adjoint as lif_adjoint
from tclif_jax.neurons.lif import lif_step as lif_step
from tclif_jax.neurons.lif import plif_adjoint as plif_adjoint
from tclif_jax.neurons.lif import plif_step as plif_step
from tclif_jax.neurons.two_compartment import TCLIF as TCLIF
from tclif_jax.neurons.two_compartment import TwoCompartment as TwoCompartment
from tclif_jax.neurons.two_compartment import coupling as coupling
from tclif_jax.neurons.two_compartment import tclif_adjoint as tclif_adjoint
from tclif_jax.neurons.two_compartment import tclif_step as tclif_step
from tclif_jax.neurons.two_compartment import two_compartment_adjoint as two_compartment_adjoint
from tclif_jax.neurons.two_compartment import two_compartment_step as two_compartment_step

__all__ = [
    "Neuron",
    "TCLIFState",
    "LIFState",
    "ALIFState",
    "tclif_step",
    "two_compartment_step",
    "lif_step",
    "plif_step",
    "alif_step",
    "alif_official_step",
    "glif_step",
    "tclif_adjoint",
    "two_compartment_adjoint",
    "lif_adjoint",
    "plif_adjoint",
    "alif_adjoint",
    "alif_official_adjoint",
    "glif_adjoint",
    "TCLIF",
    "TwoCompartment",
    "LIF",
    "PLIF",
    "ALIF",
    "ALIFOfficial",
    "GLIF",
    "NEURONS",
    "make_neuron",
    "neuron_settings",
    "coupling",
    "adaptive_threshold",
]
