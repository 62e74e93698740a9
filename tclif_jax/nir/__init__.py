"""Export to and import from NIR (the Neuromorphic Intermediate Representation).

``to_nir(model, dt)`` writes a network as a ``nir.NIRGraph`` that computes exactly what
the network computes, wherever NIR's primitives can say it; ``from_nir(graph)`` builds a
``SpikingNetwork`` from such a graph, ours or another library's. Every exported neuron
is exact under one execution convention, which NIR leaves implicit and which we state:

* a node sums its inputs, and each step evaluates the nodes in the order of the graph's
  forward edges;
* a *back-edge* (an edge into a node that lies on every path from the input to the
  edge's source: a recurrence or a reset) carries its source's output of the previous
  step, zero before the first step;
* time constants are Euler-discretised with step ``dt``: ``LI``/``LIF`` update
  ``v += dt / tau * (v_leak - v + r x)``, ``I`` updates ``v += dt * r x``, and a
  ``Threshold``/``LIF`` emits 1 where ``v > threshold``.

What each neuron becomes (``n`` neurons, decay beta):

* LIF, hard reset (official order), PLIF: ``LIF(tau = dt / (1 - beta), r = tau / dt,
  v_leak = 0, v_reset = 0)``;
* LIF, soft reset: ``LI`` -> ``Threshold`` with the back-edge ``Threshold -> Scale(-k
  v_th) -> LI``, k = beta (official order) or 1 (paper order);
* TC-LIF: two ``I(r = 1/dt)`` nodes, dendrite -> ``Scale(b2)`` -> soma -> ``Threshold``,
  and the back-edges soma -> ``Scale(b1)`` -> dendrite, ``Threshold -> Scale(-gamma')
  -> dendrite`` and ``Threshold -> Scale(-v_th) -> soma``; gamma' = gamma (paper order)
  or gamma + b1 v_th (official order, whose dendrite reads the soma after its reset);
* the generalised two-compartment neuron (Eq. 7-9, fixed decays a1, a2, free b1, b2):
  the same graph, with ``LI(tau = dt / (1 - a))`` for a compartment whose decay is below 1.

Our neurons fire at ``U >= v_th`` (``Surrogate.fires_at_zero``); NIR fires at
``v > threshold``, so the exported threshold is the largest float32 below ``v_th``
(equal for every float32 potential). A feed-forward layer is ``Affine`` (weights
``(out, in)``); a recurrent layer puts ``Linear(W_rec)`` on the back-edge from its
spikes and folds ``b_rec`` into the feed-forward bias, because a back-edge carries zero
at the first step while the layer adds ``b_rec`` at every step. The readout is an
``Affine`` whose per-step output the network sums over time (metadata ``readout``).

The graph's metadata holds ``dt`` and, under ``"tclif_jax"``, a JSON record of the
network (neuron names, settings, raw trainable values, split recurrent biases) that
``from_nir`` uses where it reproduces the graph's nodes, so a round trip restores the
model bit for bit; the nodes alone define the dynamics. ALIF, the official ALIF, GLIF
and a hard reset in the paper's order multiply two state variables, which no NIR node
does: ``to_nir`` refuses them with the reason. See ``docs/interop-nir.md``.
"""

from tclif_jax.nir.common import EXPORTABLE, FORMAT, REFUSED
from tclif_jax.nir.export import to_nir
from tclif_jax.nir.load import from_nir

__all__ = ["to_nir", "from_nir", "EXPORTABLE", "REFUSED", "FORMAT"]
