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
written. On CPU (smnist-ff-64, batch 256, f32) its train step runs at 0.88-0.96x of the
one built on the TC-LIF-only wavefront kernel it replaced (both in one process;
``benchmarks/RESULTS.md``, "Before and after").

``remat_chunk = c > 0``: chunked residuals. The forward keeps only the state at the start
of every chunk of c steps (and the input currents); the backward re-runs each chunk's
forward from its start state, in reverse chunk order, to rebuild that chunk's residuals,
then runs its adjoints: residual memory ~ (T / c + c) steps instead of T.

Products use the network's ``MatmulPolicy`` (operand dtype and f32 precision) forward
and backward, with ``MatmulPolicy.grad_x`` / ``grad_w`` for the transposed products.
Tested against autodiff (``backward="autodiff"``) to 1e-5 for every registered neuron in
``tests/test_adjoint.py``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["layer", "network", "check_chunk", "time_sum", "layer_input"]


def check_chunk(length: int, chunk: int) -> None:
    """A ValueError naming valid chunks unless ``chunk`` divides the sequence ``length``."""
    if chunk and chunk < length and length % chunk:
        divisors = [d for d in range(1, length + 1) if length % d == 0 and d <= 4096]
        raise ValueError(
            f"remat_chunk={chunk} must divide the sequence length T={length}; "
            f"valid chunks include {divisors[-8:]}."
        )


def time_sum(a: jax.Array) -> jax.Array:
    """``sum_t a[t]`` for ``a (T, ...)``, as a loop of adds. XLA:CPU (jax 0.10.2) runs a
    reduction over the leading axis alone ((T, B, n) -> (B, n)) 20-30x slower than this:
    60-80 ms against 2-3 ms at (250, 256, 128); reductions over every axis, or over
    (T, B), are fast and need no help."""
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


def layer_input(matmul, rec, state, current):
    """A layer's input at one step: its feed-forward current plus, for a recurrent layer
    (``rec`` = ``{"kernel", "bias"}``, else None), ``S[t-1] @ W_rec + b_rec``."""
    if rec is None:
        return current
    return current + matmul(state.spike, rec["kernel"]) + rec["bias"]


# ----------------------------------------------------------------------------- one layer


def _layer_forward(neuron, matmul, params, rec, current, state0):
    """Run ``current (t, B, n)`` from ``state0``: (final state, residuals (t, B, n) each)."""

    def body(state, cur_t):
        cur = layer_input(matmul, rec, state, cur_t)
        new, _ = neuron.step(params, state, cur)
        return new, neuron.save(params, new, cur)

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
            cot_prev = _add_spike(cot_prev, matmul.grad_x(d_current, rec["kernel"]))
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
        keep = spikes if rec is not None else None  # dW_rec's S[t-1]
        return (final, spikes), (params, rec, state0, saved, keep, None)

    def run_chunk(start, cur_c):
        end, saved_c = _layer_forward(neuron, matmul, params, rec, cur_c, start)
        return end, (start, neuron.restore(params, saved_c).spike)

    final, (starts, spikes) = jax.lax.scan(run_chunk, state0, _split(current, steps // chunk))
    spikes = _merge(spikes)
    keep = spikes if rec is not None else None
    return (final, spikes), (params, rec, state0, starts, keep, current)


def _layer_bwd(neuron, matmul, chunk, res, cts):
    params, rec, state0, saved, spikes, current = res
    cot_final, cot_spikes = cts
    steps = cot_spikes.shape[0]
    acc = _zero_terms(neuron, params, state0)
    if current is None:
        cot0, d_current, acc = _layer_backward(
            neuron, matmul, params, rec, state0, saved, cot_final, cot_spikes, acc
        )
    else:
        starts, n_chunks = saved, steps // chunk

        def run_chunk(carry, inp):
            cot_end, acc = carry
            start, cur_c, g_c = inp
            _, saved_c = _layer_forward(neuron, matmul, params, rec, cur_c, start)
            cot_start, d_c, acc = _layer_backward(
                neuron, matmul, params, rec, start, saved_c, cot_end, g_c, acc
            )
            return (cot_start, acc), d_c

        xs = (starts, _split(current, n_chunks), _split(cot_spikes, n_chunks))
        (cot0, acc), d_current = jax.lax.scan(run_chunk, (cot_final, acc), xs, reverse=True)
        d_current = _merge(d_current)
    d_rec = None
    if rec is not None:
        s_prev = jnp.concatenate([state0.spike[None], spikes[:-1]])
        d_rec = {"kernel": matmul.grad_w(s_prev, d_current), "bias": jnp.sum(d_current, (0, 1))}
    return neuron.param_grads(params, acc), d_rec, d_current, cot0


_layer.defvjp(_layer_fwd, _layer_bwd)


def layer(neuron, params, current, state0, matmul, rec=None, remat_chunk: int = 0):
    """One spiking layer over time with the hand-written backward.

    Args:
      neuron: the layer's ``Neuron`` (static).
      params: its neuron parameters (a dict).
      current: the feed-forward current ``(T, B, n)`` (dropout already applied).
      state0: the initial state, each field ``(B, n)``.
      matmul: the ``MatmulPolicy`` of the recurrent product.
      rec: ``{"kernel" (n, n), "bias" (n,)}`` for a recurrent layer, else None.
      remat_chunk: chunked residuals when > 0 (module docstring).

    Returns:
      ``(final_state, spikes (T, B, n))``, differentiable in params, current, state0, rec.
    """
    return _layer(neuron, matmul, int(remat_chunk), params, rec, current, state0)


# ----------------------------------------------------------------------------- the network


def _net_forward(neurons, matmul, params, ws, bs, recs, first, masks, states0, stats0):
    """All layers over ``first (t, B, n_0)`` (the first layer's feed-forward current) with
    ``masks`` (per layer ``(t, B, n_l)`` or None), from ``states0`` and the running
    ``stats0 = (spike_sum (B, n_L), counts (L,))``: returns ((final states, stats), residuals
    per layer).

    The spike statistics are accumulated inside the loop, where each step's spikes are at
    hand; rebuilding them from the residuals after the loop wrote every layer's (t, B, n)
    spikes once more (0.46 GB on smnist-ff-64 at batch 256) and cost a second pass.
    """

    def body(carry, inp):
        states, (spike_sum, counts) = carry
        h, masks_t = inp
        new_states, saved, step_counts = [], [], []
        for l, nrn in enumerate(neurons):
            if l:
                h = matmul(h, ws[l]) + bs[l]
                if masks_t[l] is not None:
                    h = h * masks_t[l]
            cur = layer_input(matmul, recs[l], states[l], h)
            new, h = nrn.step(params[l], states[l], cur)
            new_states.append(new)
            saved.append(nrn.save(params[l], new, cur))
            step_counts.append(jnp.sum(h))
        stats = (spike_sum + h, counts + jnp.stack(step_counts))
        return (tuple(new_states), stats), tuple(saved)

    return jax.lax.scan(body, (tuple(states0), stats0), (first, masks))


def _zero_stats(states0):
    """``(spike_sum, counts)`` before the first step: zeros ``(B, n_L)`` and ``(L,)``."""
    return jnp.zeros_like(states0[-1].spike), jnp.zeros((len(states0),), jnp.float32)


def _net_backward(neurons, matmul, params, ws, recs, masks, states0, saved, cots, ext, acc):
    """Adjoints over the steps of ``saved``. ``cots``: the adjoints of the states at the
    end; ``ext``: (adjoint of the spike sum (B, n_L), of the counts (L,)); ``acc``: per
    layer (terms, dW, dI summed for b, dW_rec, dI summed for b_rec). Returns (adjoints of
    ``states0``, the first layer's dI (t, B, n_0), acc)."""
    g_sum, g_counts = ext
    steps = jax.tree.leaves(saved)[0].shape[0]

    def body(carry, inp):
        cots, acc = carry
        k, masks_k = inp
        cots, acc = list(cots), [list(a) for a in acc]
        terms, dws, dbs, dwrs, dbrs = acc
        above = g_sum  # the adjoint of this layer's S[k] from the layer above (or readout)
        for l in reversed(range(len(neurons))):
            nrn = neurons[l]
            prev = _previous(nrn, params[l], saved[l], k, states0[l])
            cot = _add_spike(cots[l], above + g_counts[l])
            cot_prev, d_cur, t_l = nrn.adjoint(params[l], prev, _at(saved[l], k), cot)
            terms[l] = _add(terms[l], t_l)
            if recs[l] is not None:
                cot_prev = _add_spike(cot_prev, matmul.grad_x(d_cur, recs[l]["kernel"]))
                dwrs[l] = dwrs[l] + matmul.grad_w(prev.spike, d_cur)
                dbrs[l] = dbrs[l] + d_cur
            cots[l] = cot_prev
            if l:
                if masks_k[l] is not None:
                    d_cur = d_cur * masks_k[l]
                s_in = neurons[l - 1].restore(params[l - 1], _at(saved[l - 1], k)).spike
                dws[l] = dws[l] + matmul.grad_w(s_in, d_cur)
                dbs[l] = dbs[l] + d_cur
                above = matmul.grad_x(d_cur, ws[l])
        return (tuple(cots), tuple(tuple(a) for a in acc)), d_cur

    xs = (jnp.arange(steps), masks)
    (cots0, acc), d_first = jax.lax.scan(body, (tuple(cots), acc), xs, reverse=True)
    return cots0, d_first, acc


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _network(neurons, matmul, chunk, params, ws, bs, recs, first, masks, states0):
    return _network_fwd(neurons, matmul, chunk, params, ws, bs, recs, first, masks, states0)[0]


def _network_fwd(neurons, matmul, chunk, params, ws, bs, recs, first, masks, states0):
    net = (neurons, matmul, params, ws, bs, recs)
    steps = first.shape[0]
    stats0 = _zero_stats(states0)
    if not _chunked(chunk, steps):
        (finals, (spike_sum, counts)), saved = _net_forward(*net, first, masks, states0, stats0)
        res = (params, ws, bs, recs, masks, states0, saved, None)
        return (finals, spike_sum, counts), res

    def run_chunk(carry, inp):
        start, stats = carry
        (end, stats), _ = _net_forward(*net, *inp, start, stats)
        return (end, stats), start

    n_chunks = steps // chunk
    xs = (_split(first, n_chunks), jax.tree.map(lambda m: _split(m, n_chunks), masks))
    (finals, (spike_sum, counts)), starts = jax.lax.scan(run_chunk, (tuple(states0), stats0), xs)
    res = (params, ws, bs, recs, masks, states0, starts, first)
    return (finals, spike_sum, counts), res


def _network_bwd(neurons, matmul, chunk, res, cts):
    params, ws, bs, recs, masks, states0, saved, first = res
    cot_finals, g_sum, g_counts = cts
    n_layers = len(neurons)
    zeros = [jnp.zeros_like(s.spike) for s in states0]
    acc = (
        tuple(_zero_terms(nrn, p, s) for nrn, p, s in zip(neurons, params, states0)),
        tuple(None if w is None else jnp.zeros(w.shape, jnp.float32) for w in ws),
        tuple(zeros),
        tuple(None if r is None else jnp.zeros(r["kernel"].shape, jnp.float32) for r in recs),
        tuple(zeros),
    )
    ext = (g_sum, g_counts)
    back = (neurons, matmul, params, ws, recs)
    if first is None:
        cots0, d_first, acc = _net_backward(
            *back, masks, states0, saved, tuple(cot_finals), ext, acc
        )
    else:
        n_chunks = first.shape[0] // chunk

        def run_chunk(carry, inp):
            cots_end, acc = carry
            start, first_c, masks_c = inp
            _, saved_c = _net_forward(
                neurons, matmul, params, ws, bs, recs, first_c, masks_c, start, _zero_stats(start)
            )
            cots_start, d_c, acc = _net_backward(*back, masks_c, start, saved_c, cots_end, ext, acc)
            return (cots_start, acc), d_c

        xs = (saved, _split(first, n_chunks), jax.tree.map(lambda m: _split(m, n_chunks), masks))
        (cots0, acc), d_first = jax.lax.scan(run_chunk, (tuple(cot_finals), acc), xs, reverse=True)
        d_first = _merge(d_first)
    terms, dws, dbs, dwrs, dbrs = acc
    d_params = tuple(nrn.param_grads(p, t) for nrn, p, t in zip(neurons, params, terms))
    d_bs = tuple(None if l == 0 else jnp.sum(dbs[l], 0) for l in range(n_layers))
    d_recs = tuple(
        None if r is None else {"kernel": dwrs[l], "bias": jnp.sum(dbrs[l], 0)}
        for l, r in enumerate(recs)
    )
    return d_params, dws, d_bs, d_recs, d_first, None, cots0


_network.defvjp(_network_fwd, _network_bwd)


def network(neurons, params, ws, bs, recs, first, masks, states0, matmul, remat_chunk: int = 0):
    """Every spiking layer over time in one loop, with the hand-written backward.

    Args:
      neurons: per layer its ``Neuron`` (a tuple; static).
      params: per layer its neuron parameters (dicts).
      ws, bs: per layer its feed-forward kernel ``(n_{l-1}, n_l)`` and bias ``(n_l,)``;
        None for layer 0, whose current ``first`` is given.
      recs: per layer ``{"kernel" (n, n), "bias" (n,)}`` or None.
      first: layer 0's feed-forward current ``(T, B, n_0)`` (dropout applied).
      masks: per layer a dropout mask ``(T, B, n_l)`` on the feed-forward current, or
        None (layer 0's is None: it is in ``first``).
      states0: per layer the initial state (fields ``(B, n_l)``).
      matmul: the ``MatmulPolicy``.
      remat_chunk: chunked residuals when > 0 (module docstring).

    Returns:
      ``(final_states, spike_sum (B, n_L), counts (L,))``: the states after the last step,
      the last layer's spikes summed over time, and every layer's total spike count.
    """
    return _network(
        tuple(neurons),
        matmul,
        int(remat_chunk),
        tuple(params),
        tuple(ws),
        tuple(bs),
        tuple(recs),
        first,
        tuple(masks),
        tuple(states0),
    )
