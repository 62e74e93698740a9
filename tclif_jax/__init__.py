"""tclif_jax: two-compartment spiking neurons (TC-LIF, Zhang et al., AAAI 2024) in JAX/Flax NNX.

The public API, by layer (each module's docstring has the details):

* neurons: ``Neuron`` (the protocol), ``TCLIF``, ``LIF``, ``PLIF``, ``ALIF`` (LSNN),
  ``ALIFOfficial``, ``GLIF``, ``TwoCompartment``, ``NEURONS``, ``make_neuron``; surrogates: ``Surrogate``,
  ``get_surrogate``;
* networks: ``NetworkConfig``, ``PRESETS``, ``SpikingDense``, ``Readout``,
  ``SpikingNetwork``, ``from_preset``, ``from_config``, ``parameters``, ``apply``,
  ``count_params``; typed parameters ``NetworkParams``, ``LayerParams``, ``Dense``;
* how a network runs: ``Execution`` (strategy, backward, remat, product precision);
* official weights: ``from_official``, ``to_official``.

Training (``tclif_jax.train``), data (``tclif_jax.data``), analyses
(``tclif_jax.analysis``) and plots (``tclif_jax.plotting``) are imported as modules.
"""

__version__ = "0.3.0"

from tclif_jax.config import PRESETS as PRESETS
from tclif_jax.config import NetworkConfig as NetworkConfig
from tclif_jax.convert import from_official as from_official
from tclif_jax.convert import to_official as to_official
from tclif_jax.execution import Execution as Execution
from tclif_jax.layers import Readout as Readout
from tclif_jax.layers import SpikingDense as SpikingDense
from tclif_jax.models import SpikingNetwork as SpikingNetwork
from tclif_jax.models import apply as apply
from tclif_jax.models import count_params as count_params
from tclif_jax.models import from_config as from_config
from tclif_jax.models import from_preset as from_preset
from tclif_jax.models import parameters as parameters
from tclif_jax.neurons import ALIF as ALIF
from tclif_jax.neurons import GLIF as GLIF
from tclif_jax.neurons import LIF as LIF
from tclif_jax.neurons import NEURONS as NEURONS
from tclif_jax.neurons import PLIF as PLIF
from tclif_jax.neurons import TCLIF as TCLIF
from tclif_jax.neurons import ALIFOfficial as ALIFOfficial
from tclif_jax.neurons import Neuron as Neuron
from tclif_jax.neurons import TwoCompartment as TwoCompartment
from tclif_jax.neurons import make_neuron as make_neuron
from tclif_jax.params import Dense as Dense
from tclif_jax.params import LayerParams as LayerParams
from tclif_jax.params import NetworkParams as NetworkParams
from tclif_jax.surrogate import Surrogate as Surrogate
from tclif_jax.surrogate import get_surrogate as get_surrogate
