"""The Gated LIF (GLIF, Yao et al., NeurIPS 2022) with soft gates, one set per neuron.

Three gates mix exponential and linear leak, fixed and gated input, hard and soft reset;
every value (gates, decay, threshold, leak, reset, conductance) is learned through a
sigmoid. Its default surrogate is the official code's (``official_glif``): it fires at
U - V_th > 0 (H(0) = 0) and passes the gradient unscaled where |U - V_th| < 0.5. A pure
step, its hand-written adjoint and the ``Neuron`` type wrapping both. State fields
``(..., n)``; potentials dimensionless.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from tclif_jax.neurons.base import (
    LIFState,
    Neuron,
    _fire,
    _logit,
    _reset_spike,
    _sum_to,
    _unless,
    check_sigmoid_value,
)
from tclif_jax.surrogate import Surrogate

GLIF_PARAMS = ("alpha", "beta", "gamma", "tau", "threshold", "leak", "reset", "conduct")


def glif_step(
    params,
    state: LIFState,
    current,
    *,
    spike_fn: Surrogate,
    detach_reset: bool = False,
    probe=0.0,
):
    """Gated LIF (GLIF, Yao et al., NeurIPS 2022), soft gates, one step.

    ``params``: the logits of ``GLIF_PARAMS``, each ``(n,)`` (one per neuron) or ``()``;
    the value used is the sigmoid of each. With gates (a, b, g), membrane decay tau,
    threshold V_th, linear leak V_L, reset V_R and conductance G::

        I'[t] = (1 - b (1 - G)) I[t]
        U[t]  = (1 - a (1 - tau)) U[t-1] (1 - g S[t-1]) - (1 - a) V_L + I'[t]
                - (1 - g) V_R S[t-1]
        S[t]  = H(U[t] - V_th)

    a mixes exponential (tau) and linear (V_L) leak, b a fixed and a gated input, g a hard
    and a soft reset. H(0) is ``spike_fn``'s: 0 with GLIF's default ``official_glif``, as
    the official code (a spike needs U[t] > V_th). The official code learns one G per time
    step; G is one per neuron here (sequences of hundreds of steps).
    """
    sig = {k: jax.nn.sigmoid(params[k]) for k in GLIF_PARAMS}
    a, b, g = sig["alpha"], sig["beta"], sig["gamma"]
    s = _reset_spike(state.spike, detach_reset)
    gated_input = current * (1.0 - b * (1.0 - sig["conduct"]))
    potential = (
        (1.0 - a * (1.0 - sig["tau"])) * state.potential * (1.0 - g * s)
        - (1.0 - a) * sig["leak"]
        + gated_input
        - (1.0 - g) * sig["reset"] * s
        + probe
    )
    return _fire(LIFState, (potential,), spike_fn, potential - sig["threshold"])


def glif_adjoint(
    params,
    prev: LIFState,
    state: LIFState,
    cot: LIFState,
    *,
    current,
    spike_fn: Surrogate,
    detach_reset: bool = False,
):
    """The adjoint of ``glif_step``; ``current`` is the step's input I[t].

    With the names of ``glif_step``, m = 1 - a (1 - tau), S = S[t-1], P = U[t-1] and
    g = surrogate'(U[t] - V_th)::

        V = cot.potential + g cot.spike;  dI = V (1 - b (1 - G))
        cot_prev = (m (1 - g S) V,  -(m P g + (1 - g) V_R) V)

    and per element (``terms``, in ``GLIF_PARAMS`` order, before the sigmoid's derivative)::

        d alpha = V (V_L - (1 - tau) P (1 - g S));   d beta = -V I (1 - G)
        d gamma = V S (V_R - m P);   d tau = V a P (1 - g S);   d V_th = -g cot.spike
        d V_L = -(1 - a) V;   d V_R = -(1 - g) S V;   d G = V I b

    The spike's term is 0 with ``detach_reset``.
    """
    sig = {k: jax.nn.sigmoid(params[k]) for k in GLIF_PARAMS}
    a, b, gate, tau = sig["alpha"], sig["beta"], sig["gamma"], sig["tau"]
    s, p = prev.spike, prev.potential
    m = 1.0 - a * (1.0 - tau)
    sg = spike_fn.derivative(state.potential - sig["threshold"]) * cot.spike
    V = cot.potential + sg
    kept = p * (1.0 - gate * s)
    cot_prev = LIFState(
        m * (1.0 - gate * s) * V,
        _unless(detach_reset, -(m * p * gate + (1.0 - gate) * sig["reset"]) * V),
    )
    terms = (
        V * (sig["leak"] - (1.0 - tau) * kept),
        -V * current * (1.0 - sig["conduct"]),
        V * s * (sig["reset"] - m * p),
        V * a * kept,
        -sg,
        -(1.0 - a) * V,
        -(1.0 - gate) * s * V,
        V * current * b,
    )
    return cot_prev, V * (1.0 - b * (1.0 - sig["conduct"])), terms


@dataclasses.dataclass(frozen=True)
class GLIF(Neuron):
    """Gated LIF (Yao et al., NeurIPS 2022; ``glif_step``), soft gates, per neuron.

    Every value is learnable per neuron through a sigmoid, so each initial value lies in
    (0, 1): ``v_th`` the threshold, ``init_tau`` the exponential decay, ``init_leak`` the
    linear leak, ``init_reset`` the soft-reset amount (None: ``v_th``, as the official
    code), ``init_conduct`` the conductance and ``init_gates`` the gates (alpha, beta,
    gamma). Defaults are the official code's (``train.py``: tau 0.25, V_th 0.5, leak
    V_th / 8, conductance 0.5; ``--gate 0.6 0.8 0.6``, which it maps to the gate values
    0.55, 0.65, 0.55), and so is the surrogate: ``official_glif``, a spike when
    U > V_th (not at equality) and the gradient 1 where |U - V_th| < 0.5, else 0
    (``layers.py``, ``SpikeAct_extended``). Its threshold is learned, so swapped into a
    preset it takes no preset setting.
    """

    name: ClassVar[str] = "glif"
    State: ClassVar[type] = LIFState
    preset_settings: ClassVar[frozenset[str] | None] = frozenset()
    step_fn: ClassVar[Any] = staticmethod(glif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(glif_adjoint)
    saves_current: ClassVar[bool] = True

    v_th: float = 0.5
    surrogate: Surrogate = Surrogate("official_glif")
    init_tau: float = 0.25
    init_leak: float = 0.0625
    init_reset: float | None = None
    init_conduct: float = 0.5
    init_gates: tuple[float, float, float] = (0.55, 0.65, 0.55)

    def __post_init__(self):
        super().__post_init__()
        for field in ("v_th", "init_tau", "init_leak", "init_reset", "init_conduct"):
            if getattr(self, field) is not None:
                check_sigmoid_value(self.name, field, getattr(self, field))
        for gate, value in zip(("alpha", "beta", "gamma"), self.init_gates):
            check_sigmoid_value(self.name, "init_gates", self.init_gates, value, gate)

    def initial_values(self) -> dict[str, float]:
        """The initial value (after the sigmoid) of every entry of ``GLIF_PARAMS``."""
        a, b, g = self.init_gates
        reset = self.v_th if self.init_reset is None else self.init_reset
        values = dict(alpha=a, beta=b, gamma=g, tau=self.init_tau, threshold=self.v_th)
        return values | dict(leak=self.init_leak, reset=reset, conduct=self.init_conduct)

    def init_params(self, num_neurons):
        return {
            k: jnp.full((num_neurons,), _logit(v), jnp.float32)
            for k, v in self.initial_values().items()
        }

    def step_kwargs(self, params):
        # Every value is a learned parameter; v_th is only the initial threshold.
        return {"spike_fn": self.surrogate, "detach_reset": self.detach_reset}

    def firing_threshold(self, params, fields):
        return self.v_th if params is None else jax.nn.sigmoid(params["threshold"])

    def param_grads(self, params, terms):
        grads = {}
        for key, term in zip(GLIF_PARAMS, terms):
            sig = jax.nn.sigmoid(params[key])
            grads[key] = _sum_to(term, params[key].shape) * sig * (1.0 - sig)
        return grads
