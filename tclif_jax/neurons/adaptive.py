"""Adaptive-threshold neurons: the LSNN's ALIF (Bellec et al. 2018) and the official
TC-LIF repository's ALIF.

Both raise the threshold after spikes, A = v_th + beta_adapt a, with an adaptation a that
decays between them; the LSNN's has fixed time constants (in steps), the official one
learns both decays through c = (c0, c1). Each is a pure step, its hand-written adjoint and
the ``Neuron`` type wrapping both. State fields ``(..., n)``; potentials dimensionless.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from tclif_jax.neurons.base import (
    ALIFState,
    Neuron,
    _fire,
    _reset_spike,
    _sum_to,
    _unless,
    invalid,
)
from tclif_jax.surrogate import Surrogate


def adaptive_threshold(adaptation, v_th: float, beta_adapt: float):
    """Both ALIFs' threshold A = v_th + beta_adapt a for the adaptation ``a (..., n)``."""
    return v_th + beta_adapt * adaptation


def alif_step(
    params,
    state: ALIFState,
    current,
    *,
    tau_m: float,
    tau_adapt: float,
    beta_adapt: float,
    v_th: float,
    spike_fn: Surrogate,
    detach_reset: bool = False,
    probe=0.0,
):
    """Adaptive LIF of Bellec et al. (2018), the LSNN's ALIF.

    a[t] = rho a[t-1] + (1 - rho) S[t-1];  A[t] = v_th + beta_adapt a[t]
    U[t] = alpha U[t-1] + I[t] - A[t-1] S[t-1];  S[t] = H(U[t] - A[t])
    with alpha = exp(-1/tau_m) and rho = exp(-1/tau_adapt), tau in steps, so a stays in
    [0, 1] and the threshold in [v_th, v_th + beta_adapt]. The reset subtracts the
    threshold S[t-1] crossed; the input is not scaled by (1 - alpha), as in this
    library's LIF (the weights absorb it).
    """
    alpha = math.exp(-1.0 / tau_m)
    rho = math.exp(-1.0 / tau_adapt)
    s = _reset_spike(state.spike, detach_reset)
    old_threshold = adaptive_threshold(state.adaptation, v_th, beta_adapt)
    adaptation = rho * state.adaptation + (1.0 - rho) * state.spike
    potential = alpha * state.potential + current - old_threshold * s + probe
    threshold = adaptive_threshold(adaptation, v_th, beta_adapt)
    return _fire(ALIFState, (potential, adaptation), spike_fn, potential - threshold)


def alif_adjoint(
    params,
    prev: ALIFState,
    state: ALIFState,
    cot: ALIFState,
    *,
    tau_m: float,
    tau_adapt: float,
    beta_adapt: float,
    v_th: float,
    spike_fn: Surrogate,
    detach_reset: bool = False,
):
    """The adjoint of ``alif_step``. With g = surrogate'(U[t] - v_th - beta_adapt a[t]),
    S = S[t-1] and A[t-1] = v_th + beta_adapt a[t-1]::

        V = cot.potential + g cot.spike;  Q = cot.adaptation - beta_adapt g cot.spike
        dI = V;  cot_prev = (alpha V,  rho Q - beta_adapt S V,  (1 - rho) Q - A[t-1] V)

    The reset's term -A[t-1] V is 0 with ``detach_reset``; the adaptation's (1 - rho) Q is
    not (a[t] reads S[t-1] undetached). No learnable parameters: ``terms`` is empty.
    """
    alpha = math.exp(-1.0 / tau_m)
    rho = math.exp(-1.0 / tau_adapt)
    g = spike_fn.derivative(
        state.potential - adaptive_threshold(state.adaptation, v_th, beta_adapt)
    )
    V = cot.potential + g * cot.spike
    Q = cot.adaptation - beta_adapt * g * cot.spike
    old_threshold = adaptive_threshold(prev.adaptation, v_th, beta_adapt)
    cot_prev = ALIFState(
        alpha * V,
        rho * Q - beta_adapt * prev.spike * V,
        (1.0 - rho) * Q + _unless(detach_reset, -old_threshold * V),
    )
    return cot_prev, V, ()


def alif_official_step(
    params,
    state: ALIFState,
    current,
    *,
    v_th: float,
    beta_adapt: float,
    spike_fn: Surrogate,
    detach_reset: bool = False,
    probe=0.0,
):
    """The official TC-LIF repository's ALIF (``MNIST/spiking_neuron/ALIF.py``), one step.

    ``params = {"c": (2,)}`` (one pair per layer); alpha = exp(-1/sigmoid(c0)),
    r = exp(-1/sigmoid(c1)). With theta[t] = v_th + beta_adapt eta[t] (official: 0.01 and
    1.8)::

        v'[t-1] = v[t-1] - theta[t-1] S[t-1]      (the soft reset)
        S'[t-1] = H(v'[t-1] - theta[t-1])         (the official "spike_lastT")
        eta[t]  = r eta[t-1] + (1 - r) S'[t-1]
        v[t]    = alpha v'[t-1] + (1 - alpha) I[t];   S[t] = H(v[t] - theta[t])

    S' compares the potential after its reset with the old threshold, so after a spike eta
    grows only if v[t-1] >= 2 theta[t-1]. The official code starts from threshold 1, here v_th + beta_adapt * 0: the first step
    differs only in H(0 - theta[-1]), which is 0 either way for v_th > 0 and carries no
    gradient (v'[-1] = 0 and theta[-1] are constants). Resets and S' are differentiable.
    """
    c = params["c"]
    alpha = jnp.exp(-1.0 / jax.nn.sigmoid(c[..., 0]))
    r = jnp.exp(-1.0 / jax.nn.sigmoid(c[..., 1]))
    s = _reset_spike(state.spike, detach_reset)
    old_threshold = adaptive_threshold(state.adaptation, v_th, beta_adapt)
    after_reset = state.potential - old_threshold * s
    adaptation = r * state.adaptation + (1.0 - r) * spike_fn(after_reset - old_threshold)
    potential = alpha * after_reset + (1.0 - alpha) * current + probe
    threshold = adaptive_threshold(adaptation, v_th, beta_adapt)
    return _fire(ALIFState, (potential, adaptation), spike_fn, potential - threshold)


def alif_official_adjoint(
    params,
    prev: ALIFState,
    state: ALIFState,
    cot: ALIFState,
    *,
    current,
    v_th: float,
    beta_adapt: float,
    spike_fn: Surrogate,
    detach_reset: bool = False,
):
    """The adjoint of ``alif_official_step``; ``current`` is the step's input I[t].

    With theta = theta[t-1], S = S[t-1], v' = v[t-1] - theta S, S' = H(v' - theta),
    g = surrogate'(v[t] - theta[t]) and g' = surrogate'(v' - theta)::

        V = cot.potential + g cot.spike;  E = cot.adaptation - beta_adapt g cot.spike
        dI = (1 - alpha) V;  V' = alpha V + g' (1 - r) E
        Theta = -g' (1 - r) E - S V'
        cot_prev = (V', r E + beta_adapt Theta, -theta V')
        d alpha = V (v' - I[t]);  d r = E (eta[t-1] - S')     (``terms``)

    The reset's term -theta V' is 0 with ``detach_reset``.
    """
    c = params["c"]
    alpha = jnp.exp(-1.0 / jax.nn.sigmoid(c[..., 0]))
    r = jnp.exp(-1.0 / jax.nn.sigmoid(c[..., 1]))
    old_threshold = adaptive_threshold(prev.adaptation, v_th, beta_adapt)
    after_reset = prev.potential - old_threshold * prev.spike
    x_prime = after_reset - old_threshold
    g = spike_fn.derivative(
        state.potential - adaptive_threshold(state.adaptation, v_th, beta_adapt)
    )
    V = cot.potential + g * cot.spike
    E = cot.adaptation - beta_adapt * g * cot.spike
    through_spike = spike_fn.derivative(x_prime) * (1.0 - r) * E
    V_after = alpha * V + through_spike
    theta = -through_spike - prev.spike * V_after
    cot_prev = ALIFState(
        V_after, r * E + beta_adapt * theta, _unless(detach_reset, -old_threshold * V_after)
    )
    terms = (V * (after_reset - current), E * (prev.adaptation - spike_fn.fire(x_prime)))
    return cot_prev, (1.0 - alpha) * V, terms


@dataclasses.dataclass(frozen=True)
class _AdaptiveBase(Neuron):
    # What both ALIFs share: the state and the adaptive threshold v_th + beta_adapt a.
    State: ClassVar[type] = ALIFState
    threshold_compartment: ClassVar[str] = "potential"

    beta_adapt: float = 1.8

    def step_kwargs(self, params):
        return super().step_kwargs(params) | {"beta_adapt": self.beta_adapt}

    def firing_threshold(self, params, fields):
        return adaptive_threshold(fields["adaptation"], self.v_th, self.beta_adapt)


@dataclasses.dataclass(frozen=True)
class ALIF(_AdaptiveBase):
    """Adaptive-threshold LIF of Bellec et al. (2018, LSNN), ``alif_step``: threshold
    v_th + beta_adapt a, a[t] = rho a[t-1] + (1 - rho) S[t-1]. Time constants in steps
    (each > 0); no learnable parameters."""

    name: ClassVar[str] = "alif"
    step_fn: ClassVar[Any] = staticmethod(alif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(alif_adjoint)

    tau_m: float = 20.0
    tau_adapt: float = 700.0

    def __post_init__(self):
        super().__post_init__()
        for field in ("tau_m", "tau_adapt"):
            if not getattr(self, field) > 0:
                raise invalid(self.name, field, getattr(self, field), "give a time constant > 0")

    def step_kwargs(self, params):
        return super().step_kwargs(params) | {"tau_m": self.tau_m, "tau_adapt": self.tau_adapt}

    def param_grads(self, params, terms):
        return {}


@dataclasses.dataclass(frozen=True)
class ALIFOfficial(_AdaptiveBase):
    """The official TC-LIF repository's ALIF (``alif_official_step``): learnable
    c = (c0, c1) per layer, membrane decay exp(-1/sigmoid(c0)), adaptation decay
    exp(-1/sigmoid(c1)), threshold v_th + beta_adapt eta (official: 0.01 + 1.8 eta;
    v_th > 0).

    The official module ignores the threshold a script passes it, so swapped into a
    preset it takes no preset setting.
    """

    name: ClassVar[str] = "alif_official"
    preset_settings: ClassVar[frozenset[str] | None] = frozenset()
    step_fn: ClassVar[Any] = staticmethod(alif_official_step)
    adjoint_fn: ClassVar[Any] = staticmethod(alif_official_adjoint)
    saves_current: ClassVar[bool] = True

    v_th: float = 0.01
    init_c: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self):
        super().__post_init__()
        if not self.v_th > 0:
            raise invalid(self.name, "v_th", self.v_th, "give a baseline threshold > 0")

    def init_params(self, num_neurons):
        return {"c": jnp.asarray(self.init_c, jnp.float32)}

    def param_grads(self, params, terms):
        # alpha = exp(-1/sigmoid(c0)): d alpha / d c0 = alpha (1 - sigmoid(c0)) / sigmoid(c0).
        c = params["c"]
        shape = c.shape[:-1]
        grads = []
        for i, term in enumerate(terms):
            sig = jax.nn.sigmoid(c[..., i])
            grads.append(_sum_to(term, shape) * jnp.exp(-1.0 / sig) * (1.0 - sig) / sig)
        return {"c": jnp.stack(grads, -1)}
