"""How a network is executed, apart from what it is: ``Execution`` and the matmul policy.

A ``NetworkConfig`` (``tclif_jax.config``) says what the network computes. An
``Execution`` says how: the time-loop strategy, the backward pass, rematerialisation and
the precision of the products. It is passed beside the network, as diffrax passes
``adjoint=`` beside the model: to ``models.apply``, to ``SpikingNetwork(...,
execution=...)`` and to the train step. A run may resume under another ``Execution``; it
may not under another ``NetworkConfig``.

* ``strategy``: ``"layerwise"`` (one loop per layer, feed-forward products hoisted),
  ``"fused"`` (one loop stepping every layer) or ``"auto"`` (``AUTO_STRATEGY`` per
  backend). Both compute the same function (tested to 1e-5, loss and gradients).
* ``backward``: ``"auto"`` (the hand-written adjoints of ``tclif_jax.adjoint``) or
  ``"autodiff"`` (JAX's autodiff through ``lax.scan``, the reference).
* ``remat_chunk``: if > 0, residual memory ~ T / chunk + chunk steps instead of T.
* ``matmul_dtype``: ``"float32"`` or ``"bfloat16"`` (bf16 operands, f32 accumulation;
  spikes are exact in bf16; neuron state, residuals and master weights stay f32).
* ``matmul_precision``: precision of f32 products; ``"highest"`` is full f32, as the
  official code gets from torch; ``"default"`` lets a GPU use TF32.
* ``spike_products``: the products whose left operand is a layer's spikes (a hidden
  layer's input, a recurrent term; forward and weight gradient). ``"auto"``: the native
  event kernel (``tclif_jax.event_kernel.spike_matmul``), which reads only the nonzero
  spikes, wherever the spikes of that product are at most ``SPIKE_DENSITY_LIMITS``
  nonzero (decided per product and step, on the data), and the dense product above it;
  ``"events"``: the kernel at any density; ``"dense"``: XLA's dense product always. The
  kernel runs on CPU under the float32 policy at the highest precision (the default)
  where it is built; elsewhere all three are the dense product. They differ only in
  float32 summation order.

Example::

    ex = Execution(strategy="layerwise", remat_chunk=112)
    logits, aux = apply(config, params, x, execution=ex)
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from tclif_jax import event_kernel

__all__ = [
    "Execution",
    "MatmulPolicy",
    "AUTO_STRATEGY",
    "STRATEGIES",
    "BACKWARDS",
    "MATMUL_DTYPES",
    "MATMUL_PRECISIONS",
    "SPIKE_PRODUCTS",
    "SPIKE_DENSITY_LIMITS",
    "EXECUTION_FIELDS",
    "DEFAULT_EXECUTION",
]

Strategy = Literal["auto", "layerwise", "fused"]
Backward = Literal["auto", "autodiff"]
MatmulDtype = Literal["float32", "bfloat16"]
MatmulPrecision = Literal["highest", "high", "default"]
SpikeProducts = Literal["auto", "dense", "events"]

STRATEGIES: tuple[str, ...] = typing.get_args(Strategy)
BACKWARDS: tuple[str, ...] = typing.get_args(Backward)
MATMUL_PRECISIONS: tuple[str, ...] = typing.get_args(MatmulPrecision)
SPIKE_PRODUCTS: tuple[str, ...] = typing.get_args(SpikeProducts)
MATMUL_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# What "auto" means per backend. CPU: fused is faster in every benchmarks/RESULTS.md
# table. GPU/TPU: layerwise, whose hoisted input projections are large matmuls; not yet
# measured on a device.
AUTO_STRATEGY = {"cpu": "fused", "gpu": "layerwise", "tpu": "layerwise"}

# spike_products="auto" uses the event kernel for a product whose spikes are at most this
# fraction nonzero, per kind of product. Measured on the 2-core CPU of benchmarks/RESULTS.md
# ("Products of spikes inside the time loop", benchmarks/spike_products.py; B 256, 128 x
# 128 per step): the kernel's forward beat the dense product up to about 25-30% density,
# its weight gradient (a scatter into the rows of dW) up to about 13-15%.
SPIKE_DENSITY_LIMITS = {"forward": 0.25, "weight_grad": 0.12}


@dataclasses.dataclass(frozen=True)
class Execution:
    """How the network runs: loop strategy, backward pass, remat and product precision.

    Every choice is validated here, once, at construction (a ValueError naming the field
    and the valid values). None of them changes what the network computes beyond float
    rounding, except ``matmul_dtype="bfloat16"`` (bf16 rounding of the operands).
    """

    strategy: Strategy = "auto"
    backward: Backward = "auto"
    remat_chunk: int = 0
    matmul_dtype: MatmulDtype = "float32"
    matmul_precision: MatmulPrecision = "highest"
    spike_products: SpikeProducts = "auto"

    def __post_init__(self):
        hints = typing.get_type_hints(Execution)
        for field in dataclasses.fields(self):
            value, hint = getattr(self, field.name), hints[field.name]
            if typing.get_origin(hint) is Literal:
                valid = typing.get_args(hint)
                if value not in valid:
                    raise ValueError(
                        f"{field.name}={value!r} is not valid; choose one of: {', '.join(valid)}."
                    )
        chunk = self.remat_chunk
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 0:
            raise ValueError(f"remat_chunk={chunk!r} must be an integer >= 0 (0 = off).")
        object.__setattr__(self, "remat_chunk", int(chunk))

    def replace(self, **changes) -> Execution:
        """A validated copy with ``changes``; an unknown name is a ValueError."""
        unknown = sorted(set(changes) - set(EXECUTION_FIELDS))
        if unknown:
            raise ValueError(
                f"Unknown execution setting(s) {unknown}; valid: {', '.join(EXECUTION_FIELDS)}."
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Execution:
        """From a mapping (a config section); None values keep the defaults."""
        return cls().replace(**{k: v for k, v in (values or {}).items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved_strategy(self, backend: str | None = None) -> str:
        """The concrete strategy on ``backend`` (default: JAX's default backend)."""
        if self.strategy != "auto":
            return self.strategy
        return AUTO_STRATEGY.get(backend or jax.default_backend(), "layerwise")

    @property
    def matmul(self) -> MatmulPolicy:
        """The product policy of this execution."""
        return MatmulPolicy(self.matmul_dtype, self.matmul_precision, self.spike_products)


EXECUTION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Execution))
# The default, as a value for argument defaults.
DEFAULT_EXECUTION = Execution()


# ----------------------------------------------------------------------------- matmuls


@dataclasses.dataclass(frozen=True)
class MatmulPolicy:
    """How every product of the network is computed: operand dtype, f32 precision, and
    the products of spikes (``Execution``'s fields of the same meaning)."""

    dtype: str
    precision: str
    spike_products: str

    @property
    def lax_precision(self):
        return jax.lax.Precision[self.precision.upper()]

    @property
    def lowp(self) -> bool:
        return MATMUL_DTYPES[self.dtype] != jnp.float32

    def __call__(self, x, w):
        """``x @ w`` under this policy (the result is always f32)."""
        if not self.lowp:
            return jnp.matmul(x, w, precision=self.lax_precision)
        return _lowp_matmul(x, w)

    def grad_x(self, g, w):
        """``g @ w.T``, the adjoint of ``x`` in ``x @ w``, under this policy (f32)."""
        if not self.lowp:
            return jnp.matmul(g, w.T, precision=self.lax_precision)
        return _lowp_dot(g, w.T)

    def grad_w(self, x, g):
        """``x^T g`` summed over every leading axis (``x (..., i)``, ``g (..., o)``): the
        adjoint of ``w`` in ``x @ w``, under this policy (f32)."""
        x2, g2 = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
        if not self.lowp:
            return jnp.matmul(x2.T, g2, precision=self.lax_precision)
        return _lowp_dot(x2.T, g2)

    def spikes(self, s, w):
        """``s @ w`` where ``s (..., F)`` are spikes, mostly zeros: the event kernel or the
        dense product, as ``spike_products`` says (f32)."""
        kernel = self._spike_kernel()
        if kernel is None:
            return self(s, w)
        s2 = s.reshape(-1, s.shape[-1])
        out = _by_density(
            self.spike_products, "forward", s2, kernel.spike_matmul, self.__call__, s2, w
        )
        return out.reshape(*s.shape[:-1], w.shape[-1])

    def spikes_grad_w(self, s, g, acc=None):
        """``acc + s^T g`` summed over every leading axis (``s (..., F)`` spikes, ``g (...,
        n)``): the kernel's adjoint in ``s @ w``, as ``spikes`` computes it (f32)."""
        kernel = self._spike_kernel()
        if kernel is None:
            dw = self.grad_w(s, g)
            return dw if acc is None else acc + dw
        s2, g2 = s.reshape(-1, s.shape[-1]), g.reshape(-1, g.shape[-1])
        acc = jnp.zeros((s2.shape[1], g2.shape[1]), jnp.float32) if acc is None else acc

        def dense(s2, g2, acc):
            return acc + self.grad_w(s2, g2)

        sparse = kernel.spike_matmul_transpose
        return _by_density(self.spike_products, "weight_grad", s2, sparse, dense, s2, g2, acc)

    def _spike_kernel(self):
        """``tclif_jax.event_kernel`` when spike products may use it, else None."""
        # The kernels sum in float32; their fallback off the CPU is the dense product at
        # the highest precision, so they stand in only for that policy.
        if self.spike_products == "dense" or self.lowp or self.precision != "highest":
            return None
        return event_kernel if event_kernel.available() else None


def _by_density(mode: str, product: str, spikes, sparse, dense, *operands):
    """``sparse(*operands)`` if ``mode`` is ``"events"``; for ``"auto"`` a ``lax.cond``
    that takes ``sparse`` when at most ``SPIKE_DENSITY_LIMITS[product]`` of ``spikes`` is
    nonzero, else ``dense``."""
    if mode == "events":
        return sparse(*operands)
    limit = int(SPIKE_DENSITY_LIMITS[product] * spikes.size)
    return jax.lax.cond(jnp.count_nonzero(spikes) <= limit, sparse, dense, *operands)


def _lowp_dot(a, b):
    # bf16 operands, f32 accumulation and result.
    return jnp.matmul(
        a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), preferred_element_type=jnp.float32
    )


@jax.custom_vjp
def _lowp_matmul(x, w):
    """``x @ w`` with bf16 operands and an f32 result, differentiable with the same policy.

    Its backward saves the operands as given (f32) and casts again, instead of letting
    autodiff save the bf16 copies: inside a scan those are per-step residuals, and XLA:CPU
    updates a stacked bf16 buffer out of place (a full copy per step).
    """
    return _lowp_dot(x, w)


def _lowp_matmul_fwd(x, w):
    return _lowp_matmul(x, w), (x, w)


def _lowp_matmul_bwd(res, g):
    x, w = res
    dx = _lowp_dot(g, w.T)
    dw = _lowp_dot(x.reshape(-1, x.shape[-1]).T, g.reshape(-1, g.shape[-1]))
    return dx.astype(x.dtype), dw.astype(w.dtype)


_lowp_matmul.defvjp(_lowp_matmul_fwd, _lowp_matmul_bwd)
