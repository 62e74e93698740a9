"""Neuron models as pure step functions.

Every neuron is a pure function ``step(params, state, current) -> (state, spike)``
on arrays of any batch shape ``(..., n)``, with ``params`` a dict of arrays and
``state`` a small NamedTuple holding the membrane potentials *before* reset at
step t and the spike ``S[t]``. The reset of ``S[t-1]`` is applied at the start
of step t+1, which lets one state layout serve both the paper's equations and
the official code's order of operations. Units are those of the paper: the
input current and all potentials are dimensionless, thresholds ``v_th`` in the
same unit, one step per time bin.

The frozen dataclasses (``TCLIF``, ``LIF``, ...) bind the static settings
(threshold, surrogate, reset order) and expose ``init_params``, ``init_state``
and ``step``; they are hashable so they can be static arguments of ``jit``.
No Flax here: modules in ``tclif_jax.layers`` hold the parameters and call these.

All steps take an optional ``probe`` (added to the potential that is compared
with the threshold, zero by default): the gradient with respect to it is the
gradient with respect to the membrane potential, used by the analyses.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from tclif_jax.surrogate import Surrogate, get_surrogate

__all__ = [
    "TCLIFState", "LIFState", "ALIFState",
    "tclif_step", "two_compartment_step", "lif_step", "plif_step", "alif_step",
    "TCLIF", "TwoCompartment", "LIF", "PLIF", "ALIF",
    "NEURONS", "make_neuron", "coupling",
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


def coupling(c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(b1, b2) = (-sigmoid(c1), sigmoid(c2)) from TC-LIF's raw parameter c[..., :2]."""
    return -jax.nn.sigmoid(c[..., 0]), jax.nn.sigmoid(c[..., 1])


# ----------------------------------------------------------------------------- TC-LIF


def tclif_step(params, state: TCLIFState, current, *, gamma: float, v_th: float,
               spike_fn: Surrogate, reset_order: str = "official",
               detach_reset: bool = False, probe=0.0):
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
    spike = spike_fn(soma - v_th)
    return TCLIFState(dendrite, soma, spike), spike


def two_compartment_step(params, state: TCLIFState, current, *, decay: tuple[float, float],
                         gamma: float, v_th: float, spike_fn: Surrogate,
                         detach_reset: bool = False, probe=0.0):
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
    spike = spike_fn(soma - v_th)
    return TCLIFState(dendrite, soma, spike), spike


# ----------------------------------------------------------------------------- LIF family


def lif_step(params, state: LIFState, current, *, decay, v_th: float, spike_fn: Surrogate,
             reset: str = "soft", reset_order: str = "official", detach_reset: bool = False,
             probe=0.0):
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
    spike = spike_fn(potential - v_th)
    return LIFState(potential, spike), spike


def plif_step(params, state: LIFState, current, *, v_th: float, spike_fn: Surrogate,
              detach_reset: bool = False, probe=0.0):
    """Official PLIF step: v = (1 - sigmoid(w)) v_reset + I, hard reset to 0.

    ``params = {"w": ()}`` (one per layer), initialised at -1.4.
    """
    s = _reset_spike(state.spike, detach_reset)
    decay = 1.0 - jax.nn.sigmoid(params["w"])
    potential = decay * state.potential * (1.0 - s) + current + probe
    spike = spike_fn(potential - v_th)
    return LIFState(potential, spike), spike


def alif_step(params, state: ALIFState, current, *, tau_m: float, tau_adapt: float,
              beta_adapt: float, v_th: float, spike_fn: Surrogate,
              detach_reset: bool = False, probe=0.0):
    """Adaptive LIF in Bellec et al.'s (2018) LSNN form.

    a[t] = rho a[t-1] + S[t-1];  A[t] = v_th + beta_adapt a[t]
    U[t] = alpha U[t-1] + I[t] - A[t-1] S[t-1];  S[t] = H(U[t] - A[t])
    with alpha = exp(-1/tau_m) and rho = exp(-1/tau_adapt), tau in steps.
    With a differentiable reset the term -A[t-1] dS/dU grows with the threshold and the
    gradient explodes over long sequences (784-step S-MNIST); Bellec et al. stop it, and
    ``detach_reset=True`` does the same.
    """
    alpha = math.exp(-1.0 / tau_m)
    rho = math.exp(-1.0 / tau_adapt)
    s = _reset_spike(state.spike, detach_reset)
    old_threshold = v_th + beta_adapt * state.adaptation
    adaptation = rho * state.adaptation + state.spike
    potential = alpha * state.potential + current - old_threshold * s + probe
    spike = spike_fn(potential - (v_th + beta_adapt * adaptation))
    return ALIFState(potential, adaptation, spike), spike


# ----------------------------------------------------------------------------- specs


def _logit(p: float) -> float:
    if not 0.0 < p < 1.0:
        raise ValueError(f"A sigmoid-parametrised value must lie in (0, 1), got {p}.")
    return math.log(p / (1.0 - p))


def _zeros_state(cls, batch_shape, n, dtype):
    z = jnp.zeros((*batch_shape, n), dtype)
    return cls(*([z] * len(cls._fields)))


@dataclasses.dataclass(frozen=True)
class _Neuron:
    """Common static settings: threshold, surrogate and whether resets are detached."""

    v_th: float = 1.0
    surrogate: Surrogate = Surrogate("triangle", 1.0)
    detach_reset: bool = False

    state_type: Any = dataclasses.field(default=LIFState, init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "surrogate", get_surrogate(self.surrogate))

    def init_params(self, num_neurons: int) -> dict[str, jax.Array]:
        return {}

    def init_state(self, batch_shape: tuple[int, ...], num_neurons: int,
                   dtype=jnp.float32):
        """All-zero state of shape ``(*batch_shape, num_neurons)`` per field."""
        return _zeros_state(self.state_type, tuple(batch_shape), num_neurons, dtype)

    @staticmethod
    def potential(state) -> jax.Array:
        """The potential compared with the threshold (the soma for two compartments)."""
        return state.soma if isinstance(state, TCLIFState) else state.potential


@dataclasses.dataclass(frozen=True)
class TCLIF(_Neuron):
    """TC-LIF: gamma, v_th, initial (b1, b2), one (c1, c2) per layer or per neuron.

    ``init_b = (b1, b2)`` with b1 in (-1, 0) and b2 in (0, 1); ``init_c`` gives
    (c1, c2) directly instead (the official recurrent S-MNIST model uses
    c = (1.5, -0.5)).
    """

    gamma: float = 0.5
    init_b: tuple[float, float] = (-0.5, 0.5)
    init_c: tuple[float, float] | None = None
    per_neuron: bool = False
    reset_order: str = "official"

    state_type: Any = dataclasses.field(default=TCLIFState, init=False, repr=False)

    def __post_init__(self):
        super().__post_init__()
        if self.reset_order not in RESET_ORDERS:
            raise ValueError(f"Unknown reset_order {self.reset_order!r}; valid: {RESET_ORDERS}.")

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

    def step(self, params, state, current, probe=0.0):
        return tclif_step(params, state, current, gamma=self.gamma, v_th=self.v_th,
                          spike_fn=self.surrogate, reset_order=self.reset_order,
                          detach_reset=self.detach_reset, probe=probe)


@dataclasses.dataclass(frozen=True)
class TwoCompartment(_Neuron):
    """Generalised two-compartment neuron (Eq. 7-9): fixed (a1, a2), learnable (b1, b2)."""

    decay: tuple[float, float] = (1.0, 1.0)
    init_b: tuple[float, float] = (-0.5, 0.5)
    gamma: float = 0.0
    per_neuron: bool = False

    state_type: Any = dataclasses.field(default=TCLIFState, init=False, repr=False)

    def init_params(self, num_neurons):
        b = jnp.asarray(self.init_b, jnp.float32)
        if self.per_neuron:
            b = jnp.tile(b, (num_neurons, 1))
        return {"b": b}

    def step(self, params, state, current, probe=0.0):
        return two_compartment_step(params, state, current, decay=tuple(self.decay),
                                    gamma=self.gamma, v_th=self.v_th, spike_fn=self.surrogate,
                                    detach_reset=self.detach_reset, probe=probe)


@dataclasses.dataclass(frozen=True)
class LIF(_Neuron):
    """LIF with a fixed decay (official: 0.8) or a learnable one (sigmoid of a per-layer logit)."""

    decay: float = 0.8
    learn_decay: bool = False
    reset: str = "soft"
    reset_order: str = "official"

    def init_params(self, num_neurons):
        return {"decay_logit": jnp.asarray(_logit(self.decay), jnp.float32)} if self.learn_decay else {}

    def step(self, params, state, current, probe=0.0):
        decay = jax.nn.sigmoid(params["decay_logit"]) if self.learn_decay else self.decay
        return lif_step(params, state, current, decay=decay, v_th=self.v_th,
                        spike_fn=self.surrogate, reset=self.reset, reset_order=self.reset_order,
                        detach_reset=self.detach_reset, probe=probe)


@dataclasses.dataclass(frozen=True)
class PLIF(_Neuron):
    """Parametric LIF (official): learnable per-layer w, decay 1 - sigmoid(w), hard reset."""

    init_w: float = -1.4

    def init_params(self, num_neurons):
        return {"w": jnp.asarray(self.init_w, jnp.float32)}

    def step(self, params, state, current, probe=0.0):
        return plif_step(params, state, current, v_th=self.v_th, spike_fn=self.surrogate,
                         detach_reset=self.detach_reset, probe=probe)


@dataclasses.dataclass(frozen=True)
class ALIF(_Neuron):
    """Adaptive-threshold LIF (LSNN). Time constants in steps; no learnable parameters."""

    tau_m: float = 20.0
    tau_adapt: float = 700.0
    beta_adapt: float = 1.8

    state_type: Any = dataclasses.field(default=ALIFState, init=False, repr=False)

    def step(self, params, state, current, probe=0.0):
        return alif_step(params, state, current, tau_m=self.tau_m, tau_adapt=self.tau_adapt,
                         beta_adapt=self.beta_adapt, v_th=self.v_th, spike_fn=self.surrogate,
                         detach_reset=self.detach_reset, probe=probe)


NEURONS: dict[str, type[_Neuron]] = {
    "tclif": TCLIF,
    "two_compartment": TwoCompartment,
    "lif": LIF,
    "plif": PLIF,
    "alif": ALIF,
}


def make_neuron(name: str, **settings) -> _Neuron:
    """Build a neuron spec by name; settings the neuron does not have are ignored.

    Ignoring lets one preset's settings (gamma, init_b, ...) travel with a swap
    to another neuron type (``neuron="lif"``); unknown *names* are an error.
    """
    if isinstance(name, _Neuron):
        return name
    if name not in NEURONS:
        raise ValueError(f"Unknown neuron {name!r}; valid names are: {', '.join(NEURONS)}.")
    cls = NEURONS[name]
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    settings = dict(settings)
    width = settings.pop("surrogate_width", None)
    if "surrogate" in settings or width is not None:
        sur = settings.pop("surrogate", "triangle")
        settings["surrogate"] = sur if isinstance(sur, Surrogate) else get_surrogate(sur, width)
    return cls(**{k: v for k, v in settings.items() if k in fields})
