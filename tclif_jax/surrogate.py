"""Surrogate spike functions: an exact Heaviside forward with a smooth backward.

Every spike function here maps ``x = U - V_th`` (any shape, any float dtype) to
``H(x)``, with ``H(0) = 1`` (a neuron fires when its potential reaches the
threshold, as in the paper and the official triangle) unless the surrogate says
otherwise: ``Surrogate.fires_at_zero`` is False for the two whose official forward is
``x > 0``: ``official_gau`` (the TC-LIF repository's "gau") and ``official_glif`` (the
Gated-LIF repository's rectangle, GLIF's default). The backward pass replaces the Dirac
delta ``dH/dx`` by a surrogate derivative ``g(x)`` through ``jax.custom_vjp``.

``Surrogate`` is a frozen (hashable) dataclass so that it can be a static
argument of jitted functions and a field of neuron specs.

Example::

    spike = get_surrogate("triangle", width=1.0)   # the paper's Eq. 21
    s = spike(u - v_th)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Surrogate", "SURROGATES", "get_surrogate", "heaviside", "spike"]


def heaviside(x: jax.Array, fires_at_zero: bool = True) -> jax.Array:
    """H(x) in x's dtype (no gradient rule attached): 1 for x >= 0 (``fires_at_zero``)
    or for x > 0, else 0."""
    return (x >= 0 if fires_at_zero else x > 0).astype(x.dtype)


def is_real_number(value) -> bool:
    # A plain or NumPy real number; not a bool, a string or an array.
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _gaussian(x, mu, sigma):
    return jnp.exp(-((x - mu) ** 2) / (2.0 * sigma**2)) / (math.sqrt(2.0 * math.pi) * sigma)


# Each derivative takes (x, width) and returns g(x) >= 0. ``width`` is the
# function's one shape parameter; its meaning per family is in ``_DOC``.
def _triangle(x, w):
    return jnp.maximum(0.0, 1.0 - jnp.abs(x) / w) / w


def _sigmoid(x, k):
    s = jax.nn.sigmoid(k * x)
    return k * s * (1.0 - s)


def _fast_sigmoid(x, k):
    return 1.0 / (1.0 + k * jnp.abs(x)) ** 2


def _arctan(x, alpha):
    return (alpha / 2.0) / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)


def _rectangle(x, w):
    return (jnp.abs(x) < w / 2.0).astype(x.dtype) / w


def _exponential(x, w):
    return jnp.exp(-jnp.abs(x) / w) / w


def _multi_gaussian(x, lens):
    # The multi-Gaussian of Yin et al. (2021), the shape of the official "gau": a central
    # Gaussian with two negative side lobes; scale 6 and height 0.15 are fixed there, and
    # so they are here. The official "gau" also halves it and fires at x > 0: that one is
    # ``official_gau``.
    scale, height = 6.0, 0.15
    return (
        _gaussian(x, 0.0, lens) * (1.0 + height)
        - _gaussian(x, lens, scale * lens) * height
        - _gaussian(x, -lens, scale * lens) * height
    )


def _official_gau(x, lens):
    # The official "gau" (TC-LIF repository, MNIST/surrogate.py, ActFun_adp): the
    # multi-Gaussian above times its gradient scale 0.5 (the module's ``gamma``).
    return 0.5 * _multi_gaussian(x, lens)


_DERIVATIVES: dict[str, tuple[Callable, float, str]] = {
    "triangle": (_triangle, 1.0, "max(0, 1 - |x|/w) / w; w = 1 is the paper's Eq. 21"),
    "sigmoid": (_sigmoid, 4.0, "k sig(kx)(1 - sig(kx)); k is the slope"),
    "fast_sigmoid": (_fast_sigmoid, 10.0, "1 / (1 + k|x|)^2 (SuperSpike); k is the slope"),
    "arctan": (_arctan, 2.0, "(a/2) / (1 + (pi a x / 2)^2); a is the slope"),
    "rectangle": (_rectangle, 1.0, "1{|x| < w/2} / w; w = 1 is the official 'rect'"),
    "exponential": (_exponential, 1.0, "exp(-|x|/w) / w; w = 1 is the official single exponential"),
    "multi_gaussian": (_multi_gaussian, 0.5, "multi-Gaussian: lens = w, scale 6, height 0.15"),
    "official_gau": (
        _official_gau,
        0.5,
        "official 'gau' exactly: 0.5 x multi_gaussian, fires at x > 0 (H(0) = 0)",
    ),
    # The Gated-LIF repository (layers.py, SpikeAct_extended) fires at x > 0 and passes the
    # gradient unscaled where |x| < 0.5: the rectangle of width 1, with H(0) = 0.
    "official_glif": (
        _rectangle,
        1.0,
        "official Gated-LIF exactly at w = 1: 1{|x| < w/2} / w, fires at x > 0 (H(0) = 0)",
    ),
}
# Surrogates whose forward fires at x > 0 only (H(0) = 0) unless told otherwise.
_STRICT = frozenset({"official_gau", "official_glif"})

SURROGATES: tuple[str, ...] = tuple(_DERIVATIVES)


@dataclasses.dataclass(frozen=True)
class Surrogate:
    """A named surrogate derivative with its width (or slope) parameter.

    Calling it on ``x`` gives the Heaviside spike with this surrogate's backward.
    ``fires_at_zero``: the forward's H(0) (True: fires at x >= 0); None takes the
    family's convention (False for ``official_gau`` and ``official_glif``, True for every
    other).
    """

    name: str = "triangle"
    width: float | None = None
    fires_at_zero: bool | None = None

    def __post_init__(self):
        if self.name not in _DERIVATIVES:
            raise ValueError(
                f"Unknown surrogate {self.name!r}; valid names are: {', '.join(SURROGATES)}."
            )
        width = _DERIVATIVES[self.name][1] if self.width is None else self.width
        if not is_real_number(width) or not (math.isfinite(width) and width > 0):
            raise ValueError(
                f"Surrogate {self.name!r}: width={width!r} is not valid; give a finite number > 0."
            )
        object.__setattr__(self, "width", float(width))
        fires = self.name not in _STRICT if self.fires_at_zero is None else self.fires_at_zero
        if not isinstance(fires, (bool, np.bool_)):
            raise ValueError(
                f"Surrogate {self.name!r}: fires_at_zero={fires!r} is not valid; give True, "
                "False or None (the family's convention)."
            )
        object.__setattr__(self, "fires_at_zero", bool(fires))

    def derivative(self, x: jax.Array) -> jax.Array:
        """The surrogate dS/dx at x (same shape and dtype as x)."""
        return _DERIVATIVES[self.name][0](x, self.width).astype(x.dtype)

    def fire(self, x: jax.Array) -> jax.Array:
        """The forward alone: H(x) with this surrogate's H(0), no gradient rule."""
        return heaviside(x, self.fires_at_zero)

    def __call__(self, x: jax.Array) -> jax.Array:
        return spike(x, self)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def spike(x: jax.Array, surrogate: Surrogate) -> jax.Array:
    """Heaviside of x (H(0) per ``surrogate.fires_at_zero``) whose gradient is
    ``surrogate.derivative``."""
    return surrogate.fire(x)


def _spike_fwd(x, surrogate):
    return surrogate.fire(x), x


def _spike_bwd(surrogate, x, g):
    return (g * surrogate.derivative(x),)


spike.defvjp(_spike_fwd, _spike_bwd)


def get_surrogate(name: str | Surrogate = "triangle", width: float | None = None) -> Surrogate:
    """Look a surrogate up by name (as configs give it); an unknown name lists the valid ones."""
    if isinstance(name, Surrogate):
        return name
    return Surrogate(name, width)


def describe() -> str:
    """One line per surrogate: its name, default width and closed form."""
    return "\n".join(f"{n:15s} width={d:<5g} {doc}" for n, (_, d, doc) in _DERIVATIVES.items())
