"""The wavefront kernel: a hand-differentiated fused scan for stacks of TC-LIF layers.

Used by ``tclif_jax.network.run_network`` (strategy ``fused``) when every layer's neuron
has ``Neuron.wavefront`` (TC-LIF in the official reset order), one surrogate and one
``detach_reset`` setting across layers, and no probes, records, dropout or remat; tested
against autodiff of the same network (``backward="autodiff"``) to 1e-5.

Iteration k steps layer l at time t = k - l (K = T + L - 1 iterations), so every layer
reads the spikes its input layer produced in the previous iteration: the neuron updates of
all layers are independent within an iteration and run as ONE elementwise update on the
packed state (B, N), N = sum of widths; outside its window [l, T + l) a layer's state is
frozen. The forward stores the packed state of every iteration (dendrite + i*soma as one
complex64 array: one write per step instead of two) and the backward below is the adjoint
of the same equations, written out:

  u_k = v_{k-1} - th s_{k-1};  d_k = d_{k-1} - gamma s_{k-1} + b1 u_k + I_k;
  v_k = u_k + b2 d_k;  s_k = H(v_k - th)      (surrogate derivative g_k in the backward)

  V_k = U_{k+1} + g_k S_k;  D_k = D_{k+1} + b2 V_k;  U_k = V_k + b1 D_k;  dI_k = D_k;
  S_{k-1} = -gamma D_k - th U_k + (matmul back-propagation of dI_k) + (readout term);
  db1 += D_k u_k;  db2 += V_k d_k;  dW += s^T dI.

XLA:CPU emits one kernel per output of a loop body and re-computes shared inputs in each,
so the body keeps few outputs; spikes are recomputed from the stored soma (exact), with
the surrogate's Heaviside convention (``v >= th``, or ``v > th`` where
``Surrogate.fires_at_zero`` is False, as for ``official_gau``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tclif_jax.config import MATMUL_DTYPES

__all__ = ["run"]


@dataclasses.dataclass(frozen=True)
class _WaveConfig:
    widths: tuple[int, ...]
    recurrent: tuple[bool, ...]
    v_th: tuple[float, ...]
    gamma: tuple[float, ...]
    surrogate: Any
    detach_reset: bool
    mdt: str
    precision: str
    steps: int

    @property
    def offsets(self):
        return tuple(int(o) for o in np.cumsum((0,) + self.widths))

    def vector(self, values):
        return np.concatenate([np.full((n,), v, np.float32) for n, v in zip(self.widths, values)])

    @property
    def layer_of(self):
        return np.repeat(np.arange(len(self.widths)), self.widths).astype(np.int32)

    def fire(self, v, th):
        """The spike of soma ``v`` against ``th`` with the surrogate's H(0), as f32."""
        hit = v >= th if self.surrogate.fires_at_zero else v > th
        return hit.astype(jnp.float32)

    def dot(self, a, b):
        if a.dtype == jnp.float32 and b.dtype == jnp.float32:
            return jnp.matmul(a, b, precision=jax.lax.Precision[self.precision.upper()])
        return jnp.matmul(a, b, preferred_element_type=jnp.float32)


def _split(a, offsets):
    return [a[..., offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]


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
    bias = jnp.concatenate(
        [
            (bs[l] if l else jnp.zeros((n,), jnp.float32)) + (brs[l] if cfg.recurrent[l] else 0.0)
            for l, n in enumerate(cfg.widths)
        ]
    )
    I0p = jnp.concatenate([I0, jnp.zeros((L - 1,) + I0.shape[1:], I0.dtype)]) if L > 1 else I0
    feeds = _feeds(cfg)  # layers whose spikes feed a matmul

    def body(carry, inp):
        r, acc = carry
        k, i0 = inp
        d, v = jnp.real(r), jnp.imag(r)
        s = jnp.where(k - 1 >= lay, cfg.fire(v, th), 0.0)
        acc = acc + jnp.where((k - 1 >= lay) & (k - 1 < T + lay), s, 0.0)
        sq = {l: s[:, off[l] : off[l + 1]].astype(mdt) for l in feeds}
        parts = [i0] + [cfg.dot(sq[l - 1], wq[l]) for l in range(1, L)]
        for l in range(L):
            if cfg.recurrent[l]:
                parts[l] = parts[l] + cfg.dot(sq[l], wrq[l])
        cur = jnp.concatenate(parts, axis=-1) + bias
        valid = (k >= lay) & (k < T + lay)
        u = v - th * s
        dn = d - gm * s + b1 * u + cur
        vn = u + b2 * dn
        rn = jnp.where(valid, jax.lax.complex(dn, vn), r)
        return (rn, acc), (rn if save else None)

    z = jnp.zeros((B, N), jnp.float32)
    (r_last, acc), res = jax.lax.scan(body, (jax.lax.complex(z, z), z), (jnp.arange(K), I0p))
    s_last = jnp.where(K - 1 >= lay, cfg.fire(jnp.imag(r_last), th), 0.0)
    acc = acc + jnp.where((K - 1 >= lay) & (K - 1 < T + lay), s_last, 0.0)
    return (acc, s_last), res


def _feeds(cfg):
    L = len(cfg.widths)
    return sorted({l - 1 for l in range(1, L)} | {l for l in range(L) if cfg.recurrent[l]})


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
        s_p = jnp.where(started_prev, cfg.fire(v_p, th), 0.0)
        u = v_p - th * s_p
        acc12 = acc12 + jnp.where(valid, jax.lax.complex(D * u, V * jnp.real(r_cur)), 0.0)
        ones = jnp.ones((dI.shape[0], 1), mdt)
        spq = {
            l: jnp.concatenate([s_p[:, off[l] : off[l + 1]].astype(mdt), ones], axis=1)
            for l in feeds
        }
        dIq = {
            l: dI[:, off[l] : off[l + 1]].astype(mdt)
            for l in range(L)
            if l >= 1 or cfg.recurrent[l]
        }
        back = [None] * L
        dws, dwrs = list(dws), list(dwrs)
        for l in range(1, L):
            back[l - 1] = cfg.dot(dIq[l], wtq[l])
            dws[l] = dws[l] + cfg.dot(spq[l - 1].T, dIq[l])
        for l in range(L):
            if cfg.recurrent[l]:
                t_l = cfg.dot(dIq[l], wrtq[l])
                back[l] = t_l if back[l] is None else back[l] + t_l
                dwrs[l] = dwrs[l] + cfg.dot(spq[l].T, dIq[l])
        back = jnp.concatenate(
            [
                b if b is not None else jnp.zeros((dI.shape[0], n), jnp.float32)
                for b, n in zip(back, cfg.widths)
            ],
            axis=-1,
        )
        reset = 0.0 if cfg.detach_reset else -gm * D - th * U
        valid_prev = started_prev & (k - 1 < T + lay)
        Sn = jnp.where(valid, reset, S) + back + jnp.where(valid_prev, g_acc, 0.0)
        return (DVn, Sn, acc12, tuple(dws), tuple(dwrs)), dI[:, :n0]

    B, N = g_acc.shape
    z = jnp.zeros((B, N), jnp.float32)
    last_valid = (K - 1 >= lay) & (K - 1 < T + lay)
    S0 = g_last + jnp.where(last_valid, g_acc, 0.0)
    # dW accumulators carry one extra input row: the bias gradient (sum of dI over batch).
    dws0 = tuple(
        None if l == 0 else jnp.zeros((w.shape[0] + 1, w.shape[1]), jnp.float32)
        for l, w in enumerate(ws)
    )
    dwrs0 = tuple(
        None if w is None else jnp.zeros((w.shape[0] + 1, w.shape[1]), jnp.float32) for w in wrs
    )
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


def run(config, layers_params, x, matmul):
    """The fused network on time-major ``x (T, B, F)``: returns (spike sum of the last
    layer (B, n), its spikes at the last step (B, n), per-layer firing rates)."""
    T = x.shape[0]
    widths = tuple(config.hidden)
    neurons = config.neurons
    cfg = _WaveConfig(
        widths,
        tuple(config.recurrent),
        tuple(float(n.v_th) for n in neurons),
        tuple(float(n.gamma) for n in neurons),
        neurons[0].surrogate,
        bool(neurons[0].detach_reset),
        matmul.dtype,
        matmul.precision,
        T,
    )
    first = layers_params[0]["dense"]
    I0 = matmul(x, first["kernel"]) + first["bias"]
    ws = tuple(lp["dense"]["kernel"] if l else None for l, lp in enumerate(layers_params))
    bs = tuple(lp["dense"]["bias"] if l else None for l, lp in enumerate(layers_params))
    wrs = tuple(
        lp["recurrent"]["kernel"] if r else None for lp, r in zip(layers_params, config.recurrent)
    )
    brs = tuple(
        lp["recurrent"]["bias"] if r else None for lp, r in zip(layers_params, config.recurrent)
    )
    cs = tuple(lp["neuron_params"]["c"] for lp in layers_params)
    acc, s_last = _wave(cfg, I0, ws, bs, wrs, brs, cs)
    off = cfg.offsets
    rates = [jnp.sum(a) / (T * x.shape[1] * n) for a, n in zip(_split(acc, off), widths)]
    return acc[:, off[-2] :], s_last[:, off[-2] :], rates
