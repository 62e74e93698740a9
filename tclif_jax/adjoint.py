"""Hand-differentiated time loops for every neuron: one ``jax.custom_vjp`` per strategy.

JAX's autodiff of a ``lax.scan`` stores what the step's linearisation needs at every step
and replays it backwards. Here each neuron declares its step's adjoint instead
(``Neuron.save`` / ``restore`` / ``adjoint`` / ``param_grads`` in ``tclif_jax.neurons``,
with a ``jax.vjp`` default for a neuron that declares none), and the two functions below
wrap the whole time loop in one ``custom_vjp`` whose forward stores only ``save``'s
residual per step and whose backward runs the adjoints in reverse time. The residuals per
step and neuron, each ``(B, n)``: LIF, PLIF U[t]; ALIF U[t], a[t]; the official ALIF
U[t], eta[t], I[t]; GLIF U[t], I[t]; TC-LIF and the two-compartment neuron U_D[t], U_S[t];
the default the whole state and I[t]. Spikes are recomputed from the stored potentials
by ``restore`` with the expression ``step`` used (so exactly, with the surrogate's H(0)).

Layout is time-major, as in ``tclif_jax.network``: currents ``(T, B, n)``, states
``(B, n)`` per field. Notation: for one layer, ``state[t] = step(state[t-1], I[t])`` with
``I[t] = J[t] + S[t-1] W_rec + b_rec`` (``J``: the feed-forward current; the recurrent
term only in recurrent layers); capitals are adjoints (dL/d.). With
``(C[t-1], dI[t], terms[t]) = adjoint(state[t-1], saved[t], C[t])``, the backward is::

    C[T-1] = dL/d state[T-1] (the final state's adjoint);  for t = T-1, ..., 0:
        C[t].spike += dL/dS[t]            (what S[t] feeds: later layers, the readout)
        C[t-1], dI[t], terms[t] = adjoint(state[t-1], saved[t], C[t])
        C[t-1].spike += dI[t] W_rec^T                                   (recurrent)
    dJ = dI;  dW_rec = sum_t S[t-1]^T dI[t];  db_rec = sum_t dI[t];
    d params = param_grads(sum_t terms[t]);  dL/d state[-1] = C[-1]

``state[t-1]`` is rebuilt from ``saved[t-1]`` by ``restore`` (at t = 0 it is the initial
state itself). ``layer`` runs this for one layer (strategy ``layerwise``; dJ is its
output, ``dW_rec`` one (T*B)-row product after the loop). ``network`` runs every layer in
one loop (strategy ``fused``): the forward steps layer 0 to L-1 at each t, the backward
layer L-1 down to 0, and layer l >= 1's input adjoint becomes layer l-1's spike adjoint at
the same step, through its dropout mask M_l[t]::

    dL/dS_{l-1}[t] += (M_l[t] dI_l[t]) W_l^T;   dW_l += S_{l-1}[t]^T (M_l[t] dI_l[t])
    db_l = sum_t M_l[t] dI_l[t];   dL/dS_{L-1}[t] = dL/d(sum_t S_{L-1}[t])

(per-step products, accumulated in the loop; a layer's spike count, the firing rate, adds
its adjoint to every S_l[t]). In both, the first layer's feed-forward current is an input,
computed and differentiated outside as one large product. The fused forward sums the last
layer's spikes and counts every layer's in its loop, so no (T, B, n) spike array is ever
written.

``remat_chunk = c > 0``: chunked residuals. The forward keeps only the state at the start
of every chunk of c steps (and the input currents); the backward re-runs each chunk's
forward from its start state, in reverse chunk order, to rebuild that chunk's residuals,
then runs its adjoints: residual memory ~ (T / c + c) steps instead of T.

Products use the network's ``MatmulPolicy`` (operand dtype and f32 precision) forward
and backward, with ``MatmulPolicy.grad_x`` / ``grad_w`` for the transposed products and
``spikes_grad_w`` for the weight gradients of products of spikes (``spike_products``).
Tested against autodiff (``backward="autodiff"``) to 1e-5 for every registered neuron in
``tests/test_adjoint.py``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from tclif_jax.execution import MatmulPolicy
from tclif_jax.params import Dense, LayerParams
from tclif_jax.steps import layer_step, network_step

__all__ = ["layer", "network", "check_chunk", "time_sum"]


def check_chunk(length: int, chunk: int) -> None:
    """A ValueError naming valid chunks unless ``chunk`` divides the sequence ``length``."""
    if chunk and chunk < length and length % chunk:
        divisors = [d for d in range(1, length + 1) if length % d == 0 and d <= 4096]
        raise ValueError(
            f"remat_chunk={chunk} must divide the sequence length T={length}; "
            f"valid chunks include {divisors[-8:]}."
        )


def time_sum(a: jax.Array) -> jax.Array:
    """``sum_t a[t]`` for ``a (T, ...)``, as a loop of adds. XLA:CPU runs a reduction over
    the leading axis alone ((T, B, n) -> (B, n)) 20-30x slower than this; reductions over
    every axis, or over (T, B), are fast and need no help."""
    return jax.lax.scan(lambda acc, a_t: (acc + a_t, None), jnp.zeros(a.shape[1:], a.dtype), a)[0]


def _chunked(chunk: int, length: int) -> bool:
    check_chunk(length, chunk)
    return bool(chunk) and chunk < length


def _split(a, n_chunks):
    return a.reshape(n_chunks, a.shape[0] // n_chunks, *a.shape[1:])


def _merge(a):
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])


def _at(tree, k):
    return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, k, keepdims=False), tree)


def _previous(neuron, params, saved, k, state0):
    """The state before step k: restored from ``saved[k-1]``, ``state0`` at k = 0."""
    prev = neuron.restore(params, _at(saved, jnp.maximum(k - 1, 0)))
    return jax.tree.map(lambda a, b: jnp.where(k > 0, a, b), prev, state0)


def _add_spike(cot, g):
    return cot._replace(spike=cot.spike + g)


def _zero_terms(neuron, params, state0):
    """Zeros shaped like one step's ``terms`` (the accumulators of ``param_grads``)."""

    def terms(p, s):
        return neuron.adjoint(p, s, neuron.save(p, s, s.spike), s)[2]

    return jax.tree.map(
        lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(terms, params, state0)
    )


def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


# ----------------------------------------------------------------------------- one layer


class _LayerResiduals(NamedTuple):
    neuron_params: Any
    recurrent: Dense | None
    state0: Any
    saved: Any  # per-step residuals (t, B, n) each; chunked: each chunk's start state
    spikes: jax.Array | None  # S[t] (T, B, n), kept for dW_rec in a recurrent layer
    current: jax.Array | None  # the feed-forward current, kept when chunked


def _layer_forward(neuron, matmul, params, rec, current, state0):
    """Run ``current (t, B, n)`` from ``state0``: (final state, residuals (t, B, n) each)."""
    lp = LayerParams(None, rec, params)

    def body(state, cur_t):
        new, _, inp = layer_step(neuron, lp, state, cur_t, matmul)
        return new, neuron.save(params, new, inp)

    return jax.lax.scan(body, state0, current)


def _layer_backward(neuron, matmul, params, rec, state0, saved, cot_end, cot_spikes, acc):
    """Adjoints over the steps of ``saved``: (adjoint of ``state0``, dI (t, B, n), acc)."""
    steps = cot_spikes.shape[0]

    def body(carry, inp):
        cot, acc = carry
        k, saved_k, g_k = inp
        prev = _previous(neuron, params, saved, k, state0)
        cot_prev, d_current, terms = neuron.adjoint(params, prev, saved_k, _add_spike(cot, g_k))
        if rec is not None:
            cot_prev = _add_spike(cot_prev, matmul.grad_x(d_current, rec.kernel))
        return (cot_prev, _add(acc, terms)), d_current

    xs = (jnp.arange(steps), saved, cot_spikes)
    (cot0, acc), d_current = jax.lax.scan(body, (cot_end, acc), xs, reverse=True)
    return cot0, d_current, acc


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _layer(neuron, matmul, chunk, params, rec, current, state0):
    return _layer_fwd(neuron, matmul, chunk, params, rec, current, state0)[0]


def _layer_fwd(neuron, matmul, chunk, params, rec, current, state0):
    steps = current.shape[0]
    if not _chunked(chunk, steps):
        final, saved = _layer_forward(neuron, matmul, params, rec, current, state0)
        spikes = neuron.restore(params, saved).spike
        keep = spikes if rec is not None else None
        return (final, spikes), _LayerResiduals(params, rec, state0, saved, keep, None)

    def run_chunk(start, cur_c):
        end, saved_c = _layer_forward(neuron, matmul, params, rec, cur_c, start)
        return end, (start, neuron.restore(params, saved_c).spike)

    final, (starts, spikes) = jax.lax.scan(run_chunk, state0, _split(current, steps // chunk))
    spikes = _merge(spikes)
    keep = spikes if rec is not None else None
    return (final, spikes), _LayerResiduals(params, rec, state0, starts, keep, current)


def _layer_bwd(neuron, matmul, chunk, res: _LayerResiduals, cts):
    params, rec = res.neuron_params, res.recurrent
    cot_final, cot_spikes = cts
    acc = _zero_terms(neuron, params, res.state0)
    if res.current is None:
        cot0, d_current, acc = _layer_backward(
            neuron, matmul, params, rec, res.state0, res.saved, cot_final, cot_spikes, acc
        )
    else:
        n_chunks = cot_spikes.shape[0] // chunk

        def run_chunk(carry, inp):
            cot_end, acc = carry
            start, cur_c, g_c = inp
            _, saved_c = _layer_forward(neuron, matmul, params, rec, cur_c, start)
            cot_start, d_c, acc = _layer_backward(
                neuron, matmul, params, rec, start, saved_c, cot_end, g_c, acc
            )
            return (cot_start, acc), d_c

        xs = (res.saved, _split(res.current, n_chunks), _split(cot_spikes, n_chunks))
        (cot0, acc), d_current = jax.lax.scan(run_chunk, (cot_final, acc), xs, reverse=True)
        d_current = _merge(d_current)
    d_rec = None
    if rec is not None:
        s_prev = jnp.concatenate([res.state0.spike[None], res.spikes[:-1]])
        d_rec = Dense(matmul.spikes_grad_w(s_prev, d_current), jnp.sum(d_current, (0, 1)))
    return neuron.param_grads(params, acc), d_rec, d_current, cot0


_layer.defvjp(_layer_fwd, _layer_bwd)


def layer(neuron, params: LayerParams, current, state0, matmul: MatmulPolicy, remat_chunk=0):
    """One spiking layer over time with the hand-written backward.

    Args:
      neuron: the layer's ``Neuron`` (static).
      params: the layer's ``LayerParams``; its ``dense`` is not used (``current`` is given).
      current: the feed-forward current ``(T, B, n)``, time-major, dropout applied.
      state0: the initial state, each field ``(B, n)``.
      matmul: the ``MatmulPolicy`` of the recurrent product.
      remat_chunk: chunked residuals when > 0 (module docstring).

    Returns:
      ``(final_state, spikes (T, B, n))``, differentiable in the neuron and recurrent
      parameters, ``current`` and ``state0``.
    """
    return _layer(
        neuron, matmul, int(remat_chunk), params.neuron, params.recurrent, current, state0
    )


# ----------------------------------------------------------------------------- the network


class _NetResiduals(NamedTuple):
    layers: tuple[LayerParams, ...]
    masks: tuple
    states0: tuple
    saved: tuple  # per layer per-step residuals; chunked: each chunk's start states
    first: jax.Array | None  # layer 0's current, kept when chunked


class _NetAccumulators(NamedTuple):
    """Per layer: ``param_grads`` terms, dW, dI summed over time (for b), dW_rec and dI
    summed over time (for b_rec); None where a layer has no such parameter."""

    terms: tuple
    dw: tuple
    db: tuple
    dw_rec: tuple
    db_rec: tuple


def _net_forward(neurons, matmul, layers, first, masks, states0, stats0):
    """All layers over ``first (t, B, n_0)`` (layer 0's feed-forward current) with
    ``masks`` (per layer ``(t, B, n_l)`` or None), from ``states0`` and the running
    ``stats0 = (spike_sum (B, n_L), counts (L,))``: returns ((final states, stats),
    residuals per layer).

    The spike statistics are accumulated inside the loop, where each step's spikes are at
    hand, so no (t, B, n) spike array is written.
    """

    def body(carry, inp):
        states, (spike_sum, counts) = carry
        first_t, masks_t = inp
        new_states, spikes, inputs = network_step(neurons, layers, states, first_t, masks_t, matmul)
        saved = tuple(
            nrn.save(lp.neuron, st, i)
            for nrn, lp, st, i in zip(neurons, layers, new_states, inputs)
        )
        stats = (spike_sum + spikes[-1], counts + jnp.stack([jnp.sum(s) for s in spikes]))
        return (tuple(new_states), stats), saved

    return jax.lax.scan(body, (tuple(states0), stats0), (first, masks))


def _zero_stats(states0):
    """``(spike_sum, counts)`` before the first step: zeros ``(B, n_L)`` and ``(L,)``."""
    return jnp.zeros_like(states0[-1].spike), jnp.zeros((len(states0),), jnp.float32)


def _net_backward(neurons, matmul, layers, masks, states0, saved, cots, ext, acc):
    """Adjoints over the steps of ``saved``. ``cots``: the adjoints of the states at the
    end; ``ext``: (adjoint of the spike sum (B, n_L), of the counts (L,)); ``acc``: the
    ``_NetAccumulators``. Returns (adjoints of ``states0``, layer 0's dI (t, B, n_0), acc)."""
    g_sum, g_counts = ext
    steps = jax.tree.leaves(saved)[0].shape[0]

    def body(carry, inp):
        cots, acc = carry
        k, masks_k = inp
        cots = list(cots)
        terms, dws, dbs, dwrs, dbrs = (list(a) for a in acc)
        above = g_sum  # the adjoint of this layer's S[k] from the layer above (or readout)
        for l in reversed(range(len(neurons))):
            nrn, lp = neurons[l], layers[l]
            prev = _previous(nrn, lp.neuron, saved[l], k, states0[l])
            cot = _add_spike(cots[l], above + g_counts[l])
            cot_prev, d_cur, t_l = nrn.adjoint(lp.neuron, prev, _at(saved[l], k), cot)
            terms[l] = _add(terms[l], t_l)
            if lp.recurrent is not None:
                cot_prev = _add_spike(cot_prev, matmul.grad_x(d_cur, lp.recurrent.kernel))
                dwrs[l] = matmul.spikes_grad_w(prev.spike, d_cur, dwrs[l])
                dbrs[l] = dbrs[l] + d_cur
            cots[l] = cot_prev
            if l:
                if masks_k[l] is not None:
                    d_cur = d_cur * masks_k[l]
                below = layers[l - 1].neuron
                s_in = neurons[l - 1].restore(below, _at(saved[l - 1], k)).spike
                dws[l] = matmul.spikes_grad_w(s_in, d_cur, dws[l])
                dbs[l] = dbs[l] + d_cur
                above = matmul.grad_x(d_cur, lp.dense.kernel)
        acc = _NetAccumulators(*(tuple(a) for a in (terms, dws, dbs, dwrs, dbrs)))
        return (tuple(cots), acc), d_cur

    xs = (jnp.arange(steps), masks)
    (cots0, acc), d_first = jax.lax.scan(body, (tuple(cots), acc), xs, reverse=True)
    return cots0, d_first, acc


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _network(neurons, matmul, chunk, layers, first, masks, states0):
    return _network_fwd(neurons, matmul, chunk, layers, first, masks, states0)[0]


def _network_fwd(neurons, matmul, chunk, layers, first, masks, states0):
    steps = first.shape[0]
    stats0 = _zero_stats(states0)
    if not _chunked(chunk, steps):
        (finals, (spike_sum, counts)), saved = _net_forward(
            neurons, matmul, layers, first, masks, states0, stats0
        )
        res = _NetResiduals(layers, masks, states0, saved, None)
        return (finals, spike_sum, counts), res

    def run_chunk(carry, inp):
        start, stats = carry
        (end, stats), _ = _net_forward(neurons, matmul, layers, *inp, start, stats)
        return (end, stats), start

    n_chunks = steps // chunk
    xs = (_split(first, n_chunks), jax.tree.map(lambda m: _split(m, n_chunks), masks))
    (finals, (spike_sum, counts)), starts = jax.lax.scan(run_chunk, (tuple(states0), stats0), xs)
    res = _NetResiduals(layers, masks, states0, starts, first)
    return (finals, spike_sum, counts), res


def _zero_accumulators(neurons, layers, states0) -> _NetAccumulators:
    zeros = tuple(jnp.zeros_like(s.spike) for s in states0)

    def zeros_like(dense):
        return None if dense is None else jnp.zeros(dense.kernel.shape, jnp.float32)

    return _NetAccumulators(
        tuple(_zero_terms(nrn, lp.neuron, s) for nrn, lp, s in zip(neurons, layers, states0)),
        tuple(zeros_like(lp.dense) for lp in layers),
        zeros,
        tuple(zeros_like(lp.recurrent) for lp in layers),
        zeros,
    )


def _network_bwd(neurons, matmul, chunk, res: _NetResiduals, cts):
    layers, masks, states0 = res.layers, res.masks, res.states0
    cot_finals, g_sum, g_counts = cts
    acc = _zero_accumulators(neurons, layers, states0)
    ext = (g_sum, g_counts)
    if res.first is None:
        cots0, d_first, acc = _net_backward(
            neurons, matmul, layers, masks, states0, res.saved, tuple(cot_finals), ext, acc
        )
    else:
        n_chunks = res.first.shape[0] // chunk

        def run_chunk(carry, inp):
            cots_end, acc = carry
            start, first_c, masks_c = inp
            _, saved_c = _net_forward(
                neurons, matmul, layers, first_c, masks_c, start, _zero_stats(start)
            )
            cots_start, d_c, acc = _net_backward(
                neurons, matmul, layers, masks_c, start, saved_c, cots_end, ext, acc
            )
            return (cots_start, acc), d_c

        xs = (
            res.saved,
            _split(res.first, n_chunks),
            jax.tree.map(lambda m: _split(m, n_chunks), masks),
        )
        (cots0, acc), d_first = jax.lax.scan(run_chunk, (tuple(cot_finals), acc), xs, reverse=True)
        d_first = _merge(d_first)
    d_layers = tuple(
        LayerParams(
            None if lp.dense is None else Dense(acc.dw[l], jnp.sum(acc.db[l], 0)),
            None if lp.recurrent is None else Dense(acc.dw_rec[l], jnp.sum(acc.db_rec[l], 0)),
            neurons[l].param_grads(lp.neuron, acc.terms[l]),
        )
        for l, lp in enumerate(layers)
    )
    return d_layers, d_first, None, cots0


_network.defvjp(_network_fwd, _network_bwd)


def network(neurons, layers, first, masks, states0, matmul: MatmulPolicy, remat_chunk=0):
    """Every spiking layer over time in one loop, with the hand-written backward.

    Args:
      neurons: per layer its ``Neuron`` (static).
      layers: per layer its ``LayerParams``; layer 0's ``dense`` is not used (``first``
        is its current).
      first: layer 0's feed-forward current ``(T, B, n_0)``, time-major, dropout applied.
      masks: per layer a dropout mask ``(T, B, n_l)`` on the feed-forward current, or
        None (layer 0's is ignored: it is in ``first``).
      states0: per layer the initial state (fields ``(B, n_l)``).
      matmul: the ``MatmulPolicy``.
      remat_chunk: chunked residuals when > 0 (module docstring).

    Returns:
      ``(final_states, spike_sum (B, n_L), counts (L,))``: the states after the last step,
      the last layer's spikes summed over time, and every layer's total spike count.
    """
    layers = (layers[0]._replace(dense=None), *layers[1:])
    return _network(
        tuple(neurons),
        matmul,
        int(remat_chunk),
        tuple(layers),
        first,
        (None, *masks[1:]),
        tuple(states0),
    )
