"""``to_nir``: a network as a NIR graph (conventions: ``tclif_jax.nir``)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import nir
import numpy as np
from flax import nnx

from tclif_jax import params as typed
from tclif_jax.layers import SpikingDense
from tclif_jax.models import SpikingNetwork, parameters
from tclif_jax.neurons import Neuron, coupling
from tclif_jax.nir.common import _F32, _F64, _READOUTS, EXPORTABLE, FORMAT, REFUSED
from tclif_jax.surrogate import Surrogate

# ----------------------------------------------------------------------------- export


def _firing_threshold(neuron: Neuron) -> np.float32:
    """NIR's threshold for ``neuron``: NIR fires at v > theta, ours at U >= v_th (or U >
    v_th for a strict surrogate)."""
    v = _F32(neuron.v_th)
    return np.nextafter(v, _F32(-np.inf)) if neuron.surrogate.fires_at_zero else v


def _check_decay(decay: float, where: str) -> None:
    if not 0.0 < decay < 1.0:
        raise ValueError(
            f"{where}: decay={decay} has no NIR time constant (tau = dt / (1 - decay) needs "
            "decay in (0, 1)); use a decay in (0, 1)."
        )


def _dynamics(neuron: Neuron, nparams: dict, n: int, dt: float, where: str):
    """``(kind, values)``: the NIR block of one layer's neuron and its node values, each
    ``(n,)``. ``kind``: ``"lif"`` (one ``nir.LIF``), ``"li"`` (soft reset) or ``"tc"``."""

    def full(value, dtype=_F32):
        return np.full((n,), value, dtype) if np.ndim(value) == 0 else np.asarray(value, dtype)

    name = neuron.name
    if name in REFUSED:
        raise ValueError(
            f"{where}: NIR cannot express {name!r}: {REFUSED[name]}, and NIR has no product node."
        )
    theta = full(_firing_threshold(neuron))
    if name in ("lif", "plif"):
        if name == "plif":  # as plif_step computes it, in float32
            decay = float(1.0 - jax.nn.sigmoid(jnp.asarray(nparams["w"], jnp.float32)))
        elif neuron.learn_decay:
            decay = float(jax.nn.sigmoid(jnp.asarray(nparams["decay_logit"], jnp.float32)))
        else:
            decay = float(neuron.decay)
        _check_decay(decay, where)
        tau = dt / (1.0 - decay)
        common = dict(tau=full(tau, _F64), r=full(tau / dt, _F64), threshold=theta)
        if name == "plif" or neuron.reset == "hard":
            if name == "lif" and neuron.reset_order == "paper":
                raise ValueError(
                    f"{where}: NIR cannot express LIF with reset='hard' and "
                    "reset_order='paper': U = beta U - U S + I subtracts the potential times "
                    "the spike (a product; NIR's LIF resets to 0 before the leak); "
                    "reset_order='official' is exactly nir.LIF."
                )
            return "lif", common
        k = decay if neuron.reset_order == "official" else 1.0
        return "li", common | {"reset": full(-k * neuron.v_th)}
    if name in ("tclif", "two_compartment"):
        if name == "tclif":
            b1, b2 = (np.asarray(b) for b in coupling(jnp.asarray(nparams["c"], jnp.float32)))
            decays = (1.0, 1.0)
            official = neuron.reset_order == "official"
        else:
            b1, b2 = nparams["b"][..., 0], nparams["b"][..., 1]
            decays, official = tuple(float(a) for a in neuron.decay), False
        b1, b2 = full(b1), full(b2)
        gamma = neuron.gamma + (b1.astype(_F64) * neuron.v_th if official else 0.0)
        values = dict(
            b1=b1,
            b2=b2,
            threshold=theta,
            reset_dendrite=full(-gamma),
            reset_soma=full(-neuron.v_th),
        )
        for part, a in zip(("dendrite", "soma"), decays):
            if a == 1.0:  # an integrator: I(r = 1/dt)
                tau = np.inf
            else:
                _check_decay(a, f"{where} ({part})")
                tau = dt / (1.0 - a)
            values[f"tau_{part}"] = full(tau, _F64)
            values[f"r_{part}"] = full(1.0 / dt if a == 1.0 else tau / dt, _F64)
        return "tc", values
    raise ValueError(
        f"{where}: neuron {name!r} has no NIR export; exportable: {', '.join(EXPORTABLE)}."
    )


def _block_nodes(kind: str, values: dict, n: int, p: str):
    """The NIR nodes of one neuron block (names prefixed ``p``), its entry node, its spike
    node and its edges: the forward path first, then the back-edges."""
    zeros = np.zeros((n,), _F32)
    if kind == "lif":
        lif = nir.LIF(
            tau=values["tau"],
            r=values["r"],
            v_leak=zeros,
            v_threshold=values["threshold"],
            v_reset=zeros.copy(),
        )
        return {f"{p}.lif": lif}, f"{p}.lif", f"{p}.lif", []
    if kind == "li":
        nodes = {
            f"{p}.li": nir.LI(tau=values["tau"], r=values["r"], v_leak=zeros),
            f"{p}.spike": nir.Threshold(threshold=values["threshold"]),
            f"{p}.reset": nir.Scale(scale=values["reset"]),
        }
        edges = [(f"{p}.li", f"{p}.spike"), (f"{p}.spike", f"{p}.reset"), (f"{p}.reset", f"{p}.li")]
        return nodes, f"{p}.li", f"{p}.spike", edges

    def compartment(part):  # I for TC-LIF, LI for a leaky compartment
        tau, r = values[f"tau_{part}"], values[f"r_{part}"]
        return nir.I(r=r) if np.all(np.isinf(tau)) else nir.LI(tau=tau, r=r, v_leak=zeros.copy())

    nodes = {
        f"{p}.dendrite": compartment("dendrite"),
        f"{p}.b2": nir.Scale(scale=values["b2"]),
        f"{p}.soma": compartment("soma"),
        f"{p}.spike": nir.Threshold(threshold=values["threshold"]),
        f"{p}.b1": nir.Scale(scale=values["b1"]),
        f"{p}.reset_dendrite": nir.Scale(scale=values["reset_dendrite"]),
        f"{p}.reset_soma": nir.Scale(scale=values["reset_soma"]),
    }
    edges = [
        (f"{p}.dendrite", f"{p}.b2"),
        (f"{p}.b2", f"{p}.soma"),
        (f"{p}.soma", f"{p}.spike"),
        (f"{p}.soma", f"{p}.b1"),
        (f"{p}.b1", f"{p}.dendrite"),
        (f"{p}.spike", f"{p}.reset_dendrite"),
        (f"{p}.reset_dendrite", f"{p}.dendrite"),
        (f"{p}.spike", f"{p}.reset_soma"),
        (f"{p}.reset_soma", f"{p}.soma"),
    ]
    return nodes, f"{p}.dendrite", f"{p}.spike", edges


def _plain(value):
    """A neuron setting as JSON (a Surrogate as a dict, tuples as lists)."""
    if isinstance(value, Surrogate):
        return {"surrogate": dataclasses.asdict(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _unplain(value):
    if isinstance(value, dict) and "surrogate" in value:
        return Surrogate(**value["surrogate"])
    if isinstance(value, list):
        return tuple(_unplain(v) for v in value)
    return value


def _neuron_record(neuron: Neuron) -> dict[str, Any]:
    return {f.name: _plain(getattr(neuron, f.name)) for f in dataclasses.fields(neuron) if f.init}


def _stack(model) -> tuple[int, list[Neuron], list[typed.LayerParams], typed.Dense | None, dict]:
    """What ``to_nir`` exports from a ``SpikingNetwork`` or a sequence of ``SpikingDense``:
    input width, neurons, typed layer parameters, readout (None for a bare stack) and the
    network's own record."""
    if isinstance(model, SpikingNetwork):
        p = typed.from_state(parameters(model))
        cfg = model.config
        net = {
            "readout": cfg.readout,
            "dropout": cfg.dropout,
            "time_steps": cfg.time_steps,
            "neuron": cfg.neuron if isinstance(cfg.neuron, str) else None,
            "neuron_settings": {k: _plain(v) for k, v in cfg.neuron_settings},
        }
        return cfg.in_features, list(cfg.neurons), list(p.layers), p.readout, net
    layers = [model] if isinstance(model, SpikingDense) else list(model)
    if not layers or not all(isinstance(l, SpikingDense) for l in layers):
        raise ValueError(
            f"to_nir takes a SpikingNetwork, a SpikingDense or a sequence of SpikingDense "
            f"layers, got {type(model).__name__}."
        )
    lps = [typed.from_state(nnx.to_pure_dict(nnx.state(l, nnx.Param))) for l in layers]
    return layers[0].in_features, [l.neuron for l in layers], lps, None, {"readout": None}


def to_nir(model, dt: float = 1.0) -> nir.NIRGraph:
    """The NIR graph of ``model`` (a ``SpikingNetwork``, or a ``SpikingDense`` stack,
    whose graph ends at the last layer's spikes), exact under the module's convention.

    ``dt``: the step (in the unit of NIR's time constants) the graph's ``tau`` and ``r``
    are written for; ``dt=1`` reads ``tau`` in steps, snnTorch imports with ``dt=1e-4``.
    Node names: ``input``, ``l{i}.affine``, ``l{i}.<neuron nodes>``, ``l{i}.w_rec``,
    ``readout``, ``output``. A neuron NIR cannot express is a ValueError saying why.
    """
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt={dt} must be a finite step > 0 (1.0: time constants in steps).")
    in_features, neurons, layers, readout, net = _stack(model)
    nodes = {"input": nir.Input(input_type={"input": np.array([in_features])})}
    forward, back, records = [], [], []
    prev = "input"
    for i, (neuron, lp) in enumerate(zip(neurons, layers)):
        p = f"l{i}"
        n = int(lp.dense.kernel.shape[1])
        nparams = {k: np.asarray(v) for k, v in lp.neuron.items()}
        kind, values = _dynamics(neuron, nparams, n, dt, f"layer {i}")
        bias = np.asarray(lp.dense.bias, _F32)
        b_in, b_rec = bias, None
        if lp.recurrent is not None:  # b_rec at every step, the first included
            b_rec = np.asarray(lp.recurrent.bias, _F32)
            bias = bias + b_rec
        nodes[f"{p}.affine"] = nir.Affine(weight=np.asarray(lp.dense.kernel, _F32).T, bias=bias)
        block, entry, spike, edges = _block_nodes(kind, values, n, p)
        nodes.update(block)
        forward += [(prev, f"{p}.affine"), (f"{p}.affine", entry)]
        chain = _chain(edges, entry, spike)
        forward += chain
        back += [e for e in edges if e not in chain]
        if lp.recurrent is not None:
            nodes[f"{p}.w_rec"] = nir.Linear(weight=np.asarray(lp.recurrent.kernel, _F32).T)
            back += [(spike, f"{p}.w_rec"), (f"{p}.w_rec", entry)]
        records.append(
            {
                "neuron": neuron.name,
                "settings": _neuron_record(neuron),
                "params": {k: v.tolist() for k, v in nparams.items()},
                # the biases before the fold, to restore them exactly
                "bias": None if b_rec is None else b_in.tolist(),
                "b_rec": None if b_rec is None else b_rec.tolist(),
                "spike": spike,
            }
        )
        prev = spike
    if readout is not None:
        nodes["readout"] = nir.Affine(
            weight=np.asarray(readout.kernel, _F32).T, bias=np.asarray(readout.bias, _F32)
        )
        forward.append((prev, "readout"))
        prev = "readout"
    width = int(readout.kernel.shape[1]) if readout is not None else n
    nodes["output"] = nir.Output(output_type={"output": np.array([width])})
    forward.append((prev, "output"))
    record = {
        "format": FORMAT,
        "dt": dt,
        "in_features": in_features,
        "network": net,
        "layers": records,
    }
    metadata = {
        "dt": dt,
        "readout": _READOUTS[net["readout"]],
        "tclif_jax": json.dumps(record, default=_json_value),
    }
    # Forward edges first: importers that walk the first edge out of each node (spyx)
    # then follow the layers, not a reset loop.
    return nir.NIRGraph(nodes=nodes, edges=forward + back, metadata=metadata)


def _json_value(value):
    # numpy scalars and arrays given as settings (e.g. v_th=np.float32(1.0))
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"Setting {value!r} of type {type(value).__name__} has no JSON form.")


def _chain(edges, entry, spike):
    """The edges of the path entry -> ... -> spike within a block (in ``edges``' order)."""
    path, node = [], entry
    while node != spike:
        edge = next(e for e in edges if e[0] == node)
        path.append(edge)
        node = edge[1]
    return path
