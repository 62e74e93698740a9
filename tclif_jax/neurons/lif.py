"""One-compartment leaky integrate-and-fire neurons: LIF (paper Eq. 1-3) and PLIF.

LIF has a fixed decay (official: 0.8) or a learned one, a soft or hard reset, and the
official or the paper's order of reset and leak; PLIF (official) learns one decay per
layer through a sigmoid and resets hard. Each is a pure step, its hand-written adjoint and
the ``Neuron`` type wrapping both. State fields ``(..., n)``; potentials dimensionless.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import jax
import jax.numpy as jnp

from tclif_jax.neurons.base import (
    LIFState,
    Neuron,
    ResetOrder,
    _fire,
    _logit,
    _reset_spike,
    _sum_to,
    _unless,
    check_sigmoid_value,
)
from tclif_jax.surrogate import Surrogate


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
    ``"paper"``: Eq. 1, U = beta U - v_th S + I. A hard reset (``reset="hard"``) sets U
    to 0. (``LIF`` checks both values.)
    """
    s = _reset_spike(state.spike, detach_reset)
    reset_by = state.potential * s if reset == "hard" else v_th * s
    if reset_order == "paper":
        potential = decay * state.potential - reset_by + current
    else:
        potential = decay * (state.potential - reset_by) + current
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
    hard = reset == "hard"
    reset_by = prev.potential if hard else v_th
    if reset_order == "paper":
        k, d_decay = 1.0, V * prev.potential
        cot_u = decay * V - s * V if hard else decay * V
    else:
        k, d_decay = decay, V * (prev.potential - reset_by * s)
        cot_u = decay * V * (1.0 - s) if hard else decay * V
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


@dataclasses.dataclass(frozen=True)
class LIF(Neuron):
    """LIF with a fixed decay (official: 0.8) or a learnable one (sigmoid of a per-layer
    logit; ``decay`` is then its initial value, in (0, 1))."""

    name: ClassVar[str] = "lif"
    State: ClassVar[type] = LIFState
    step_fn: ClassVar[Any] = staticmethod(lif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(lif_adjoint)

    decay: float = 0.8
    learn_decay: bool = False
    reset: Literal["soft", "hard"] = "soft"
    reset_order: ResetOrder = "official"

    def __post_init__(self):
        super().__post_init__()
        if self.learn_decay:
            check_sigmoid_value(self.name, "decay", self.decay, self.decay, "a learned decay")

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
    State: ClassVar[type] = LIFState
    step_fn: ClassVar[Any] = staticmethod(plif_step)
    adjoint_fn: ClassVar[Any] = staticmethod(plif_adjoint)

    init_w: float = -1.4

    def init_params(self, num_neurons):
        return {"w": jnp.asarray(self.init_w, jnp.float32)}

    def param_grads(self, params, terms):
        w = params["w"]
        sig = jax.nn.sigmoid(w)
        return {"w": -_sum_to(terms[0], w.shape) * sig * (1.0 - sig)}  # decay = 1 - sigmoid(w)
