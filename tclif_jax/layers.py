"""Spiking layers: Flax NNX modules that hold parameters, and the pure scans they call.

Array layout inside this module is *time-major*: ``(T, B, features)``. The
public model API (``tclif_jax.models``) is batch-major and transposes once.

Two execution strategies compute the same function (tested to 1e-5, loss and gradients):

* ``"layerwise"``: one ``lax.scan`` per layer. The feed-forward projection of a
  layer is hoisted out of the scan as one ``(T*B, in) @ (in, n)`` matmul; the
  recurrent matmul is the only one left inside the time loop.
* ``"fused"``: one scan over time that steps every layer. For stacks of TC-LIF
  layers (official reset order, no probes/records/dropout) it runs a skewed
  "wavefront" scan with a hand-written backward (see "fast fused path" below):
  scan step k advances layer l at time k - l, so all layers' neuron updates form
  one elementwise update on the packed state and the backward loop carries only
  what it needs. Anything else (other neurons, probes, records, dropout, remat)
  runs the plain autodiff scan that steps the layers in turn.
* ``"auto"``: a per-backend choice (``AUTO_STRATEGY``): ``fused`` on CPU, the faster in
  every ``benchmarks/RESULTS.md`` table; ``layerwise`` on GPU/TPU, not yet measured.

Both reduce the last layer's spikes to their sum over time, so the readout is a
single matmul after the loop: ``sum_t (s_t W + b) = (sum_t s_t) W + T b``.

``matmul_dtype="bfloat16"``: matmul operands in bf16 with f32 accumulation (spikes
are exact in bf16); neuron state, residuals, gradients and master weights stay f32.
``remat_chunk > 0``: the scan runs over chunks of that many steps with
``jax.checkpoint`` on each chunk (activation memory ~ T / chunk + chunk steps).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tclif_jax.neurons import _Neuron

__all__ = [
    "torch_uniform_init", "TorchLinear", "SpikingDense", "Readout",
    "LayerSpec", "NetworkSpec", "run_network", "resolve_strategy", "STRATEGIES", "READOUTS",
]

STRATEGIES = ("auto", "layerwise", "fused")
READOUTS = ("sum", "mean", "last")
MATMUL_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def torch_uniform_init(fan_in: int):
    """PyTorch's default nn.Linear init for weight and bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def TorchLinear(in_features: int, out_features: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """``nnx.Linear`` with PyTorch's default init; kernel is ``(in, out)``."""
    init = torch_uniform_init(in_features)
    return nnx.Linear(in_features, out_features, kernel_init=init, bias_init=init, rngs=rngs)


class SpikingDense(nnx.Module):
    """Linear(in, n) + neuron, optionally recurrent (Linear(n, n) on its own S[t-1]).

    Parameters: ``dense`` (kernel (in, n), bias (n,)), optional ``recurrent``
    (kernel (n, n), bias (n,)), and ``neuron_params`` (e.g. TC-LIF's c, (2,)).
    """

    def __init__(self, in_features: int, out_features: int, neuron: _Neuron, *,
                 recurrent: bool = False, dropout: float = 0.0, rngs: nnx.Rngs):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.in_features, self.out_features = in_features, out_features
        self.neuron = neuron
        self.dropout = dropout
        self.dense = TorchLinear(in_features, out_features, rngs=rngs)
        self.recurrent = TorchLinear(out_features, out_features, rngs=rngs) if recurrent else None
        self.neuron_params = nnx.Dict(
            {k: nnx.Param(v) for k, v in neuron.init_params(out_features).items()})

    @property
    def spec(self) -> "LayerSpec":
        return LayerSpec(self.neuron, self.recurrent is not None, self.dropout)

    def arrays(self) -> dict[str, Any]:
        """The layer's parameters as a plain pytree for ``run_network``."""
        p = {"w_in": self.dense.kernel[...], "b_in": self.dense.bias[...],
             "neuron": {k: v[...] for k, v in self.neuron_params.items()}}
        if self.recurrent is not None:
            p["w_rec"], p["b_rec"] = self.recurrent.kernel[...], self.recurrent.bias[...]
        return p


class Readout(nnx.Module):
    """Linear(H, classes) applied at every step; logits pooled over time by ``mode``."""

    def __init__(self, in_features: int, num_classes: int, *, mode: str = "sum", rngs: nnx.Rngs):
        if mode not in READOUTS:
            raise ValueError(f"Unknown readout {mode!r}; valid: {READOUTS}.")
        self.mode = mode
        self.linear = TorchLinear(in_features, num_classes, rngs=rngs)

    def arrays(self):
        return {"w": self.linear.kernel[...], "b": self.linear.bias[...]}


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    neuron: _Neuron
    recurrent: bool = False
    dropout: float = 0.0


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """Everything static about a network: hashable, so it can be a jit static arg."""

    layers: tuple[LayerSpec, ...]
    readout: str = "sum"
    strategy: str = "layerwise"
    matmul_dtype: str = "float32"
    remat_chunk: int = 0


# Which concrete strategy "auto" means on each backend. CPU: measured, fused is faster in
# every benchmarks/RESULTS.md table. GPU/TPU: not measured yet (no device was lent);
# layerwise, whose hoisted input projections are large matmuls, until gpu_suite.sh says.
AUTO_STRATEGY = {"cpu": "fused", "gpu": "layerwise", "tpu": "layerwise"}


def resolve_strategy(spec: "NetworkSpec", backend: str | None = None) -> str:
    """The strategy ``run_network`` uses for ``spec`` on ``backend`` (default: JAX's default
    backend): ``spec.strategy`` itself, or for ``"auto"`` the backend's entry of
    ``AUTO_STRATEGY`` (layerwise where a backend is not listed)."""
    if spec.strategy != "auto":
        return spec.strategy
    return AUTO_STRATEGY.get(backend or jax.default_backend(), "layerwise")


# ----------------------------------------------------------------------------- pure core


def _matmul(x, w, dtype):
    # bf16 operands with f32 accumulation; spikes (0/1) are exact in bf16.
    if dtype == jnp.float32:
        return x @ w
    return _lowp_matmul(x, w)


@jax.custom_vjp
def _lowp_matmul(x, w):
    """``x @ w`` with bf16 operands and an f32 result, differentiable with the same policy.

    Its backward saves the operands as given (f32) and casts again, instead of letting
    autodiff save the bf16 copies: inside a scan those are per-step residuals, and XLA:CPU
    updates a stacked bf16 buffer out of place (a full copy per step). The gradients are
    computed with bf16 operands and f32 accumulation and returned in the operands' dtypes.
    """
    return jnp.matmul(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16),
                      preferred_element_type=jnp.float32)


def _lowp_matmul_fwd(x, w):
    return _lowp_matmul(x, w), (x, w)


def _lowp_matmul_bwd(res, g):
    x, w = res
    gq = g.astype(jnp.bfloat16)
    dx = jnp.matmul(gq, w.astype(jnp.bfloat16).T, preferred_element_type=jnp.float32)
    x2 = x.reshape(-1, x.shape[-1]).astype(jnp.bfloat16)
    dw = jnp.matmul(x2.T, gq.reshape(-1, gq.shape[-1]), preferred_element_type=jnp.float32)
    return dx.astype(x.dtype), dw.astype(w.dtype)


_lowp_matmul.defvjp(_lowp_matmul_fwd, _lowp_matmul_bwd)


def _scan(body, carry, xs, length: int, remat_chunk: int):
    """``lax.scan``, or with ``remat_chunk > 0`` a scan over chunks whose inner scan is
    rematerialised (``jax.checkpoint``): activation memory ~ T/chunk + chunk steps."""
    if not remat_chunk or remat_chunk >= length:
        return jax.lax.scan(body, carry, xs, length=length)
    if length % remat_chunk:
        divisors = [d for d in range(1, length + 1) if length % d == 0 and d <= 4096]
        raise ValueError(f"remat_chunk={remat_chunk} must divide the sequence length T={length}; "
                         f"valid chunks include {divisors[-8:]}.")
    n_chunks = length // remat_chunk
    xs_c = jax.tree.map(lambda a: a.reshape(n_chunks, remat_chunk, *a.shape[1:]), xs)

    @jax.checkpoint
    def chunk(c, x_chunk):
        return jax.lax.scan(body, c, x_chunk, length=remat_chunk)

    carry, ys = jax.lax.scan(chunk, carry, xs_c, length=n_chunks)
    ys = jax.tree.map(lambda a: a.reshape(length, *a.shape[2:]), ys)
    return carry, ys


def _neuron_input(lp, layer: LayerSpec, state, ff_current, mdt):
    if layer.recurrent:
        return ff_current + _matmul(state.spike, lp["w_rec"], mdt) + lp["b_rec"]
    return ff_current


# ----------------------------------------------------------------------------- fast fused path
#
# A hand-differentiated "wavefront" scan for stacks of TC-LIF layers (official reset order).
# Iteration k steps layer l at time t = k - l (K = T + L - 1 iterations), so every layer
# reads the spikes its input layer produced in the previous iteration: the neuron updates
# of all layers are independent within an iteration and run as ONE elementwise update on
# the packed state (B, N), N = sum of widths; outside its window [l, T + l) a layer's state
# is frozen. The forward stores the packed state of every iteration (dendrite + i*soma as
# one complex64 array: one write per step instead of two) and the backward below is the
# adjoint of the same equations, written out:
#
#   u_k = v_{k-1} - th s_{k-1};  d_k = d_{k-1} - gamma s_{k-1} + b1 u_k + I_k;
#   v_k = u_k + b2 d_k;  s_k = H(v_k - th)      (surrogate derivative g_k in the backward)
#
#   V_k = U_{k+1} + g_k S_k;  D_k = D_{k+1} + b2 V_k;  U_k = V_k + b1 D_k;  dI_k = D_k;
#   S_{k-1} = -gamma D_k - th U_k + (matmul back-propagation of dI_k) + (readout term);
#   db1 += D_k u_k;  db2 += V_k d_k;  dW += s^T dI.
#
# XLA:CPU emits one kernel per output of a loop body and re-computes shared inputs in each,
# so the body keeps few outputs; spikes are recomputed from the stored soma (exact).


@dataclasses.dataclass(frozen=True)
class _WaveConfig:
    widths: tuple[int, ...]
    recurrent: tuple[bool, ...]
    v_th: tuple[float, ...]
    gamma: tuple[float, ...]
    surrogate: Any
    detach_reset: bool
    mdt: str
    steps: int

    @property
    def offsets(self):
        return tuple(int(o) for o in np.cumsum((0,) + self.widths))

    def vector(self, values):
        return np.concatenate([np.full((n,), v, np.float32) for n, v in zip(self.widths, values)])

    @property
    def layer_of(self):
        return np.repeat(np.arange(len(self.widths)), self.widths).astype(np.int32)


def _wave_ok(spec: NetworkSpec, masks, probes, record: bool) -> bool:
    from tclif_jax.neurons import TCLIF
    neurons = [layer.neuron for layer in spec.layers]
    return (not record and all(p is None for p in probes) and all(m is None for m in masks)
            and all(type(n) is TCLIF and n.reset_order == "official" for n in neurons)
            and len({n.surrogate for n in neurons}) == 1
            and len({n.detach_reset for n in neurons}) == 1)


def _split(a, offsets):
    return [a[..., offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]


def _couplings(cfg: _WaveConfig, cs):
    """(b1, b2) as packed (N,) vectors from per-layer c of shape (2,) or (n, 2)."""
    b1, b2 = [], []
    for c, n in zip(cs, cfg.widths):
        s1, s2 = jax.nn.sigmoid(c[..., 0]), jax.nn.sigmoid(c[..., 1])
        b1.append(jnp.broadcast_to(-s1, (n,)))
        b2.append(jnp.broadcast_to(s2, (n,)))
    return jnp.concatenate(b1), jnp.concatenate(b2)


def _wave_forward(cfg: _WaveConfig, I0, ws, bs, wrs, brs, cs, save: bool):
    L, T = len(cfg.widths), cfg.steps
    K = T + L - 1
    off = cfg.offsets
    mdt = MATMUL_DTYPES[cfg.mdt]
    B, N = I0.shape[1], off[-1]
    th, gm = jnp.asarray(cfg.vector(cfg.v_th)), jnp.asarray(cfg.vector(cfg.gamma))
    lay = jnp.asarray(cfg.layer_of)
    b1, b2 = _couplings(cfg, cs)
    wq = [None] + [w.astype(mdt) for w in ws[1:]]
    wrq = [None if w is None else w.astype(mdt) for w in wrs]
    bias = jnp.concatenate([(bs[l] if l else jnp.zeros((n,), jnp.float32))
                            + (brs[l] if cfg.recurrent[l] else 0.0) for l, n in enumerate(cfg.widths)])
    I0p = jnp.concatenate([I0, jnp.zeros((L - 1,) + I0.shape[1:], I0.dtype)]) if L > 1 else I0
    feeds = _feeds(cfg)  # layers whose spikes feed a matmul

    def body(carry, inp):
        r, acc = carry
        k, i0 = inp
        d, v = jnp.real(r), jnp.imag(r)
        s = jnp.where(k - 1 >= lay, (v >= th).astype(jnp.float32), 0.0)
        acc = acc + jnp.where((k - 1 >= lay) & (k - 1 < T + lay), s, 0.0)
        sq = {l: s[:, off[l]:off[l + 1]].astype(mdt) for l in feeds}
        parts = [i0] + [_dot(sq[l - 1], wq[l]) for l in range(1, L)]
        for l in range(L):
            if cfg.recurrent[l]:
                parts[l] = parts[l] + _dot(sq[l], wrq[l])
        cur = jnp.concatenate(parts, axis=-1) + bias
        valid = (k >= lay) & (k < T + lay)
        u = v - th * s
        dn = d - gm * s + b1 * u + cur
        vn = u + b2 * dn
        rn = jnp.where(valid, jax.lax.complex(dn, vn), r)
        return (rn, acc), (rn if save else None)

    z = jnp.zeros((B, N), jnp.float32)
    (r_last, acc), res = jax.lax.scan(body, (jax.lax.complex(z, z), z), (jnp.arange(K), I0p))
    s_last = jnp.where(K - 1 >= lay, (jnp.imag(r_last) >= th).astype(jnp.float32), 0.0)
    acc = acc + jnp.where((K - 1 >= lay) & (K - 1 < T + lay), s_last, 0.0)
    return (acc, s_last), res


def _feeds(cfg):
    L = len(cfg.widths)
    return sorted({l - 1 for l in range(1, L)} | {l for l in range(L) if cfg.recurrent[l]})


def _dot(a, b):
    if a.dtype == jnp.float32 and b.dtype == jnp.float32:
        return a @ b
    return jnp.matmul(a, b, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _wave(cfg, I0, ws, bs, wrs, brs, cs):
    return _wave_forward(cfg, I0, ws, bs, wrs, brs, cs, save=False)[0]


def _wave_fwd(cfg, I0, ws, bs, wrs, brs, cs):
    out, res = _wave_forward(cfg, I0, ws, bs, wrs, brs, cs, save=True)
    return out, (res, ws, wrs, cs)


def _wave_bwd(cfg, saved, cts):
    res, ws, wrs, cs = saved
    g_acc, g_last = cts
    L, T = len(cfg.widths), cfg.steps
    K = T + L - 1
    off = cfg.offsets
    mdt = MATMUL_DTYPES[cfg.mdt]
    th, gm = jnp.asarray(cfg.vector(cfg.v_th)), jnp.asarray(cfg.vector(cfg.gamma))
    lay = jnp.asarray(cfg.layer_of)
    b1, b2 = _couplings(cfg, cs)
    wtq = [None] + [w.T.astype(mdt) for w in ws[1:]]
    wrtq = [None if w is None else w.T.astype(mdt) for w in wrs]
    deriv = cfg.surrogate.derivative
    feeds = _feeds(cfg)
    n0 = cfg.widths[0]

    def body(carry, k):
        DV, S, acc12, dws, dwrs = carry
        r_cur = jax.lax.dynamic_index_in_dim(res, k, keepdims=False)
        r_prev = jax.lax.dynamic_index_in_dim(res, jnp.maximum(k - 1, 0), keepdims=False)
        r_prev = jnp.where(k > 0, r_prev, jnp.zeros_like(r_prev))
        valid = (k >= lay) & (k < T + lay)
        started_prev = k - 1 >= lay
        # Adjoints of (d_k, v_k); the carry holds (D, V) of step k+1, whose U = V + b1 D
        # is the adjoint of v_k through u_{k+1} = v_k - v_th s_k.
        D_out = jnp.real(DV)
        V_out = jnp.imag(DV) + b1 * D_out
        V = V_out + deriv(jnp.imag(r_cur) - th) * S
        D = D_out + b2 * V
        DVn = jnp.where(valid, jax.lax.complex(D, V), jax.lax.complex(D_out, V_out))
        D, V = jnp.real(DVn), jnp.imag(DVn)
        U = V + b1 * D
        dI = jnp.where(valid, D, 0.0)
        v_p = jnp.imag(r_prev)
        s_p = jnp.where(started_prev, (v_p >= th).astype(jnp.float32), 0.0)
        u = v_p - th * s_p
        acc12 = acc12 + jnp.where(valid, jax.lax.complex(D * u, V * jnp.real(r_cur)), 0.0)
        ones = jnp.ones((dI.shape[0], 1), mdt)
        spq = {l: jnp.concatenate([s_p[:, off[l]:off[l + 1]].astype(mdt), ones], axis=1) for l in feeds}
        dIq = {l: dI[:, off[l]:off[l + 1]].astype(mdt) for l in range(L)
               if l >= 1 or cfg.recurrent[l]}
        back = [None] * L
        dws, dwrs = list(dws), list(dwrs)
        for l in range(1, L):
            back[l - 1] = _dot(dIq[l], wtq[l])
            dws[l] = dws[l] + _dot(spq[l - 1].T, dIq[l])
        for l in range(L):
            if cfg.recurrent[l]:
                t_l = _dot(dIq[l], wrtq[l])
                back[l] = t_l if back[l] is None else back[l] + t_l
                dwrs[l] = dwrs[l] + _dot(spq[l].T, dIq[l])
        back = jnp.concatenate([b if b is not None else jnp.zeros((dI.shape[0], n), jnp.float32)
                                for b, n in zip(back, cfg.widths)], axis=-1)
        reset = 0.0 if cfg.detach_reset else -gm * D - th * U
        valid_prev = started_prev & (k - 1 < T + lay)
        Sn = jnp.where(valid, reset, S) + back + jnp.where(valid_prev, g_acc, 0.0)
        return (DVn, Sn, acc12, tuple(dws), tuple(dwrs)), dI[:, :n0]

    B, N = g_acc.shape
    z = jnp.zeros((B, N), jnp.float32)
    last_valid = (K - 1 >= lay) & (K - 1 < T + lay)
    S0 = g_last + jnp.where(last_valid, g_acc, 0.0)
    # dW accumulators carry one extra input row: the bias gradient (sum of dI over batch).
    dws0 = tuple(None if l == 0 else jnp.zeros((w.shape[0] + 1, w.shape[1]), jnp.float32)
                 for l, w in enumerate(ws))
    dwrs0 = tuple(None if w is None else jnp.zeros((w.shape[0] + 1, w.shape[1]), jnp.float32)
                  for w in wrs)
    zc = jax.lax.complex(z, z)
    carry, dI0 = jax.lax.scan(body, (zc, S0, zc, dws0, dwrs0), jnp.arange(K - 1, -1, -1))
    _, _, acc12, dws, dwrs = carry
    dI0 = dI0[::-1][:T]
    g1, g2 = _split(jnp.sum(jnp.real(acc12), 0), off), _split(jnp.sum(jnp.imag(acc12), 0), off)
    dcs = []
    for l, c in enumerate(cs):
        s1, s2 = jax.nn.sigmoid(c[..., 0]), jax.nn.sigmoid(c[..., 1])
        e1, e2 = (g1[l], g2[l]) if c.ndim == 2 else (jnp.sum(g1[l]), jnp.sum(g2[l]))
        dcs.append(jnp.stack([-e1 * s1 * (1 - s1), e2 * s2 * (1 - s2)], -1))
    # Bias gradients: the last row of the augmented dW (for l >= 1 the input and recurrent
    # biases add to the same current, so they share it).
    dbias = [None] * L
    for l in range(L):
        if l >= 1:
            dbias[l] = dws[l][-1]
        elif cfg.recurrent[l]:
            dbias[l] = dwrs[l][-1]
    dws = tuple(None if w is None else w[:-1] for w in dws)
    dwrs_out = tuple(None if w is None else w[:-1] for w in dwrs)
    dbs = tuple(None if l == 0 else dbias[l] for l in range(L))
    dbrs = tuple(dbias[l] if cfg.recurrent[l] else None for l in range(L))
    return dI0, dws, dbs, dwrs_out, dbrs, tuple(dcs)


_wave.defvjp(_wave_fwd, _wave_bwd)


def _run_wave(params, x, spec: NetworkSpec, mdt):
    """Fast fused path: returns (spike_sum of the last layer, its last spikes, firing rates)."""
    lps = params["layers"]
    L = len(lps)
    T = x.shape[0]
    widths = tuple(lp["w_in"].shape[1] for lp in lps)
    neurons = [layer.neuron for layer in spec.layers]
    cfg = _WaveConfig(widths, tuple(l.recurrent for l in spec.layers),
                      tuple(float(n.v_th) for n in neurons), tuple(float(n.gamma) for n in neurons),
                      neurons[0].surrogate, bool(neurons[0].detach_reset), spec.matmul_dtype, T)
    I0 = _matmul(x, lps[0]["w_in"], mdt) + lps[0]["b_in"]
    ws = tuple(lp["w_in"] if l else None for l, lp in enumerate(lps))
    bs = tuple(lp["b_in"] if l else None for l, lp in enumerate(lps))
    wrs = tuple(lp["w_rec"] if layer.recurrent else None for lp, layer in zip(lps, spec.layers))
    brs = tuple(lp["b_rec"] if layer.recurrent else None for lp, layer in zip(lps, spec.layers))
    cs = tuple(lp["neuron"]["c"] for lp in lps)
    acc, s_last = _wave(cfg, I0, ws, bs, wrs, brs, cs)
    off = cfg.offsets
    rates = [jnp.sum(a) / (T * x.shape[1] * n) for a, n in zip(_split(acc, off), widths)]
    return acc[:, off[-2]:], s_last[:, off[-2]:], rates


def run_network(params: dict, x: jax.Array, spec: NetworkSpec, *, dropout_key=None,
                probes: Sequence[jax.Array | None] | None = None, record: bool = False):
    """Run a stack of spiking layers and the readout on time-major input.

    Args:
      params: ``{"layers": [layer arrays...], "readout": {"w", "b"}}``.
      x: input currents ``(T, B, F)``, time-major, float.
      spec: static description (neurons, recurrence, dropout, strategy, ...).
      dropout_key: PRNG key; ``None`` means deterministic (evaluation).
      probes: optional per-layer ``(T, B, n)`` additive offsets to the membrane
        potential; the gradient with respect to them is dL/dU[t].
      record: also return every layer's spikes and potentials, ``(T, B, n)``.

    Returns:
      ``(logits (B, C), aux)`` with ``aux["firing_rates"]`` of shape ``(L,)``
      (mean spikes per neuron per step) and, if ``record``, ``aux["spikes"]``
      and ``aux["potentials"]``, lists of ``(T, B, n)``.
    """
    T, B, _ = x.shape
    mdt = MATMUL_DTYPES[spec.matmul_dtype]
    layers_p = params["layers"]
    widths = [lp["w_in"].shape[1] for lp in layers_p]
    num_layers = len(spec.layers)
    probes = list(probes) if probes is not None else [None] * num_layers
    masks = _masks(dropout_key, spec, (T, B), widths)
    strategy = resolve_strategy(spec)
    states = [layer.neuron.init_state((B,), n) for layer, n in zip(spec.layers, widths)]

    if strategy == "layerwise":
        h = x
        rates, spikes_rec, pots_rec = [], [], []
        for i, (layer, lp) in enumerate(zip(spec.layers, layers_p)):
            current = _matmul(h, lp["w_in"], mdt) + lp["b_in"]
            if masks[i] is not None:
                current = current * masks[i]

            def body(state, inp, layer=layer, lp=lp):
                cur_t, probe_t = inp
                cur_t = _neuron_input(lp, layer, state, cur_t, mdt)
                state, s = layer.neuron.step(lp["neuron"], state, cur_t,
                                             0.0 if probe_t is None else probe_t)
                return state, (s, layer.neuron.potential(state) if record else None)

            _, (h, pots) = _scan(body, states[i], (current, probes[i]), T, spec.remat_chunk)
            rates.append(jnp.mean(h))
            spikes_rec.append(h)
            pots_rec.append(pots)
        spike_sum, last_spike = jnp.sum(h, axis=0), h[-1]
    elif strategy == "fused" and not spec.remat_chunk and _wave_ok(spec, masks, probes, record):
        spike_sum, last_spike, rates = _run_wave(params, x, spec, mdt)
    elif strategy == "fused":
        def body(carry, inp):
            states, acc, counts = carry
            x_t, masks_t, probes_t = inp
            h = x_t
            new_states, new_counts, outs = [], [], []
            for i, (layer, lp) in enumerate(zip(spec.layers, layers_p)):
                cur = _matmul(h, lp["w_in"], mdt) + lp["b_in"]
                if masks_t[i] is not None:
                    cur = cur * masks_t[i]
                cur = _neuron_input(lp, layer, states[i], cur, mdt)
                st, h = layer.neuron.step(lp["neuron"], states[i], cur,
                                          0.0 if probes_t[i] is None else probes_t[i])
                new_states.append(st)
                new_counts.append(counts[i] + jnp.sum(h))
                outs.append((h, layer.neuron.potential(st)) if record else None)
            return (new_states, acc + h, new_counts), outs

        counts0 = [jnp.zeros(()) for _ in spec.layers]
        acc0 = jnp.zeros((B, widths[-1]), jnp.float32)
        (states, spike_sum, counts), outs = _scan(body, (states, acc0, counts0),
                                                  (x, masks, probes), T, spec.remat_chunk)
        last_spike = states[-1].spike
        rates = [c / (T * B * n) for c, n in zip(counts, widths)]
        if record:
            spikes_rec = [o[0] for o in outs]
            pots_rec = [o[1] for o in outs]
    else:
        raise ValueError(f"Unknown strategy {spec.strategy!r}; valid: {STRATEGIES}.")

    ro = params["readout"]
    if spec.readout == "sum":
        logits = _matmul(spike_sum, ro["w"], mdt) + T * ro["b"]
    elif spec.readout == "mean":
        logits = _matmul(spike_sum / T, ro["w"], mdt) + ro["b"]
    elif spec.readout == "last":
        logits = _matmul(last_spike, ro["w"], mdt) + ro["b"]
    else:
        raise ValueError(f"Unknown readout {spec.readout!r}; valid: {READOUTS}.")

    aux = {"firing_rates": jnp.stack(rates)}
    if record:
        aux["spikes"], aux["potentials"] = spikes_rec, pots_rec
    return logits, aux


def _masks(key, spec: NetworkSpec, shape_tb, widths):
    """Inverted-dropout masks ``(T, B, n)`` per layer (None where off). Drawn outside the
    scan so that both strategies use identical masks for one key."""
    masks = []
    for i, (layer, n) in enumerate(zip(spec.layers, widths)):
        if key is None or layer.dropout == 0.0:
            masks.append(None)
            continue
        keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1.0 - layer.dropout,
                                    (*shape_tb, n))
        masks.append(keep.astype(jnp.float32) / (1.0 - layer.dropout))
    return masks
