"""What export and import share: the format, the neurons NIR can and cannot express."""

from __future__ import annotations

import numpy as np

FORMAT = "tclif_jax.nir/1"
EXPORTABLE = ("lif", "plif", "tclif", "two_compartment")
# Why NIR cannot express these: each multiplies two state variables (NIR's nodes are
# linear maps, leaky integrators and thresholds; its LIF resets to a constant).
REFUSED = {
    "alif": "its reset subtracts the adaptive threshold times the spike, "
    "(v_th + beta_adapt a[t-1]) S[t-1], a product of two state variables",
    "alif_official": "its reset subtracts the adaptive threshold times the spike, "
    "theta[t-1] S[t-1], a product of two state variables",
    "glif": "its reset keeps U[t-1] (1 - gamma S[t-1]), a product of the potential and the "
    "spike (NIR's LIF resets to a constant)",
}

# The graph's metadata "readout": how the logits come from the output (no importer knows).
_READOUTS = {
    "sum": "logits = the output summed over time",
    "mean": "logits = the output averaged over time",
    "last": "logits = the output at the last step",
    None: "none: the output is the last layer's spikes",
}
_F32, _F64 = np.float32, np.float64
_RTOL = 1e-5  # float32 rounding of a value read back from its NIR form
