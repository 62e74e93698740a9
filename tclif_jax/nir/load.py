"""``from_nir``: a NIR graph as a network (conventions: ``tclif_jax.nir``)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax.numpy as jnp
import nir
import numpy as np
from flax import nnx

from tclif_jax import params as typed
from tclif_jax.config import NetworkConfig
from tclif_jax.models import SpikingNetwork, from_config, parameters
from tclif_jax.neurons import NEURONS, Neuron, make_neuron
from tclif_jax.nir.common import _F32, _F64, _RTOL, FORMAT
from tclif_jax.nir.export import _check_decay, _dynamics, _unplain
from tclif_jax.surrogate import Surrogate

# ----------------------------------------------------------------------------- import


def _flatten(graph: nir.NIRGraph) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The graph's nodes and edges with every sub-``NIRGraph`` inlined (snnTorch writes a
    recurrent layer as one), its ``Input``/``Output`` nodes contracted away."""
    nodes, inner_edges, through, enter, leave = {}, [], [], {}, {}
    for key, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[key] = node
            continue
        sub, sub_edges = _flatten(node)
        ins = [k for k, v in sub.items() if isinstance(v, nir.Input)]
        outs = [k for k, v in sub.items() if isinstance(v, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            raise ValueError(f"Sub-graph {key!r} needs exactly one Input and one Output node.")
        nodes.update({f"{key}/{k}": v for k, v in sub.items()})
        inner_edges += [(f"{key}/{a}", f"{key}/{b}") for a, b in sub_edges]
        enter[key], leave[key] = f"{key}/{ins[0]}", f"{key}/{outs[0]}"
        through += [enter[key], leave[key]]
    edges = [(leave.get(a, a), enter.get(b, b)) for a, b in graph.edges] + inner_edges
    for p in through:  # connect a pass-through node's sources to its targets
        srcs = [a for a, b in edges if b == p]
        dsts = [b for a, b in edges if a == p]
        edges = [e for e in edges if p not in e] + [(a, b) for a in srcs for b in dsts]
        del nodes[p]
    return nodes, edges


def _one(names: list[str], what: str) -> str:
    if len(names) != 1:
        raise ValueError(
            f"{what}: expected exactly one, found {names or 'none'}. from_nir reads a chain "
            "Input -> (Affine/Linear -> neuron block)* -> [Affine readout] -> Output."
        )
    return names[0]


def _weights(node) -> tuple[np.ndarray, np.ndarray] | None:
    if isinstance(node, nir.Affine):
        return np.asarray(node.weight, _F32), np.asarray(node.bias, _F32)
    if isinstance(node, nir.Linear):
        w = np.asarray(node.weight, _F32)
        return w, np.zeros(w.shape[0], _F32)
    return None


def _block(x: str, n: int, nodes, succ, pred) -> dict[str, Any]:
    """Read the neuron block entered at ``x``: its kind, node values (each ``(n,)``), the
    spike node, the recurrent weights on its back-edge, its nodes and its edges."""

    def feeders(target, src, types):
        return [
            p
            for p in pred[target]
            if pred[p] == [src] and succ[p] == [target] and isinstance(nodes[p], types)
        ]

    def full(v):
        return np.broadcast_to(np.asarray(v, _F64), (n,)).copy()

    node = nodes[x]
    dense = (nir.Linear, nir.Affine)
    if isinstance(node, nir.LIF):
        if np.any(np.asarray(node.v_leak) != 0) or np.any(np.asarray(node.v_reset) != 0):
            raise ValueError(
                f"{x}: LIF with v_leak or v_reset != 0 has no equivalent here (reset to 0, no leak potential)."
            )
        kind, spike, members = "lif", x, {x}
        vals = {"tau": full(node.tau), "r": full(node.r), "threshold": full(node.v_threshold)}
        recs = feeders(x, x, dense)
        edges = []
    elif isinstance(node, nir.LI) and not any(isinstance(nodes[s], nir.Scale) for s in succ[x]):
        if np.any(np.asarray(node.v_leak) != 0):
            raise ValueError(f"{x}: LI with v_leak != 0 has no equivalent here.")
        spike = _one(
            [s for s in succ[x] if isinstance(nodes[s], nir.Threshold)], f"{x}: Threshold after LI"
        )
        reset = _one(feeders(x, spike, nir.Scale), f"{x}: reset Scale from {spike}")
        recs = feeders(x, spike, dense)
        kind, members = "li", {x, spike, reset}
        vals = {
            "tau": full(node.tau),
            "r": full(node.r),
            "threshold": full(nodes[spike].threshold),
            "reset": full(nodes[reset].scale),
        }
        edges = [(x, spike), (spike, reset), (reset, x)]
    elif isinstance(node, (nir.I, nir.LI)):
        b2 = _one(
            [s for s in succ[x] if isinstance(nodes[s], nir.Scale)],
            f"{x}: Scale(b2) after the dendrite",
        )
        soma = _one(succ[b2], f"{b2}: the soma")
        if not isinstance(nodes[soma], (nir.I, nir.LI)):
            raise ValueError(
                f"{soma}: expected the soma, an I or LI node, got {type(nodes[soma]).__name__}."
            )
        spike = _one(
            [s for s in succ[soma] if isinstance(nodes[s], nir.Threshold)], f"{soma}: Threshold"
        )
        b1 = _one(feeders(x, soma, nir.Scale), f"{x}: Scale(b1) from the soma")
        rd = _one(feeders(x, spike, nir.Scale), f"{x}: reset Scale from {spike}")
        rs = _one(feeders(soma, spike, nir.Scale), f"{soma}: reset Scale from {spike}")
        recs = feeders(x, spike, dense)
        kind, members = "tc", {x, b2, soma, spike, b1, rd, rs}
        vals = {}
        for part, name in (("dendrite", x), ("soma", soma)):
            comp = nodes[name]
            if np.any(np.asarray(getattr(comp, "v_leak", 0.0)) != 0):
                raise ValueError(f"{name}: LI with v_leak != 0 has no equivalent here.")
            vals[f"tau_{part}"] = full(getattr(comp, "tau", np.inf))
            vals[f"r_{part}"] = full(comp.r)
        vals |= {
            "b1": full(nodes[b1].scale),
            "b2": full(nodes[b2].scale),
            "threshold": full(nodes[spike].threshold),
            "reset_dendrite": full(nodes[rd].scale),
            "reset_soma": full(nodes[rs].scale),
        }
        edges = [(x, b2), (b2, soma), (soma, spike), (soma, b1), (b1, x)]
        edges += [(spike, rd), (rd, x), (spike, rs), (rs, soma)]
    else:
        raise ValueError(
            f"Node {x!r} is a {type(node).__name__}: from_nir reads the neuron blocks LIF, "
            "LI + Threshold + reset Scale (soft reset) and I + I + Threshold (TC-LIF)."
        )
    if len(recs) > 1:
        raise ValueError(f"{x}: more than one recurrent weight on the back-edge: {recs}.")
    w_rec = None
    if recs:
        w_rec = _weights(nodes[recs[0]])
        members.add(recs[0])
        edges += [(spike, recs[0]), (recs[0], x)]
    return dict(kind=kind, vals=vals, spike=spike, w_rec=w_rec, members=members, edges=edges)


def _parse(nodes, edges):
    """The layers of a flattened graph: per layer the feed-forward weights ``(out, in)``,
    the neuron block (``_block``), and the readout weights (None: the graph ends at the
    last layer's spikes)."""
    succ = {k: [b for a, b in edges if a == k] for k in nodes}
    pred = {k: [a for a, b in edges if b == k] for k in nodes}
    inp = _one([k for k, v in nodes.items() if isinstance(v, nir.Input)], "Input node")
    out = _one([k for k, v in nodes.items() if isinstance(v, nir.Output)], "Output node")
    used, read = {inp, out}, []
    layers, readout, prev = [], None, inp
    while True:
        cur = _one(succ[prev], f"successor of {prev!r}")
        read.append((prev, cur))
        if cur == out and layers:
            break
        wb = _weights(nodes[cur])
        if wb is None or wb[0].ndim != 2:
            raise ValueError(
                f"Node {cur!r} is a {type(nodes[cur]).__name__} where an Affine or Linear "
                "layer was expected; from_nir reads Affine/Linear -> neuron block chains."
            )
        used.add(cur)
        nxt = _one(succ[cur], f"successor of {cur!r}")
        read.append((cur, nxt))
        if nxt == out:
            readout = wb
            break
        layer = _block(nxt, wb[0].shape[0], nodes, succ, pred)
        layer["affine"] = wb
        used |= layer["members"]
        read += layer["edges"]
        layers.append(layer)
        prev = layer["spike"]
        succ[prev] = [s for s in succ[prev] if s not in layer["members"]]
    if not layers:
        raise ValueError("The graph has no spiking layer between its Input and Output.")
    left = set(nodes) - used
    unread = set(edges) - set(read)
    if left or unread:
        raise ValueError(
            f"Nodes {sorted(left)} and edges {sorted(unread)} are not part of the layer chain; "
            "from_nir reads Affine/Linear -> neuron block chains only."
        )
    return layers, readout


def _uniform(values, what: str, where: str) -> float:
    v = np.asarray(values, _F64).ravel()
    if not np.allclose(v, v[0], rtol=_RTOL, atol=0.0):
        raise ValueError(
            f"{where}: {what} differs between neurons ({v.min()} to {v.max()}); this neuron "
            f"has one {what} per layer."
        )
    return float(v[0])


def _v_th(theta: float, amount: float | None, where: str) -> tuple[float, bool]:
    """``(v_th, fires_at_zero)`` from NIR's threshold (fires at v > theta) and the reset
    amount (our v_th), if the block has one."""
    theta = _F32(theta)
    up = np.nextafter(theta, _F32(np.inf))
    if amount is None:
        return float(theta), False
    v, at_zero = (up, True) if abs(amount - up) < abs(amount - theta) else (theta, False)
    if not math.isclose(amount, float(v), rel_tol=_RTOL):
        raise ValueError(
            f"{where}: threshold {float(theta)} and reset amount {amount} differ; this neuron "
            "resets by its own threshold v_th."
        )
    return float(v), at_zero


def _infer(kind: str, vals: dict, dt: float, where: str) -> tuple[Neuron, dict]:
    """A neuron (and its parameters) with the dynamics of a block's node values."""
    theta = _uniform(vals["threshold"], "threshold", where)
    if kind in ("lif", "li"):
        decay = 1.0 - dt / _uniform(vals["tau"], "tau", where)
        _check_decay(decay, where)
        if kind == "lif":
            v_th, at_zero = _v_th(theta, None, where)
            settings = dict(reset="hard", reset_order="official")
        else:
            if not math.isclose(
                dt * _uniform(vals["r"], "r", where) / (dt / (1 - decay)), 1.0, rel_tol=_RTOL
            ):
                raise ValueError(
                    f"{where}: LI with an input gain dt r / tau != 1 has no equivalent here."
                )
            k = -_uniform(vals["reset"], "reset", where)
            if math.isclose(k, theta, rel_tol=_RTOL):
                order, amount = "paper", k
            elif math.isclose(k, decay * theta, rel_tol=_RTOL):
                order, amount = "official", k / decay
            else:
                raise ValueError(f"{where}: the reset Scale {-k} is neither -v_th nor -decay v_th.")
            v_th, at_zero = _v_th(theta, amount, where)
            settings = dict(reset="soft", reset_order=order)
        surrogate = Surrogate("triangle", fires_at_zero=at_zero)
        return make_neuron("lif", decay=decay, v_th=v_th, surrogate=surrogate, **settings), {}
    decays = []
    for part in ("dendrite", "soma"):
        tau = _uniform(vals[f"tau_{part}"], f"{part} tau", where)
        gain = (
            dt * _uniform(vals[f"r_{part}"], f"{part} r", where) / (1.0 if math.isinf(tau) else tau)
        )
        if not math.isclose(gain, 1.0, rel_tol=_RTOL):
            raise ValueError(f"{where}: the {part}'s input gain dt r / tau is {gain}, not 1.")
        decays.append(1.0 if math.isinf(tau) else 1.0 - dt / tau)
    v_th, at_zero = _v_th(theta, -_uniform(vals["reset_soma"], "soma reset", where), where)
    strict = Surrogate("triangle", fires_at_zero=at_zero)
    b1, b2 = vals["b1"], vals["b2"]
    per_neuron = not (np.all(b1 == b1[0]) and np.all(b2 == b2[0]))
    g = -vals["reset_dendrite"]
    is_tclif = decays == [1.0, 1.0] and np.all((-1 < b1) & (b1 < 0)) and np.all((0 < b2) & (b2 < 1))
    if not is_tclif:  # the generalised neuron of Eq. 7-9: fixed decays, free (b1, b2)
        b = np.stack([b1, b2], -1).astype(_F32)
        neuron = make_neuron(
            "two_compartment",
            decay=tuple(decays),
            gamma=_uniform(g, "gamma", where),
            v_th=v_th,
            per_neuron=per_neuron,
            surrogate=strict,
        )
        return neuron, {"b": b if per_neuron else b[0]}
    if np.all(g == g[0]):
        order, gamma = "paper", float(g[0])
    else:
        order, gamma = "official", _uniform(g - b1 * v_th, "gamma", where)
    c = np.stack([np.log(-b1 / (1 + b1)), np.log(b2 / (1 - b2))], -1).astype(_F32)
    neuron = make_neuron(
        "tclif", gamma=gamma, v_th=v_th, per_neuron=per_neuron, reset_order=order, surrogate=strict
    )
    return neuron, {"c": c if per_neuron else c[0]}


def _from_record(rec, kind: str, vals: dict, n: int, dt: float, where: str):
    """The recorded neuron and raw parameters, if they reproduce the block's node values
    (the nodes define the dynamics; the record restores settings and raw values)."""
    try:
        neuron = NEURONS[rec["neuron"]](**{k: _unplain(v) for k, v in rec["settings"].items()})
        nparams = {k: np.asarray(v, _F32) for k, v in rec["params"].items()}
        kind_r, vals_r = _dynamics(neuron, nparams, n, dt, where)
    except (KeyError, TypeError, ValueError):
        return None
    same = kind_r == kind and set(vals_r) == set(vals)
    if not same or not all(np.allclose(vals[k], vals_r[k], rtol=1e-6, atol=1e-7) for k in vals):
        return None
    return neuron, nparams


def from_nir(graph: nir.NIRGraph | str | os.PathLike, dt: float | None = None) -> SpikingNetwork:
    """A ``SpikingNetwork`` computing what ``graph`` (or the NIR file at that path) does.

    ``dt``: the step the graph's time constants were written for; None reads the graph's
    metadata ``dt`` (``to_nir`` writes it). snnTorch exports with 1e-4; spyx with the
    ``dt`` given to its ``to_nir`` (1 by default). The graph must be a chain Input ->
    (Affine/Linear -> neuron block)* -> [Affine readout] -> Output; without a readout the
    logits are the last layer's spike counts (an identity readout). A ``LIF``'s input gain
    ``dt r / tau`` other than 1 is folded into the weights before it; a bias on a
    recurrent back-edge is read as applied at every step (as snnTorch runs it).
    Anything else is a ValueError that names the node.
    """
    if isinstance(graph, (str, os.PathLike)):
        graph = nir.read(graph)
    meta = dict(graph.metadata or {})
    record = None
    if "tclif_jax" in meta:
        record = json.loads(meta["tclif_jax"])
        if record.get("format") != FORMAT:
            record = None
    if dt is None:
        if "dt" not in meta:
            raise ValueError(
                "The graph carries no dt: pass from_nir(graph, dt=...), the step its time "
                "constants were written for (snnTorch: 1e-4; spyx: its export's dt, default 1)."
            )
        dt = float(meta["dt"])
    nodes, edges = _flatten(graph)
    layers, readout = _parse(nodes, edges)
    recs = (
        record["layers"]
        if record and len(record["layers"]) == len(layers)
        else [None] * len(layers)
    )
    neurons, typed_layers = [], []
    for i, (layer, rec) in enumerate(zip(layers, recs)):
        where = f"layer {i} ({layer['spike']})"
        w_in, b_in = layer["affine"]
        n = w_in.shape[0]
        got = _from_record(rec, layer["kind"], layer["vals"], n, dt, where) if rec else None
        neuron, nparams = got or _infer(layer["kind"], layer["vals"], dt, where)
        w_rec = layer["w_rec"]
        if layer["kind"] == "lif":  # NIR's input gain; 1 in our export and snnTorch's
            gain = (dt * layer["vals"]["r"] / layer["vals"]["tau"]).astype(_F32)
            if not np.allclose(gain, 1.0, rtol=1e-9, atol=0.0):
                w_in, b_in = w_in * gain[:, None], b_in * gain
                w_rec = None if w_rec is None else (w_rec[0] * gain[:, None], w_rec[1] * gain)
        recurrent = None
        if w_rec is not None:
            b_rec = w_rec[1]
            if rec and rec.get("b_rec") is not None:  # undo the export's fold exactly
                b0, r0 = np.asarray(rec["bias"], _F32), np.asarray(rec["b_rec"], _F32)
                if b0.shape == b_in.shape and np.array_equal(b0 + r0, b_in):
                    b_in, b_rec = b0, r0
            recurrent = typed.Dense(jnp.asarray(w_rec[0].T), jnp.asarray(b_rec))
        neurons.append(neuron)
        typed_layers.append(
            typed.LayerParams(
                typed.Dense(jnp.asarray(w_in.T), jnp.asarray(b_in)),
                recurrent,
                {k: jnp.asarray(nparams[k]) for k in sorted(nparams)},
            )
        )
    last = typed_layers[-1].dense.kernel.shape[1]
    if readout is None:
        readout = (np.eye(last, dtype=_F32), np.zeros(last, _F32))
    net = record["network"] if record else {}
    config = NetworkConfig(
        in_features=int(layers[0]["affine"][0].shape[1]),
        hidden=tuple(int(l.dense.kernel.shape[1]) for l in typed_layers),
        num_classes=int(readout[0].shape[0]),
        **_neuron_fields(net, neurons),
        recurrent=tuple(l.recurrent is not None for l in typed_layers),
        dropout=float(net.get("dropout") or 0.0),
        readout=net.get("readout") or "sum",
        time_steps=int(net.get("time_steps") or 0),
    )
    model = from_config(config)
    like = parameters(model)
    expect = typed.from_state(like)
    for i, (got, want) in enumerate(zip(typed_layers, expect.layers)):
        for k in want.neuron:
            if got.neuron[k].shape != want.neuron[k].shape:
                raise ValueError(
                    f"layer {i}: neuron parameter {k!r} has shape {got.neuron[k].shape}, the "
                    f"neuron needs {want.neuron[k].shape}."
                )
    new = typed.NetworkParams(
        tuple(typed_layers), typed.Dense(jnp.asarray(readout[0].T), jnp.asarray(readout[1]))
    )
    nnx.update(model, typed.to_state(new, like))
    return model


def _neuron_fields(net: dict, neurons: list[Neuron]) -> dict[str, Any]:
    """``neuron`` and ``neuron_settings`` for the config: the recorded name and settings
    where they build every layer's neuron, else the built neurons."""
    name = net.get("neuron")
    if name:
        settings = {k: _unplain(v) for k, v in (net.get("neuron_settings") or {}).items()}
        try:
            built = make_neuron(name, **settings)
        except (TypeError, ValueError):
            built = None
        if built is not None and all(n == built for n in neurons):
            return {"neuron": name, "neuron_settings": settings}
    return {"neuron": tuple(neurons)}
