"""The ``Neuron`` protocol, the registry of neuron types and the checks every setting passes.

A neuron type is a frozen, hashable dataclass (a spec can be a static argument of ``jit``)
whose fields are its settings and whose class attributes name its pure step function, its
state layout and its adjoint. Subclassing ``Neuron`` with a ``name`` registers the type in
``NEURONS``; ``make_neuron`` builds one by name. Every setting is checked once, at
construction, against its annotation (``check_setting``): a wrong type, a NaN or an
infinity, or a string outside its ``Literal`` choices is a one-line ValueError naming the
setting; a type's own range checks (thresholds in (0, 1) for sigmoids, ...) use
``invalid`` for the same message.

The states and the small helpers every family's step uses live here too. Shapes: every
state field and current is ``(..., n)``, any batch shape; potentials are dimensionless,
one step per time bin.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tclif_jax.surrogate import Surrogate, get_surrogate, is_real_number

ResetOrder = Literal["official", "paper"]
RESET_ORDERS: tuple[str, ...] = typing.get_args(ResetOrder)

# ----------------------------------------------------------------------------- states


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


# ----------------------------------------------------------------------------- step helpers


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


def _logit(p: float) -> float:
    # The raw parameter of a sigmoid-parametrised value p in (0, 1) (checked by its owner).
    return math.log(p / (1.0 - p))


# ----------------------------------------------------------------------------- validation


def invalid(neuron: str, field: str, value: Any, expected: str) -> ValueError:
    """The one-line error for a bad setting: ``field=value is not valid for neuron
    'name'; expected.`` (``expected`` says what to give)."""
    return ValueError(f"{field}={value!r} is not valid for neuron {neuron!r}; {expected}.")


def check_setting(neuron: str, field: str, value: Any, hint: Any) -> Any:
    """``value`` checked against its annotation ``hint`` and normalised (numbers as
    ``float``, sequences as tuples), or a ValueError from ``invalid``.

    ``float``: a finite real number (not a bool or a string); ``bool``: True or False;
    ``Literal[...]``: one of its values; ``tuple[X, ...]`` of fixed length: a tuple or list
    of that length, each element checked as X; ``X | None``: None or an X; ``Surrogate``:
    a surrogate name or a ``Surrogate``. Other annotations pass unchecked.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is float:
        if not is_real_number(value):
            kind = type(value).__name__
            raise invalid(neuron, field, value, f"give a finite number (float), not a {kind}")
        if not math.isfinite(value):
            raise invalid(neuron, field, value, "give a finite number (float)")
        return float(value)
    if hint is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise invalid(neuron, field, value, "give True or False (bool)")
        return bool(value)
    if origin is Literal:
        if not isinstance(value, str) or value not in args:
            raise invalid(neuron, field, value, f"choose one of: {', '.join(args)}")
        return value
    if origin is tuple and Ellipsis not in args:
        if not isinstance(value, (tuple, list)) or len(value) != len(args):
            raise invalid(neuron, field, value, f"give a tuple of {len(args)} numbers")
        return tuple(
            check_setting(neuron, f"{field}[{i}]", v, a)
            for i, (v, a) in enumerate(zip(value, args))
        )
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return check_setting(neuron, field, value, inner)
    if hint is Surrogate:
        if not isinstance(value, (str, Surrogate)):
            raise invalid(neuron, field, value, "give a surrogate name (str) or a Surrogate")
        return get_surrogate(value)
    return value


def check_sigmoid_value(neuron: str, field: str, value: Any, part=None, what: str = "") -> None:
    """Refuse the initial value of a sigmoid-parametrised parameter outside (0, 1): the
    setting ``value`` itself, or ``part`` of it (a number, named ``what``, e.g. -b1)."""
    x = value if part is None else part
    if not 0.0 < x < 1.0:
        name = f"{what} = {x:g} is" if what else "it is"
        raise invalid(neuron, field, value, f"{name} a sigmoid's value, so it must lie in (0, 1)")


@functools.cache
def _setting_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {name: hints[name] for name in cls.settings()}


# ----------------------------------------------------------------------------- the protocol

NEURONS: dict[str, type[Neuron]] = {}

# The state layout a neuron type declares (``State``) or derives from it.
_LAYOUT = ("state_fields", "saved_fields", "threshold_compartment", "compartments")


@dataclasses.dataclass(frozen=True)
class Neuron:
    """The neuron protocol: static settings (fields) plus the functions outside code needs.

    Class attributes a neuron type sets:

    * ``name``: its registry key in ``NEURONS`` (``make_neuron(name, **settings)``);
    * ``State``: its state NamedTuple (every field ``(..., n)``; the last one is ``spike``);
    * ``threshold_compartment``: the state field compared with the threshold (derived when
      the state has one field besides the spike);
    * ``compartments``: the state fields that are membrane potentials (derived:
      ``(threshold_compartment,)``);
    * ``state_fields``: the state fields a Jacobian is taken over (``state_vector``;
      derived: every field but the spike);
    * ``preset_settings``: the settings of a preset it takes over when it replaces the
      preset's neuron (``None``: every setting it has);
    * ``step_fn`` / ``adjoint_fn``: the pure functions it wraps (called with the keyword
      settings of ``step_kwargs``); ``saved_fields`` (derived: ``state_fields``) and
      ``saves_current``: the residual its adjoint reads per step (state fields, and the
      input current or not). A type without ``adjoint_fn`` gets the ``jax.vjp`` default
      below, which stores the whole state and the current.

    Every field is checked at construction against its annotation (``check_setting``).

    Methods: ``init_params``, ``init_state``, ``step``, ``potential``, ``state_vector``,
    ``threshold``, ``state_from_vector``, ``coupling``, and the adjoint's ``save``,
    ``restore``, ``adjoint`` and ``param_grads``.
    """

    name: ClassVar[str] = ""
    State: ClassVar[type | None] = None
    threshold_compartment: ClassVar[str | None] = None
    compartments: ClassVar[tuple[str, ...] | None] = None
    state_fields: ClassVar[tuple[str, ...] | None] = None
    preset_settings: ClassVar[frozenset[str] | None] = frozenset({"v_th"})
    step_fn: ClassVar[Any] = None
    adjoint_fn: ClassVar[Any] = None
    saved_fields: ClassVar[tuple[str, ...] | None] = None
    saves_current: ClassVar[bool] = False

    v_th: float = 1.0
    surrogate: Surrogate = Surrogate("triangle", 1.0)
    detach_reset: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "State" in cls.__dict__:
            _derive_layout(cls)
        if cls.__dict__.get("name"):
            if cls.State is None:
                raise TypeError(
                    f"Neuron type {cls.name!r} declares no State: set "
                    "State: ClassVar[type] = its state NamedTuple (last field 'spike')."
                )
            NEURONS[cls.name] = cls

    def __post_init__(self):
        label = type(self).name or type(self).__name__
        for field, hint in _setting_types(type(self)).items():
            value = check_setting(label, field, getattr(self, field), hint)
            object.__setattr__(self, field, value)

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
    # of this package name a hand-written adjoint and store only what it reads.

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


def _derive_layout(cls) -> None:
    # Complete the layout of a class that declares ``State``: every attribute of _LAYOUT the
    # class does not set itself follows from the State (see ``Neuron``'s docstring).
    fields = cls.State._fields
    if fields[-1] != "spike":
        raise TypeError(f"{cls.__name__}.State must end with the field 'spike', got {fields}.")
    own = {k for k in _LAYOUT if k in cls.__dict__}
    if "state_fields" not in own:
        cls.state_fields = fields[:-1]
    if "saved_fields" not in own:
        cls.saved_fields = cls.state_fields
    if "threshold_compartment" not in own:
        if len(cls.state_fields) != 1:
            raise TypeError(
                f"{cls.__name__}: the state {fields} has several potentials; set "
                "threshold_compartment: ClassVar[str] to the one compared with the threshold."
            )
        cls.threshold_compartment = cls.state_fields[0]
    if "compartments" not in own:
        cls.compartments = (cls.threshold_compartment,)


# ----------------------------------------------------------------------------- by name

# A pseudo-setting: the surrogate's width travels beside its name.
_SURROGATE_WIDTH = "surrogate_width"


def neuron_settings() -> dict[str, type]:
    """Every setting any registered neuron accepts, with its Python type for configs
    (``object`` where neuron types disagree), plus ``surrogate_width``."""
    kinds: dict[str, set] = {}
    for cls in NEURONS.values():
        for field, hint in _setting_types(cls).items():
            kinds.setdefault(field, set()).add(_config_type(hint))
    out = {k: (next(iter(v)) if len(v) == 1 else object) for k, v in sorted(kinds.items())}
    out[_SURROGATE_WIDTH] = float
    return out


def _config_type(hint) -> type:
    # The type a command-line override of this setting is parsed as.
    if hint is Surrogate:
        return str
    origin = typing.get_origin(hint)
    if origin is Literal:
        return type(typing.get_args(hint)[0])
    if origin in (tuple, list):
        return tuple
    if origin is not None:  # Optional[...] / X | None
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _config_type(args[0]) if len(args) == 1 else object
    return hint if isinstance(hint, type) else object


def make_neuron(name: str | Neuron, **settings: Any) -> Neuron:
    """Build a neuron spec by name. Every setting must be one the neuron has (a ValueError
    lists them otherwise); ``surrogate`` takes a name and ``surrogate_width`` its width
    (alone, the width of the neuron's default surrogate)."""
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
    if width is not None:
        default = cls.__dataclass_fields__["surrogate"].default
        sur = check_setting(name, "surrogate", settings.get("surrogate", default), Surrogate)
        settings["surrogate"] = dataclasses.replace(sur, width=width)
    return cls(**settings)
