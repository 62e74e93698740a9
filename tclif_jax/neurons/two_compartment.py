"""Two-compartment neurons: TC-LIF (paper Eq. 10-12) and the general form (Eq. 7-9).

A dendrite U_D and a soma U_S, coupled by (b1, b2); the soma is compared with the
threshold. TC-LIF fixes both decays at 1, constrains b1 = -sigmoid(c1) in (-1, 0) and
b2 = sigmoid(c2) in (0, 1) and resets the dendrite by gamma; the general neuron has fixed
decays (a1, a2) and unconstrained (b1, b2). Each is a pure step, its hand-written adjoint
and the ``Neuron`` type wrapping both. State fields ``(..., n)``; potentials dimensionless.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from tclif_jax.neurons.base import (
    Neuron,
    ResetOrder,
    TCLIFState,
    _fire,
    _logit,
    _reset_spike,
    _sum_to,
    _unless,
    check_sigmoid_value,
)
from tclif_jax.surrogate import Surrogate


def coupling(c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(b1, b2) = (-sigmoid(c1), sigmoid(c2)) from TC-LIF's raw parameter c[..., :2]."""
    return -jax.nn.sigmoid(c[..., 0]), jax.nn.sigmoid(c[..., 1])


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
    ``"paper"``, which is Eq. 10-11 literally. (``TCLIF`` checks the value.)
    """
    b1, b2 = coupling(params["c"])
    s = _reset_spike(state.spike, detach_reset)
    if reset_order == "paper":
        dendrite = state.dendrite + b1 * state.soma + current - gamma * s
        soma = state.soma + b2 * dendrite - v_th * s
    else:
        soma = state.soma - v_th * s
        dendrite = state.dendrite - gamma * s + b1 * soma + current
        soma = soma + b2 * dendrite
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
    if reset_order == "paper":
        reset = -gamma * D - v_th * V
        u = prev.soma
    else:
        reset = -gamma * D - v_th * U
        u = prev.soma - v_th * prev.spike
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


@dataclasses.dataclass(frozen=True)
class _TwoCompartmentBase(Neuron):
    # What TC-LIF and the generalised two-compartment neuron share: the state, and the
    # residual (both potentials; the spike is recomputed from the soma).
    State: ClassVar[type] = TCLIFState
    threshold_compartment: ClassVar[str] = "soma"
    compartments: ClassVar[tuple[str, ...]] = ("dendrite", "soma")


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
    reset_order: ResetOrder = "official"

    def __post_init__(self):
        super().__post_init__()
        b1, b2 = self.init_b
        check_sigmoid_value(self.name, "init_b", self.init_b, -b1, "-b1")
        check_sigmoid_value(self.name, "init_b", self.init_b, b2, "b2")

    def initial_c(self) -> tuple[float, float]:
        """The initial (c1, c2): ``init_c``, or the logits of (-b1, b2) from ``init_b``."""
        if self.init_c is not None:
            return self.init_c
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
        return super().step_kwargs(params) | {"decay": self.decay, "gamma": self.gamma}

    def coupling(self, params):
        return params["b"][..., 0], params["b"][..., 1]

    def param_grads(self, params, terms):
        b = params["b"]
        shape = b.shape[:-1]
        return {"b": jnp.stack([_sum_to(terms[0], shape), _sum_to(terms[1], shape)], -1)}
