"""Neuron models: pure step functions and the ``Neuron`` protocol every neuron type follows.

Every neuron is a pure function ``step(params, state, current) -> (state, spike)`` on
arrays of any batch shape ``(..., n)``, with ``params`` a dict of arrays and ``state`` a
small NamedTuple holding the membrane potentials *before* reset at step t and the spike
``S[t]``. The reset of ``S[t-1]`` is applied at the start of step t+1, which lets one state
layout serve both the paper's equations and the official code's order of operations.
Units are those of the paper: the input current and all potentials are dimensionless,
thresholds ``v_th`` in the same unit, one step per time bin.

``Neuron`` is the public protocol (a frozen, hashable dataclass, so a spec can be a static
argument of ``jit``): the step, the initial state and parameters, the potential compared
with the threshold, the compartments, the state as a vector (for Jacobians), the preset
settings a neuron takes over when swapped into a preset, and the step's adjoint that the
hand-differentiated time loops of ``tclif_jax.adjoint`` run backwards (``save``,
``restore``, ``adjoint``, ``param_grads``: written out below for every neuron here, with a
``jax.vjp`` default for a new one). Adding a neuron type is one subclass here with a
``name``; it registers itself in ``NEURONS``, ``tests/test_neuron_contract.py`` runs the
contract on it and ``tests/test_adjoint.py`` checks its adjoint against autodiff. Outside
this module nothing dispatches on neuron types.
No Flax here: modules in ``tclif_jax.layers`` hold the parameters and call these.

All steps take an optional ``probe`` (added to the potential that is compared with the
threshold, zero by default): the gradient with respect to it is the gradient with respect
to the membrane potential, used by the analyses.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from tclif_jax.surrogate import Surrogate, get_surrogate

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

RESET_ORDERS = ("official", "paper")


class TCLIFState(NamedTuple):
    """Two-compartment state, each ``(..., n)``: potentials before reset, and S[t]."""

    dendrite: jax.Array
    soma: jax.Array
    spike: jax.Array


class LIFState(NamedTuple):
    """One-compartment state, each ``(..., n)``: potential before reset, and S[t]."""

    potential: jax.Array
    spike: jax.Array


class ALIFState(NamedTuple):
    """Adaptive-threshold state, each ``(..., n)``: potential, adaptation a[t], S[t]."""

    potential: jax.Array
    adaptation: jax.Array
    spike: jax.Array


def _reset_spike(spike, detach_reset):
    # Resets are differentiable in the official code; detaching is an option.
    return jax.lax.stop_gradient(spike) if detach_reset else spike


def _sum_to(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Sum ``x (..., n)`` over its leading axes down to a parameter's ``shape`` (``()`` for
    one per layer, ``(n,)`` for one per neuron)."""
    return jnp.sum(x, axis=tuple(range(x.ndim - len(shape)))).reshape(shape)


def _unless(detach_reset: bool, x: jax.Array) -> jax.Array:
    # The adjoint that flows into S[t-1] through a reset: zero when the reset is detached.
    return jnp.zeros_like(x) if detach_reset else x


def _fire(state_type, fields, spike_fn, excess):
    """A step's result ``(state_type(*fields, spike), spike)`` with ``spike =
    spike_fn(excess)``; ``excess`` is the thresholded compartment minus the threshold."""
    spike = spike_fn(excess)
    return state_type(*fields, spike), spike


def coupling(c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(b1, b2) = (-sigmoid(c1), sigmoid(c2)) from TC-LIF's raw parameter c[..., :2]."""
    return -jax.nn.sigmoid(c[..., 0]), jax.nn.sigmoid(c[..., 1])


# ----------------------------------------------------------------------------- TC-LIF


def tclif_step(
    params,
    state: TCLIFState,
    current,
    *,
    gamma: float,
    v_th: float,
    spike_fn: Surrogate,
    reset_order: str = "official",
    detach_reset: bool = False,
    probe=0.0,
):
    """One TC-LIF step (paper Eq. 10-12), ``params = {"c": (2,) or (n, 2)}``.

    ``reset_order="official"`` (default) follows the official code: both
    compartments are reset by S[t-1] before the dendrite reads the soma, so the
    dendrite gets an extra ``+sigmoid(c1) * v_th * S[t-1]`` compared with
    ``"paper"``, which is Eq. 10-11 literally.
    """
    b1, b2 = coupling(params["c"])
    s = _reset_spike(state.spike, detach_reset)
    if reset_order == "official":
        soma = state.soma - v_th * s
        dendrite = state.dendrite - gamma * s + b1 * soma + current
        soma = soma + b2 * dendrite
    elif reset_order == "paper":
        dendrite = state.dendrite + b1 * state.soma + current - gamma * s
        soma = state.soma + b2 * dendrite - v_th * s
    else:
        raise ValueError(f"Unknown reset_order {reset_order!r}; valid: {RESET_ORDERS}.")
    soma = soma + probe
    return _fire(TCLIFState, (dendrite, soma), spike_fn, soma - v_th)


def tclif_adjoint(
    params,
    prev: TCLIFState,
    state: TCLIFState,
    cot: TCLIFState,
    *,
    gamma: float,
    v_th: float,
    spike_fn: Surrogate,
    reset_order: str = "official",
    detach_reset: bool = False,
):
    """The adjoint of ``tclif_step``: ``(cot_prev, cot_current, terms)``.

    ``prev`` and ``state`` are the states before and after the step, ``cot`` the adjoint of
    ``state`` (each field ``(..., n)``; ``cot.spike`` holds everything S[t] feeds: later
    layers, the readout, the recurrence). With g = surrogate'(v_t - v_th), in the official
    order (u = v_{t-1} - v_th S[t-1], d_t = d_{t-1} - gamma S[t-1] + b1 u + I,
    v_t = u + b2 d_t)::

        V = cot.soma + g cot.spike;  D = cot.dendrite + b2 V;  U = V + b1 D;  dI = D
        cot_prev = (D, U, -gamma D - v_th U);  db1 = D u;  db2 = V d_t

    and in the paper's (d_t = d_{t-1} + b1 v_{t-1} + I - gamma S[t-1],
    v_t = v_{t-1} + b2 d_t - v_th S[t-1]) U = V + b1 D, the spike's adjoint
    -gamma D - v_th V and db1 = D v_{t-1}. The spike's term is 0 with ``detach_reset``.
    ``terms`` = (db1, db2) per element; ``TCLIF.param_grads`` turns their sums into dc.
    """
    b1, b2 = coupling(params["c"])
    V = cot.soma + spike_fn.derivative(state.soma - v_th) * cot.spike
    D = cot.dendrite + b2 * V
    U = V + b1 * D
    if reset_order == "official":
        reset = -gamma * D - v_th * U
        u = prev.soma - v_th * prev.spike
    elif reset_order == "paper":
        reset = -gamma * D - v_th * V
        u = prev.soma
    else:
        raise ValueError(f"Unknown reset_order {reset_order!r}; valid: {RESET_ORDERS}.")
    cot_prev = TCLIFState(D, U, _unless(detach_reset, reset))
    return cot_prev, D, (D * u, V * state.dendrite)


def two_compartment_step(
    params,
    state: TCLIFState,
    current,
    *,
    decay: tuple[float, float],
    gamma: float,
    v_th: float,
    spike_fn: Surrogate,
    detach_reset: bool = False,
    probe=0.0,
):
    """Generalised two-compartment step (paper Eq. 7-9), ``params = {"b": (2,) or (n, 2)}``.

    U_D[t] = a1 U_D[t-1] + b1 U_S[t-1] + I[t] - gamma S[t-1]
    U_S[t] = a2 U_S[t-1] + b2 U_D[t] - v_th S[t-1]
    with (a1, a2) = ``decay`` fixed and (b1, b2) learnable without constraint
    (any quadrant, as in the paper's Figure 2). ``gamma = 0`` is Eq. 7-9 exactly.
    """
    a1, a2 = decay
    b1, b2 = params["b"][..., 0], params["b"][..., 1]
    s = _reset_spike(state.spike, detach_reset)
    dendrite = a1 * state.dendrite + b1 * state.soma + current - gamma * s
    soma = a2 * state.soma + b2 * dendrite - v_th * s + probe
    return _fire(TCLIFState, (dendrite, soma), spike_fn, soma - v_th)


def two_compartment_adjoint(
    params,
    prev: TCLIFState,
    state: TCLIFState,
    cot: TCLIFState,
    *,
    decay: tuple[float, float],
    gamma: float,
    v_th: float,
    spike_fn: Surrogate,
    detach_reset: bool = False,
):
    """The adjoint of ``two_compartment_step`` (arguments as ``tclif_adjoint``)::

        V = cot.soma + g cot.spike;  D = cot.dendrite + b2 V;  dI = D
        cot_prev = (a1 D, b1 D + a2 V, -gamma D - v_th V)
        db1 = D U_S[t-1];  db2 = V U_D[t]     (``terms``)

    with g = surrogate'(U_S[t] - v_th); the spike's term is 0 with ``detach_reset``.
    """
    a1, a2 = decay
    b1, b2 = params["b"][..., 0], params["b"][..., 1]
    V = cot.soma + spike_fn.derivative(state.soma - v_th) * cot.spike
    D = cot.dendrite + b2 * V
    reset = -gamma * D - v_th * V
    cot_prev = TCLIFState(a1 * D, b1 * D + a2 * V, _unless(detach_reset, reset))
    return cot_prev, D, (D * prev.soma, V * state.dendrite)


# ----------------------------------------------------------------------------- LIF family


def lif_step(
    params,
    state: LIFState,
    current,
    *,
    decay,
    v_th: float,
    spike_fn: Surrogate,
    reset: str = "soft",
    reset_order: str = "official",
    detach_reset: bool = False,
    probe=0.0,
):
    """One LIF step (paper Eq. 1-3) with decay beta (a float or array).

    ``reset_order="official"``: the reset comes before the leak, as in the
    official code (v = beta * (U - v_th S) + I for a soft reset);
    ``"paper"``: Eq. 1, U = beta U - v_th S + I. A hard reset sets U to 0.
    """
    s = _reset_spike(state.spike, detach_reset)
    if reset == "soft":
        reset_by = v_th * s
    elif reset == "hard":
        reset_by = state.potential * s
    else:
        raise ValueError(f"Unknown reset {reset!r}; valid: ('soft', 'hard').")
    if reset_order == "official":
        potential = decay * (state.potential - reset_by) + current
    elif reset_order == "paper":
        potential = decay * state.potential - reset_by + current
    else:
        raise ValueError(f"Unknown reset_order {reset_order!r}; valid: {RESET_ORDERS}.")
    potential = potential + probe
    return _fire(LIFState, (potential,), spike_fn, potential - v_th)


def lif_adjoint(
    params,
    prev: LIFState,
    state: LIFState,
    cot: LIFState,
    *,
    decay,
    v_th: float,
    spike_fn: Surrogate,
    reset: str = "soft",
    reset_order: str = "official",
    detach_reset: bool = False,
):
    """The adjoint of ``lif_step`` (arguments as ``tclif_adjoint``; ``decay`` as there).

    With g = surrogate'(U[t] - v_th), S = S[t-1], R = v_th (soft) or U[t-1] (hard) and
    k = decay (official order, U[t] = decay (U[t-1] - R S) + I) or 1 (paper order,
    U[t] = decay U[t-1] - R S + I)::

        V = cot.potential + g cot.spike;  dI = V
        cot_prev = (decay V - [hard] k S V, -k R V)
        d decay = V (U[t-1] - R S) (official) or V U[t-1] (paper)    (``terms``)

    The spike's term is 0 with ``detach_reset`` (a hard reset still scales U[t-1]).
    """
    V = cot.potential + spike_fn.derivative(state.potential - v_th) * cot.spike
    s = prev.spike
    if reset == "soft":
        reset_by, cot_u = v_th, decay * V
    elif reset == "hard":
        reset_by, cot_u = prev.potential, decay * V * (1.0 - s)
    else:
        raise ValueError(f"Unknown reset {reset!r}; valid: ('soft', 'hard').")
    if reset_order == "official":
        k, d_decay = decay, V * (prev.potential - reset_by * s)
    elif reset_order == "paper":
        k, d_decay = 1.0, V * prev.potential
        if reset == "hard":
            cot_u = decay * V - s * V
    else:
        raise ValueError(f"Unknown reset_order {reset_order!r}; valid: {RESET_ORDERS}.")
    cot_prev = LIFState(cot_u, _unless(detach_reset, -k * reset_by * V))
    return cot_prev, V, (d_decay,)


def plif_step(
    params,
    state: LIFState,
    current,
    *,
    v_th: float,
    spike_fn: Surrogate,
    detach_reset: bool = False,
    probe=0.0,
):
    """Official PLIF step: v = (1 - sigmoid(w)) v_reset + I, hard reset to 0.

    ``params = {"w": ()}`` (one per layer), initialised at -1.4.
    """
    s = _reset_spike(state.spike, detach_reset)
    decay = 1.0 - jax.nn.sigmoid(params["w"])
    potential = decay * state.potential * (1.0 - s) + current + probe
    return _fire(LIFState, (potential,), spike_fn, potential - v_th)


def plif_adjoint(
    params,
    prev: LIFState,
    state: LIFState,
    cot: LIFState,
    *,
    v_th: float,
    spike_fn: Surrogate,
    detach_reset: bool = False,
):
    """The adjoint of ``plif_step`` (decay k = 1 - sigmoid(w), S = S[t-1])::

        V = cot.potential + g cot.spike;  dI = V
        cot_prev = (k (1 - S) V, -k U[t-1] V);  dk = V U[t-1] (1 - S)   (``terms``)

    with g = surrogate'(U[t] - v_th); the spike's term is 0 with ``detach_reset``.
    """
    decay = 1.0 - jax.nn.sigmoid(params["w"])
    V = cot.potential + spike_fn.derivative(state.potential - v_th) * cot.spike
    kept = prev.potential * (1.0 - prev.spike)
    cot_prev = LIFState(
        decay * V * (1.0 - prev.spike), _unless(detach_reset, -decay * prev.potential * V)
    )
    return cot_prev, V, (V * kept,)


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
    and a soft reset. The official code learns one G per time step; G is one per neuron
    here (sequences of hundreds of steps).
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


# ----------------------------------------------------------------------------- the protocol


def _logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"A sigmoid-parametrised value must lie in (0, 1), got {p}.")
    return math.log(p / (1.0 - p))


NEURONS: dict[str, type[Neuron]] = {}


@dataclasses.dataclass(frozen=True)
class Neuron:
    """The neuron protocol: static settings (fields) plus the functions outside code needs.

    Class attributes a neuron type sets:

    * ``name``: its registry key in ``NEURONS`` (``make_neuron(name, **settings)``);
    * ``State``: its state NamedTuple (every field ``(..., n)``; the last one is the spike);
    * ``threshold_compartment``: the state field compared with the threshold;
    * ``compartments``: the state fields that are membrane potentials;
    * ``state_fields``: the state fields a Jacobian is taken over (``state_vector``);
    * ``preset_settings``: the settings of a preset it takes over when it replaces the
      preset's neuron (``None``: every setting it has);
    * ``step_fn`` / ``adjoint_fn``: the pure functions of this module it wraps (called with
      the keyword settings of ``step_kwargs``); ``saved_fields`` and ``saves_current``: the
      residual its adjoint reads per step (state fields, and the input current or not).
      A type without ``adjoint_fn`` gets the ``jax.vjp`` default below, which stores the
      whole state and the current.

    Methods: ``init_params``, ``init_state``, ``step``, ``potential``, ``state_vector``,
    ``threshold``, ``state_from_vector``, ``coupling``, and the adjoint's ``save``,
    ``restore``, ``adjoint`` and ``param_grads``.
    """

    name: ClassVar[str] = ""
    State: ClassVar[type] = LIFState
    threshold_compartment: ClassVar[str] = "potential"
    compartments: ClassVar[tuple[str, ...]] = ("potential",)
    state_fields: ClassVar[tuple[str, ...]] = ("potential",)
    preset_settings: ClassVar[frozenset[str] | None] = frozenset({"v_th"})
    step_fn: ClassVar[Any] = None
    adjoint_fn: ClassVar[Any] = None
    saved_fields: ClassVar[tuple[str, ...]] = ("potential",)
    saves_current: ClassVar[bool] = False

    v_th: float = 1.0
    surrogate: Surrogate = Surrogate("triangle", 1.0)
    detach_reset: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):
            NEURONS[cls.name] = cls

    def __post_init__(self):
        object.__setattr__(self, "surrogate", get_surrogate(self.surrogate))

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The names of this neuron type's settings (its dataclass fields)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)

    def init_params(self, num_neurons: int) -> dict[str, jax.Array]:
        """Learnable parameters of a layer of ``num_neurons`` (a dict of arrays)."""
        return {}

    def init_state(self, batch_shape: tuple[int, ...], num_neurons: int, dtype=jnp.float32):
        """All-zero state of shape ``(*batch_shape, num_neurons)`` per field."""
        z = jnp.zeros((*tuple(batch_shape), num_neurons), dtype)
        return self.State(*([z] * len(self.State._fields)))

    def step_kwargs(self, params) -> dict[str, Any]:
        """The keyword settings ``step_fn`` and ``adjoint_fn`` take (both take the same)."""
        return {"v_th": self.v_th, "spike_fn": self.surrogate, "detach_reset": self.detach_reset}

    def step(self, params, state, current, probe=0.0):
        """One step: ``(new_state, spike)``; ``current`` and the state are ``(..., n)``."""
        if self.step_fn is None:
            raise NotImplementedError(f"{type(self).__name__} sets no step_fn.")
        return type(self).step_fn(params, state, current, probe=probe, **self.step_kwargs(params))

    def potential(self, state) -> jax.Array:
        """The potential compared with the threshold (the soma for two compartments)."""
        return getattr(state, self.threshold_compartment)

    def state_vector(self, state) -> jax.Array:
        """The state fields of ``state_fields`` stacked on a new last axis ``(..., k)``."""
        return jnp.stack([getattr(state, f) for f in self.state_fields], -1)

    def firing_threshold(self, params, fields: dict[str, jax.Array]):
        """The threshold the potential is compared with, from the state ``fields`` (a dict
        of ``state_fields`` arrays): ``v_th`` here. ``params`` may be None (the initial
        threshold, for neurons that learn it)."""
        return self.v_th

    def threshold(self, vector: jax.Array, params=None) -> jax.Array:
        """The firing threshold ``(...)`` for a state vector ``(..., k)``; ``params`` as for
        ``firing_threshold``."""
        fields = dict(zip(self.state_fields, jnp.moveaxis(vector, -1, 0)))
        thr = jnp.asarray(self.firing_threshold(params, fields), vector.dtype)
        return jnp.broadcast_to(thr, vector.shape[:-1])

    def state_from_vector(self, vector: jax.Array, params=None):
        """Rebuild a state from ``state_vector`` output, the spike recomputed through the
        surrogate (so a Jacobian includes the reset's spike term); ``params`` as for
        ``threshold``."""
        fields = dict(zip(self.state_fields, jnp.moveaxis(vector, -1, 0)))
        fields["spike"] = self.surrogate(
            fields[self.threshold_compartment] - self.threshold(vector, params)
        )
        return self.State(**fields)

    def coupling(self, params) -> tuple[jax.Array, jax.Array] | None:
        """The two-compartment coupling (b1, b2) of Eq. 14-15, or None for one compartment."""
        return None

    # The adjoint (used by ``tclif_jax.adjoint``). Without ``adjoint_fn`` these store the
    # whole state and the current and differentiate ``step`` with ``jax.vjp``; the neurons
    # here name a hand-written adjoint and store only what it reads.

    def save(self, params, state, current) -> tuple[jax.Array, ...]:
        """The residual of one step that ``restore`` and ``adjoint`` need: arrays
        ``(..., n)``, the ``saved_fields`` of the state after the step, then the step's
        ``current`` when ``saves_current`` (without ``adjoint_fn``: every field and the
        current)."""
        if self.adjoint_fn is None:  # the jax.vjp default needs all of them
            return (*state, current)
        kept = tuple(getattr(state, f) for f in self.saved_fields)
        return kept + ((current,) if self.saves_current else ())

    def restore(self, params, saved):
        """The state after a step from its ``save`` output; the spike is recomputed from the
        stored potentials exactly as ``step`` computed it (same expression, the surrogate's
        H(0)). Works on any leading shape, e.g. ``(T, B, n)`` at once."""
        if self.adjoint_fn is None:
            return self.State(*saved[: len(self.State._fields)])
        fields = dict(zip(self.saved_fields, saved))
        threshold = self.firing_threshold(params, fields)
        spike = self.surrogate.fire(fields[self.threshold_compartment] - threshold)
        return self.State(**fields, spike=spike)

    def adjoint(self, params, prev, saved, cot):
        """The step's adjoint: ``(cot_prev, cot_current, terms)``.

        ``prev``: the state before the step; ``saved``: the step's ``save`` output;
        ``cot``: the adjoint of the state after the step, each field ``(..., n)``, whose
        ``spike`` holds every use of S[t] (later layers, the readout, the recurrence; the
        reset at t+1 is already in it). Returns the adjoint of ``prev`` (its ``spike``: the
        reset's and any other use of S[t-1] inside the step), of the step's input current,
        and ``terms``: a tuple of arrays the scan sums over time and hands to
        ``param_grads``. Without ``adjoint_fn``: ``jax.vjp`` of ``step``, with ``terms``
        the parameter gradient's leaves.
        """
        if self.adjoint_fn is not None:
            state = self.restore(params, saved)
            kwargs = self.step_kwargs(params)
            if self.saves_current:
                kwargs["current"] = saved[-1]
            return type(self).adjoint_fn(params, prev, state, cot, **kwargs)
        current = saved[-1]
        _, pull = jax.vjp(lambda p, st, i: self.step(p, st, i)[0], params, prev, current)
        d_params, cot_prev, cot_current = pull(cot)
        return cot_prev, cot_current, tuple(jax.tree.leaves(d_params))

    def param_grads(self, params, terms) -> dict[str, jax.Array]:
        """The gradient of ``params`` from ``adjoint``'s ``terms`` summed over time."""
        return jax.tree.unflatten(jax.tree.structure(params), list(terms))


@dataclasses.dataclass(frozen=True)
class _TwoCompartmentBase(Neuron):
    # What TC-LIF and the generalised two-compartment neuron share: the state, and the
    # residual (both potentials; the spike is recomputed from the soma).
    State: ClassVar[type] = TCLIFState
    threshold_compartment: ClassVar[str] = "soma"
    compartments: ClassVar[tuple[str, ...]] = ("dendrite", "soma")
    state_fields: ClassVar[tuple[str, ...]] = ("dendrite", "soma")
    saved_fields: ClassVar[tuple[str, ...]] = ("dendrite", "soma")


@dataclasses.dataclass(frozen=True)
class TCLIF(_TwoCompartmentBase):
    """TC-LIF: gamma, v_th, initial (b1, b2), one (c1, c2) per layer or per neuron.

    ``init_b = (b1, b2)`` with b1 in (-1, 0) and b2 in (0, 1); ``init_c`` gives
    (c1, c2) directly instead (the official recurrent S-MNIST model uses
    c = (1.5, -0.5)).
    """

    name: ClassVar[str] = "tclif"
    preset_settings: ClassVar[frozenset[str] | None] = None
    step_fn: ClassVar[Any] = staticmethod(tclif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(tclif_adjoint)

    gamma: float = 0.5
    init_b: tuple[float, float] = (-0.5, 0.5)
    init_c: tuple[float, float] | None = None
    per_neuron: bool = False
    reset_order: str = "official"

    def __post_init__(self):
        super().__post_init__()
        if self.reset_order not in RESET_ORDERS:
            raise ValueError(f"Unknown reset_order {self.reset_order!r}; valid: {RESET_ORDERS}.")
        self.initial_c()  # validates init_b

    def initial_c(self) -> tuple[float, float]:
        if self.init_c is not None:
            return tuple(float(v) for v in self.init_c)
        b1, b2 = self.init_b
        return (_logit(-b1), _logit(b2))

    def init_params(self, num_neurons):
        c = jnp.asarray(self.initial_c(), jnp.float32)
        if self.per_neuron:
            c = jnp.tile(c, (num_neurons, 1))
        return {"c": c}

    def step_kwargs(self, params):
        return super().step_kwargs(params) | {"gamma": self.gamma, "reset_order": self.reset_order}

    def coupling(self, params):
        return coupling(params["c"])

    def param_grads(self, params, terms):
        c = params["c"]
        shape = c.shape[:-1]
        s1, s2 = jax.nn.sigmoid(c[..., 0]), jax.nn.sigmoid(c[..., 1])
        d1 = -_sum_to(terms[0], shape) * s1 * (1.0 - s1)  # b1 = -sigmoid(c1)
        d2 = _sum_to(terms[1], shape) * s2 * (1.0 - s2)
        return {"c": jnp.stack([d1, d2], -1)}


@dataclasses.dataclass(frozen=True)
class TwoCompartment(_TwoCompartmentBase):
    """Generalised two-compartment neuron (Eq. 7-9): fixed (a1, a2), learnable (b1, b2)."""

    name: ClassVar[str] = "two_compartment"
    preset_settings: ClassVar[frozenset[str] | None] = frozenset({"v_th", "init_b"})
    step_fn: ClassVar[Any] = staticmethod(two_compartment_step)
    adjoint_fn: ClassVar[Any] = staticmethod(two_compartment_adjoint)

    decay: tuple[float, float] = (1.0, 1.0)
    init_b: tuple[float, float] = (-0.5, 0.5)
    gamma: float = 0.0
    per_neuron: bool = False

    def init_params(self, num_neurons):
        b = jnp.asarray(self.init_b, jnp.float32)
        if self.per_neuron:
            b = jnp.tile(b, (num_neurons, 1))
        return {"b": b}

    def step_kwargs(self, params):
        return super().step_kwargs(params) | {"decay": tuple(self.decay), "gamma": self.gamma}

    def coupling(self, params):
        return params["b"][..., 0], params["b"][..., 1]

    def param_grads(self, params, terms):
        b = params["b"]
        shape = b.shape[:-1]
        return {"b": jnp.stack([_sum_to(terms[0], shape), _sum_to(terms[1], shape)], -1)}


@dataclasses.dataclass(frozen=True)
class LIF(Neuron):
    """LIF with a fixed decay (official: 0.8) or a learnable one (sigmoid of a per-layer logit)."""

    name: ClassVar[str] = "lif"
    step_fn: ClassVar[Any] = staticmethod(lif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(lif_adjoint)

    decay: float = 0.8
    learn_decay: bool = False
    reset: str = "soft"
    reset_order: str = "official"

    def init_params(self, num_neurons):
        if not self.learn_decay:
            return {}
        return {"decay_logit": jnp.asarray(_logit(self.decay), jnp.float32)}

    def _decay(self, params):
        return jax.nn.sigmoid(params["decay_logit"]) if self.learn_decay else self.decay

    def step_kwargs(self, params):
        extra = {"decay": self._decay(params), "reset": self.reset, "reset_order": self.reset_order}
        return super().step_kwargs(params) | extra

    def adjoint(self, params, prev, saved, cot):
        cot_prev, cot_current, terms = super().adjoint(params, prev, saved, cot)
        return cot_prev, cot_current, terms if self.learn_decay else ()

    def param_grads(self, params, terms):
        if not self.learn_decay:
            return {}
        decay = self._decay(params)
        return {"decay_logit": jnp.sum(terms[0]) * decay * (1.0 - decay)}


@dataclasses.dataclass(frozen=True)
class PLIF(Neuron):
    """Parametric LIF (official): learnable per-layer w, decay 1 - sigmoid(w), hard reset."""

    name: ClassVar[str] = "plif"
    step_fn: ClassVar[Any] = staticmethod(plif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(plif_adjoint)

    init_w: float = -1.4

    def init_params(self, num_neurons):
        return {"w": jnp.asarray(self.init_w, jnp.float32)}

    def param_grads(self, params, terms):
        w = params["w"]
        sig = jax.nn.sigmoid(w)
        return {"w": -_sum_to(terms[0], w.shape) * sig * (1.0 - sig)}  # decay = 1 - sigmoid(w)


@dataclasses.dataclass(frozen=True)
class _AdaptiveBase(Neuron):
    # What both ALIFs share: the state and the adaptive threshold v_th + beta_adapt a.
    State: ClassVar[type] = ALIFState
    state_fields: ClassVar[tuple[str, ...]] = ("potential", "adaptation")
    saved_fields: ClassVar[tuple[str, ...]] = ("potential", "adaptation")

    beta_adapt: float = 1.8

    def step_kwargs(self, params):
        return super().step_kwargs(params) | {"beta_adapt": self.beta_adapt}

    def firing_threshold(self, params, fields):
        return adaptive_threshold(fields["adaptation"], self.v_th, self.beta_adapt)


@dataclasses.dataclass(frozen=True)
class ALIF(_AdaptiveBase):
    """Adaptive-threshold LIF of Bellec et al. (2018, LSNN), ``alif_step``: threshold
    v_th + beta_adapt a, a[t] = rho a[t-1] + (1 - rho) S[t-1]. Time constants in steps;
    no learnable parameters."""

    name: ClassVar[str] = "alif"
    step_fn: ClassVar[Any] = staticmethod(alif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(alif_adjoint)

    tau_m: float = 20.0
    tau_adapt: float = 700.0

    def step_kwargs(self, params):
        return super().step_kwargs(params) | {"tau_m": self.tau_m, "tau_adapt": self.tau_adapt}

    def param_grads(self, params, terms):
        return {}


@dataclasses.dataclass(frozen=True)
class ALIFOfficial(_AdaptiveBase):
    """The official TC-LIF repository's ALIF (``alif_official_step``): learnable
    c = (c0, c1) per layer, membrane decay exp(-1/sigmoid(c0)), adaptation decay
    exp(-1/sigmoid(c1)), threshold v_th + beta_adapt eta (official: 0.01 + 1.8 eta).

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
            raise ValueError(f"alif_official needs a baseline threshold v_th > 0, got {self.v_th}.")

    def init_params(self, num_neurons):
        return {"c": jnp.asarray(tuple(float(v) for v in self.init_c), jnp.float32)}

    def param_grads(self, params, terms):
        # alpha = exp(-1/sigmoid(c0)): d alpha / d c0 = alpha (1 - sigmoid(c0)) / sigmoid(c0).
        c = params["c"]
        shape = c.shape[:-1]
        grads = []
        for i, term in enumerate(terms):
            sig = jax.nn.sigmoid(c[..., i])
            grads.append(_sum_to(term, shape) * jnp.exp(-1.0 / sig) * (1.0 - sig) / sig)
        return {"c": jnp.stack(grads, -1)}


@dataclasses.dataclass(frozen=True)
class GLIF(Neuron):
    """Gated LIF (Yao et al., NeurIPS 2022; ``glif_step``), soft gates, per neuron.

    Every value is learnable per neuron through a sigmoid, so each initial value lies in
    (0, 1): ``v_th`` the threshold, ``init_tau`` the exponential decay, ``init_leak`` the
    linear leak, ``init_reset`` the soft-reset amount (None: ``v_th``, as the official
    code), ``init_conduct`` the conductance and ``init_gates`` the gates (alpha, beta,
    gamma). Defaults are the official code's (``train.py``: tau 0.25, V_th 0.5, leak
    V_th / 8, conductance 0.5; ``--gate 0.6 0.8 0.6``, which it maps to the gate values
    0.55, 0.65, 0.55). Its threshold is learned, so swapped into a preset it takes no
    preset setting.
    """

    name: ClassVar[str] = "glif"
    preset_settings: ClassVar[frozenset[str] | None] = frozenset()
    step_fn: ClassVar[Any] = staticmethod(glif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(glif_adjoint)
    saves_current: ClassVar[bool] = True

    v_th: float = 0.5
    init_tau: float = 0.25
    init_leak: float = 0.0625
    init_reset: float | None = None
    init_conduct: float = 0.5
    init_gates: tuple[float, float, float] = (0.55, 0.65, 0.55)

    def __post_init__(self):
        super().__post_init__()
        if len(self.init_gates) != 3:
            raise ValueError(f"init_gates needs (alpha, beta, gamma), got {self.init_gates}.")
        self.initial_values()  # validates: every value in (0, 1)

    def initial_values(self) -> dict[str, float]:
        """The initial value (after the sigmoid) of every entry of ``GLIF_PARAMS``."""
        a, b, g = (float(v) for v in self.init_gates)
        reset = self.v_th if self.init_reset is None else self.init_reset
        values = dict(alpha=a, beta=b, gamma=g, tau=self.init_tau, threshold=self.v_th)
        values.update(leak=self.init_leak, reset=reset, conduct=self.init_conduct)
        for key, value in values.items():
            if not 0.0 < float(value) < 1.0:
                raise ValueError(
                    f"GLIF's {key} is a sigmoid: its initial value must lie in (0, 1), got {value}."
                )
        return values

    def init_params(self, num_neurons):
        return {
            k: jnp.full((num_neurons,), _logit(float(v)), jnp.float32)
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


# ----------------------------------------------------------------------------- by name

# A pseudo-setting: the surrogate's width travels beside its name.
_SURROGATE_WIDTH = "surrogate_width"


def neuron_settings() -> dict[str, type]:
    """Every setting any registered neuron accepts, with its Python type for configs
    (``object`` where neuron types disagree), plus ``surrogate_width``."""
    kinds: dict[str, set] = {}
    for cls in NEURONS.values():
        hints = typing.get_type_hints(cls)
        for field in cls.settings():
            kinds.setdefault(field, set()).add(_config_type(hints[field]))
    out = {k: (next(iter(v)) if len(v) == 1 else object) for k, v in sorted(kinds.items())}
    out[_SURROGATE_WIDTH] = float
    return out


def _config_type(hint) -> type:
    # The type a command-line override of this setting is parsed as.
    if hint is Surrogate:
        return str
    origin = typing.get_origin(hint)
    if origin in (tuple, list):
        return tuple
    if origin is not None:  # Optional[...] / X | None
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _config_type(args[0]) if len(args) == 1 else object
    return hint if isinstance(hint, type) else object


def make_neuron(name: str | Neuron, **settings: Any) -> Neuron:
    """Build a neuron spec by name. Every setting must be one the neuron has (a ValueError
    lists them otherwise); ``surrogate`` takes a name and ``surrogate_width`` its width."""
    if isinstance(name, Neuron):
        if settings:
            raise ValueError(f"Settings {sorted(settings)} given with a built neuron {name}.")
        return name
    if name not in NEURONS:
        raise ValueError(f"Unknown neuron {name!r}; valid names are: {', '.join(NEURONS)}.")
    cls = NEURONS[name]
    settings = dict(settings)
    foreign = sorted(set(settings) - set(cls.settings()) - {_SURROGATE_WIDTH})
    if foreign:
        raise ValueError(
            f"Setting(s) {foreign} do not apply to neuron {name!r}; it accepts: "
            f"{', '.join(sorted(cls.settings() + (_SURROGATE_WIDTH,)))}."
        )
    width = settings.pop(_SURROGATE_WIDTH, None)
    if "surrogate" in settings or width is not None:
        sur = settings.pop("surrogate", "triangle")
        if isinstance(sur, Surrogate):
            settings["surrogate"] = sur if width is None else dataclasses.replace(sur, width=width)
        else:
            settings["surrogate"] = get_surrogate(sur, width)
    for key, value in settings.items():
        if isinstance(value, list):
            settings[key] = tuple(value)
    return cls(**settings)
