"""Surrogate spike functions: an exact Heaviside forward with a smooth backward.

Every spike function here maps ``x = U - V_th`` (any shape, any float dtype) to
``H(x)``, with ``H(0) = 1`` (a neuron fires when its potential reaches the
threshold). The backward pass replaces the Dirac delta ``dH/dx`` by a surrogate
derivative ``g(x)`` through ``jax.custom_vjp``.

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

__all__ = ["Surrogate", "SURROGATES", "get_surrogate", "heaviside", "spike"]


def heaviside(x: jax.Array) -> jax.Array:
    """H(x) = 1 for x >= 0, else 0, in x's dtype (no gradient rule attached)."""
    return (x >= 0).astype(x.dtype)


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
    # The official code's "gau" surrogate (after Yin et al. 2021): a central
    # Gaussian with two negative side lobes; scale 6 and height 0.15 are fixed
    # there, and so they are here.
    scale, height = 6.0, 0.15
    return (
        _gaussian(x, 0.0, lens) * (1.0 + height)
        - _gaussian(x, lens, scale * lens) * height
        - _gaussian(x, -lens, scale * lens) * height
    )


_DERIVATIVES: dict[str, tuple[Callable, float, str]] = {
    "triangle": (_triangle, 1.0, "max(0, 1 - |x|/w) / w; w = 1 is the paper's Eq. 21"),
    "sigmoid": (_sigmoid, 4.0, "k sig(kx)(1 - sig(kx)); k is the slope"),
    "fast_sigmoid": (_fast_sigmoid, 10.0, "1 / (1 + k|x|)^2 (SuperSpike); k is the slope"),
    "arctan": (_arctan, 2.0, "(a/2) / (1 + (pi a x / 2)^2); a is the slope"),
    "rectangle": (_rectangle, 1.0, "1{|x| < w/2} / w; w = 1 is the official 'rect'"),
    "exponential": (_exponential, 1.0, "exp(-|x|/w) / w; w = 1 is the official single exponential"),
    "multi_gaussian": (_multi_gaussian, 0.5, "official 'gau': lens = w, scale 6, height 0.15"),
}

SURROGATES: tuple[str, ...] = tuple(_DERIVATIVES)


@dataclasses.dataclass(frozen=True)
class Surrogate:
    """A named surrogate derivative with its width (or slope) parameter.

    Calling it on ``x`` gives the Heaviside spike with this surrogate's backward.
    """

    name: str = "triangle"
    width: float | None = None

    def __post_init__(self):
        if self.name not in _DERIVATIVES:
            raise ValueError(
                f"Unknown surrogate {self.name!r}; valid names are: {', '.join(SURROGATES)}."
            )
        if self.width is None:
            object.__setattr__(self, "width", _DERIVATIVES[self.name][1])
        if not self.width > 0:
            raise ValueError(f"Surrogate width must be > 0, got {self.width}.")

    def derivative(self, x: jax.Array) -> jax.Array:
        """The surrogate dS/dx at x (same shape and dtype as x)."""
        return _DERIVATIVES[self.name][0](x, self.width).astype(x.dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return spike(x, self)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def spike(x: jax.Array, surrogate: Surrogate) -> jax.Array:
    """Heaviside of x (fires at x >= 0) whose gradient is ``surrogate.derivative``."""
    return heaviside(x)


def _spike_fwd(x, surrogate):
    return heaviside(x), x


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
