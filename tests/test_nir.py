"""NIR export and import (``tclif_jax.nir``): exact round trips, an independent NIR
executor, refusals, and what snnTorch and spyx make of the graphs (and we of theirs).

The executor below is written from NIR's equations alone: a node sums its inputs, a
back-edge (into a node that dominates the edge's source) carries the previous step's
output, LI/LIF/I are Euler steps of length dt, Threshold and LIF fire at v > threshold.
It runs in float64 numpy and shares no code with the library.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

nir = pytest.importorskip("nir")

from tclif_jax import models, surrogate  # noqa: E402
from tclif_jax import params as typed  # noqa: E402
from tclif_jax.config import NetworkConfig  # noqa: E402
from tclif_jax.layers import SpikingDense  # noqa: E402
from tclif_jax.models import from_config, from_preset, parameters  # noqa: E402
from tclif_jax.neurons import LIF, TCLIF  # noqa: E402
from tclif_jax.nir import REFUSED, from_nir, to_nir  # noqa: E402

T, B, F = 30, 2, 3
STRICT = surrogate.Surrogate("triangle", fires_at_zero=False)

# Every neuron NIR can express: (registry name, settings).
VARIANTS = {
    "lif-hard": ("lif", dict(reset="hard")),
    "lif-soft-official": ("lif", dict(reset="soft")),
    "lif-soft-paper": ("lif", dict(reset="soft", reset_order="paper")),
    "lif-learned-decay": ("lif", dict(reset="soft", learn_decay=True, decay=0.7)),
    "plif": ("plif", {}),
    "tclif-official": ("tclif", dict(gamma=0.7, v_th=1.5)),
    "tclif-paper": ("tclif", dict(gamma=0.7, v_th=1.5, reset_order="paper")),
    "tclif-per-neuron-official": ("tclif", dict(per_neuron=True)),
    "tclif-per-neuron-paper": ("tclif", dict(per_neuron=True, reset_order="paper")),
    "two-compartment-leaky": ("two_compartment", dict(decay=(0.9, 0.8), gamma=0.3)),
    "two-compartment-per-neuron": (
        "two_compartment",
        dict(decay=(1.0, 0.9), init_b=(0.2, 0.5), per_neuron=True),
    ),
}


def _inputs(features=F, steps=T, seed=0):
    return np.asarray(jax.random.normal(jax.random.key(seed), (B, steps, features)) * 3.0)


def _spread_c(model, seed=1):
    """Give every per-neuron TC-LIF c its own value (at init they are all equal), and
    deeper layers 4x the init weights, so that every layer fires."""
    like = parameters(model)
    p = typed.from_state(like)
    layers = []
    for i, lp in enumerate(p.layers):
        if i:
            lp = lp._replace(dense=lp.dense._replace(kernel=4.0 * lp.dense.kernel))
        for key, c in lp.neuron.items():  # TC-LIF's c, the two-compartment b
            if c.ndim == 2:
                noise = jax.random.uniform(
                    jax.random.key(seed + i), c.shape, minval=-0.3, maxval=0.3
                )
                lp = lp._replace(neuron={key: c + noise})
        layers.append(lp)
    nnx.update(model, typed.to_state(p._replace(layers=tuple(layers)), like))
    return model


def _net(name, settings, recurrent=(), hidden=(8, 8), seed=1):
    cfg = NetworkConfig(F, hidden, 4, name, settings, recurrent=recurrent)
    return _spread_c(from_config(cfg, seed=seed))


_apply = jax.jit(models.apply, static_argnums=0, static_argnames=("record",))


def _run(model, x):
    """``(logits, aux)`` with the spikes recorded; jitted per config, so a model and its
    round trip (equal configs) compile once."""
    return _apply(model.config, parameters(model), jnp.asarray(x), record=True)


def _fires_everywhere(aux):
    rates = [float(np.mean(s)) for s in aux["spikes"]]
    assert all(r > 0.01 for r in rates), rates  # else the comparison proves nothing


# ----------------------------------------------------------------------------- executor


def dominators(graph):
    nodes, edges = graph.nodes, graph.edges
    src = next(k for k, v in nodes.items() if isinstance(v, nir.Input))
    dom = {k: set(nodes) for k in nodes}
    dom[src] = {src}
    changed = True
    while changed:
        changed = False
        for k in nodes:
            preds = [dom[a] for a, b in edges if b == k]
            new = {k} | (set.intersection(*preds) if preds and k != src else set())
            if k != src and new != dom[k]:
                dom[k], changed = new, True
    return dom


def back_edges(graph):
    dom = dominators(graph)
    return {(a, b) for a, b in graph.edges if b in dom[a]}


def run_nir(graph, x, dt):
    """Run ``graph`` on batch-major ``x (B, T, F)``: every node's outputs ``(B, T, n)``."""
    nodes, edges = graph.nodes, graph.edges
    back = back_edges(graph)
    preds = {k: [a for a, b in edges if b == k] for k in nodes}
    indeg = {k: sum((a, k) not in back for a in preds[k]) for k in nodes}
    order, ready = [], [k for k in nodes if indeg[k] == 0]
    while ready:
        k = ready.pop(0)
        order.append(k)
        for a, b in edges:
            if a == k and (a, b) not in back:
                indeg[b] -= 1
                if indeg[b] == 0:
                    ready.append(b)
    assert len(order) == len(nodes), "the forward edges must form a DAG"
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    state, prev, hist = {}, {}, {k: [] for k in nodes}
    for t in range(x.shape[1]):
        now = {}
        for k in order:
            node = nodes[k]
            if isinstance(node, nir.Input):
                now[k] = f64(x[:, t])
                continue
            u = sum(prev.get(a, 0.0) if (a, k) in back else now[a] for a in preds[k])
            if isinstance(node, nir.Affine):
                y = u @ f64(node.weight).T + f64(node.bias)
            elif isinstance(node, nir.Linear):
                y = u @ f64(node.weight).T
            elif isinstance(node, nir.Scale):
                y = u * f64(node.scale)
            elif isinstance(node, nir.I):
                y = state[k] = state.get(k, 0.0) + dt * f64(node.r) * u
            elif isinstance(node, (nir.LI, nir.LIF)):
                v = state.get(k, 0.0)
                v = v + dt / f64(node.tau) * (f64(node.v_leak) - v + f64(node.r) * u)
                if isinstance(node, nir.LIF):
                    y = (v > f64(node.v_threshold)).astype(np.float64)
                    v = np.where(y > 0, f64(node.v_reset), v)
                else:
                    y = v
                state[k] = v
            elif isinstance(node, nir.Threshold):
                y = (u > f64(node.threshold)).astype(np.float64)
            elif isinstance(node, nir.Output):
                y = u
            else:
                raise NotImplementedError(type(node).__name__)
            now[k] = y
        prev = now
        for k, v in now.items():
            hist[k].append(v)
    return {k: np.stack(v, 1) for k, v in hist.items()}


def spike_nodes(graph):
    import json

    return [layer["spike"] for layer in json.loads(graph.metadata["tclif_jax"])["layers"]]


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("variant", VARIANTS)
def test_exact_for_every_exportable_neuron(variant):
    # A recurrent layer, then a feed-forward one.
    model = _net(*VARIANTS[variant], recurrent=(True, False))
    x = _inputs()
    logits, aux = _run(model, x)
    _fires_everywhere(aux)
    dt = 0.5  # any step: tau and r are written for it
    graph = to_nir(model, dt=dt)
    # The round trip: the same config and parameters, so the same logits bit for bit.
    back = from_nir(graph)
    assert back.config == model.config
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, parameters(back), parameters(model))))
    np.testing.assert_array_equal(np.asarray(_run(back, x)[0]), np.asarray(logits))
    # The independent NIR executor gives our spikes.
    out = run_nir(graph, x, dt)
    for name, ours in zip(spike_nodes(graph), aux["spikes"]):
        np.testing.assert_array_equal(out[name], np.asarray(ours))
    np.testing.assert_allclose(out["output"].sum(1), np.asarray(logits), rtol=0, atol=1e-4)
    # Without our metadata record, from_nir reads every value from the nodes.
    del graph.metadata["tclif_jax"]
    bare_logits, bare_aux = _run(from_nir(graph), x)
    for ours, theirs in zip(aux["spikes"], bare_aux["spikes"]):
        np.testing.assert_array_equal(np.asarray(theirs), np.asarray(ours))
    np.testing.assert_allclose(np.asarray(bare_logits), np.asarray(logits), rtol=0, atol=1e-5)


def test_preset_round_trip_and_executor():
    for neuron in ("tclif",):
        model = _spread_c(from_preset("smnist-rec-40", neuron=neuron, hidden=(12, 8, 6)))
        x = _inputs(features=1, steps=T)
        logits, aux = _run(model, x)
        _fires_everywhere(aux)
        graph = to_nir(model)
        back = from_nir(graph)
        assert back.config == model.config
        np.testing.assert_array_equal(np.asarray(_run(back, x)[0]), np.asarray(logits))
        out = run_nir(graph, x, 1.0)
        for name, ours in zip(spike_nodes(graph), aux["spikes"]):
            np.testing.assert_array_equal(out[name], np.asarray(ours))


def test_user_built_stack():
    rngs = nnx.Rngs(3)
    layers = [
        SpikingDense(F, 8, "lif", reset="hard", rngs=rngs),
        SpikingDense(8, 8, TCLIF(per_neuron=True, reset_order="paper"), recurrent=True, rngs=rngs),
        SpikingDense(8, 6, "lif", reset="soft", recurrent=True, rngs=rngs),
    ]
    x = _inputs()
    h = x
    for layer in layers:
        h = layer.scan(h)
    assert float(jnp.mean(h)) > 0.01
    graph = to_nir(layers)
    assert graph.metadata["readout"] == "none: the output is the last layer's spikes"
    back = from_nir(graph)
    # No readout in a bare stack: the logits are the last layer's spike counts.
    logits, aux = back(x, record=True)
    np.testing.assert_array_equal(np.asarray(aux["spikes"][-1]), np.asarray(h))
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(h.sum(1)))
    assert [n.name for n in back.config.neurons] == ["lif", "tclif", "lif"]
    assert back.config.recurrent == (False, True, True)


def test_per_layer_neurons_round_trip():
    neurons = (LIF(reset="hard", decay=0.9), TCLIF(per_neuron=True, v_th=1.2))
    model = _spread_c(from_config(NetworkConfig(F, (8, 8), 4, neurons, recurrent=(True,))))
    x = _inputs()
    back = from_nir(to_nir(model))
    assert back.config == model.config
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(model(x)))


def test_write_read_round_trip(tmp_path):
    model = _net(*VARIANTS["tclif-per-neuron-official"], recurrent=(True, False))
    path = tmp_path / "net.nir"
    nir.write(path, to_nir(model, dt=1e-3))
    graph = nir.read(path)
    assert float(graph.metadata["dt"]) == 1e-3
    x = _inputs()
    np.testing.assert_array_equal(np.asarray(from_nir(graph)(x)), np.asarray(model(x)))
    np.testing.assert_array_equal(np.asarray(from_nir(str(path))(x)), np.asarray(model(x)))


# ----------------------------------------------------------------------------- the graph


def test_tclif_graph_structure_and_values():
    model = _net("tclif", dict(gamma=0.7, v_th=1.5), recurrent=(True, False))
    p = typed.from_state(parameters(model))
    g = to_nir(model, dt=0.25)
    kinds = {k: type(v).__name__ for k, v in g.nodes.items() if k.startswith("l0.")}
    assert kinds == {
        "l0.affine": "Affine",
        "l0.dendrite": "I",
        "l0.b2": "Scale",
        "l0.soma": "I",
        "l0.spike": "Threshold",
        "l0.b1": "Scale",
        "l0.reset_dendrite": "Scale",
        "l0.reset_soma": "Scale",
        "l0.w_rec": "Linear",
    }
    assert {e for e in back_edges(g) if e[0].startswith("l0.")} == {
        ("l0.b1", "l0.dendrite"),
        ("l0.reset_dendrite", "l0.dendrite"),
        ("l0.reset_soma", "l0.soma"),
        ("l0.w_rec", "l0.dendrite"),
    }
    n = g.nodes
    np.testing.assert_array_equal(n["l0.dendrite"].r, np.full(8, 4.0))  # 1 / dt
    b1, b2 = (
        -1 / (1 + np.exp(-p.layers[0].neuron["c"][0])),
        1 / (1 + np.exp(-p.layers[0].neuron["c"][1])),
    )
    np.testing.assert_allclose(n["l0.b1"].scale, np.full(8, b1), rtol=1e-6)
    np.testing.assert_allclose(n["l0.b2"].scale, np.full(8, b2), rtol=1e-6)
    # Official order: the dendrite reads the soma after its reset, gamma' = gamma + b1 v_th.
    np.testing.assert_allclose(
        n["l0.reset_dendrite"].scale, np.full(8, -(0.7 + b1 * 1.5)), rtol=1e-6
    )
    np.testing.assert_array_equal(n["l0.reset_soma"].scale, np.full(8, -1.5, np.float32))
    # Ours fires at U >= v_th, NIR at v > threshold: the largest float32 below v_th.
    np.testing.assert_array_equal(n["l0.spike"].threshold, np.full(8, np.float32(1.4999999)))
    assert np.nextafter(np.float32(1.4999999), np.float32(2)) == np.float32(1.5)
    # Weights (out, in); b_rec folded into the feed-forward bias, Linear on the back-edge.
    np.testing.assert_array_equal(n["l0.affine"].weight, np.asarray(p.layers[0].dense.kernel).T)
    np.testing.assert_array_equal(
        n["l0.affine"].bias, np.asarray(p.layers[0].dense.bias + p.layers[0].recurrent.bias)
    )
    np.testing.assert_array_equal(n["l0.w_rec"].weight, np.asarray(p.layers[0].recurrent.kernel).T)
    np.testing.assert_array_equal(n["readout"].weight, np.asarray(p.readout.kernel).T)
    assert g.metadata["dt"] == 0.25


def test_lif_graph_values():
    hard = to_nir(_net("lif", dict(reset="hard", decay=0.8)), dt=1e-4).nodes["l0.lif"]
    np.testing.assert_allclose(hard.tau, np.full(8, 5e-4), rtol=1e-12)  # dt / (1 - beta)
    np.testing.assert_allclose(hard.r, np.full(8, 5.0), rtol=1e-12)  # tau / dt
    np.testing.assert_array_equal(hard.v_reset, np.zeros(8))
    soft = to_nir(_net("lif", dict(reset="soft", decay=0.8, v_th=2.0))).nodes
    np.testing.assert_allclose(soft["l0.reset"].scale, np.full(8, -1.6), rtol=1e-6)  # -beta v_th
    paper = _net("lif", dict(reset="soft", reset_order="paper", v_th=2.0, surrogate=STRICT))
    nodes = to_nir(paper).nodes
    np.testing.assert_array_equal(nodes["l0.reset"].scale, np.full(8, -2.0, np.float32))
    np.testing.assert_array_equal(nodes["l0.spike"].threshold, np.full(8, 2.0, np.float32))


@pytest.mark.parametrize(
    "name, settings",
    [
        ("alif", {}),
        ("alif_official", {}),
        ("glif", {}),
        ("lif", dict(reset="hard", reset_order="paper")),
    ],
)
def test_refusals_name_the_reason(name, settings):
    model = from_config(NetworkConfig(F, (4,), 2, name, settings))
    with pytest.raises(ValueError) as err:
        to_nir(model)
    message = str(err.value)
    assert "\n" not in message
    if name in REFUSED:
        assert message == (
            f"layer 0: NIR cannot express {name!r}: {REFUSED[name]}, and NIR has no product node."
        )
    else:
        assert message.startswith(
            "layer 0: NIR cannot express LIF with reset='hard' and reset_order='paper': "
            "U = beta U - U S + I subtracts the potential times the spike"
        )


def test_bad_input():
    with pytest.raises(ValueError, match=r"^to_nir takes a SpikingNetwork, a SpikingDense or a "):
        to_nir([1, 2])


def test_imports_the_nir_package_not_itself():
    import tclif_jax.nir as ours
    from tclif_jax.nir import export, load

    assert export.nir is nir and load.nir is nir
    assert ours.__file__ != nir.__file__ and hasattr(nir, "NIRGraph")


def test_from_nir_errors():
    graph = to_nir(_net("lif", dict(reset="hard")))
    del graph.metadata["dt"]
    with pytest.raises(
        ValueError, match=r"^The graph carries no dt: pass from_nir\(graph, dt=...\)"
    ):
        from_nir(graph)
    cuba = nir.NIRGraph.from_list(
        nir.Affine(np.ones((2, 3), np.float32), np.zeros(2, np.float32)),
        nir.CubaLIF(
            tau_syn=np.ones(2),
            tau_mem=np.ones(2),
            r=np.ones(2),
            v_leak=np.zeros(2),
            v_threshold=np.ones(2),
        ),
    )
    with pytest.raises(ValueError, match=r"^Node 'cubalif' is a CubaLIF: from_nir reads"):
        from_nir(cuba, dt=1.0)
    with pytest.raises(ValueError, match=r"^dt=0.0 must be a finite step > 0"):
        to_nir(_net("lif", {}), dt=0.0)


# ----------------------------------------------------------------------------- nirtorch


@pytest.mark.parametrize("order", ["official", "paper"])
def test_nirtorch_interpreter_runs_tclif_exactly(order):
    # nirtorch's generic interpreter, given one plain module per NIR primitive, runs the
    # TC-LIF graph under the same convention (a back-edge carries the previous step).
    torch = pytest.importorskip("torch")
    nirtorch = pytest.importorskip("nirtorch")

    def tensor(a):
        return torch.tensor(np.array(a, np.float64))

    class Integrator(torch.nn.Module):
        def __init__(self, gain):
            super().__init__()
            self.gain = tensor(gain)

        def forward(self, x, state=None):
            v = (0.0 if state is None else state) + self.gain * x
            return v, v

    class Op(torch.nn.Module):
        def __init__(self, kind, a, b=0.0):
            super().__init__()
            self.kind, self.a, self.b = kind, tensor(a), tensor(b)

        def forward(self, x):
            if self.kind == "affine":
                return x @ self.a.T + self.b
            if self.kind == "scale":
                return x * self.a
            return (x > self.a).double()  # threshold

    dt = 0.5
    node_map = {
        nir.I: lambda n: Integrator(dt * n.r),
        nir.Scale: lambda n: Op("scale", n.scale),
        nir.Threshold: lambda n: Op("threshold", n.threshold),
        nir.Affine: lambda n: Op("affine", n.weight, n.bias),
        nir.Linear: lambda n: Op("affine", n.weight),
    }
    model = _net("tclif", dict(reset_order=order), recurrent=(True, False))
    x = _inputs()
    net = nirtorch.nir_to_torch(to_nir(model, dt=dt), node_map, dtype=torch.float64)
    out = _torch_run(net, x.astype(np.float64))
    np.testing.assert_allclose(out.sum(1), np.asarray(model(x)), rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- snnTorch


def _torch_run(net, x):
    """Run an snnTorch/nirtorch module step by step: per-step outputs ``(B, T, C)``."""
    import torch

    state, outs = None, []
    for t in range(x.shape[1]):
        x_t = torch.from_numpy(np.ascontiguousarray(x[:, t]))
        y = net(x_t) if state is None else net(x_t, state)
        if isinstance(y, tuple):
            y, state = y
        outs.append(y.detach().numpy())
    return np.stack(outs, 1)


def test_snntorch_runs_our_hard_lif_exactly():
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    model = _net("lif", dict(reset="hard"))
    x = _inputs()
    logits = np.asarray(model(x))
    # snnTorch reads every LIF with its own dt = 1e-4 (beta = 1 - 1e-4 / tau).
    out = _torch_run(import_from_nir(to_nir(model, dt=1e-4)), x)
    np.testing.assert_allclose(out.sum(1), logits, rtol=0, atol=1e-5)
    # Exported for dt = 1 instead, snnTorch leaks by 1e-4 / tau and rescales the threshold.
    wrong = _torch_run(import_from_nir(to_nir(model, dt=1.0)), x)
    assert np.abs(wrong.sum(1) - logits).max() > 0.1


def test_snntorch_routes_a_recurrent_layers_input_through_w_rec():
    # snnTorch wraps LIF <-> W_rec in a sub-graph with the edge (input, w_rec): the layer's
    # feed-forward current goes through W_rec too. Recorded: its output is our graph's
    # with that edge, run by the NIR executor, and not our network's.
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    model = _net("lif", dict(reset="hard"), recurrent=(False, True))
    x = _inputs()
    out = _torch_run(import_from_nir(to_nir(model, dt=1e-4)), x)
    graph = to_nir(model, dt=1e-4)
    edges = [e for e in graph.edges if e != ("l1.affine", "l1.lif")]
    edges += [("l1.affine", "l1.w_rec")]
    rerouted = nir.NIRGraph(nodes=graph.nodes, edges=edges, type_check=False)
    np.testing.assert_allclose(out, run_nir(rerouted, x, 1e-4)["output"], rtol=0, atol=1e-4)
    assert np.abs(out.sum(1) - np.asarray(model(x))).max() > 0.1


@pytest.mark.parametrize("variant", ["lif-soft-paper", "tclif-official"])
def test_snntorch_refuses_soft_reset_and_tclif(variant):
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    node = {"lif-soft-paper": "LI", "tclif-official": "I"}[variant]
    with pytest.raises(ValueError, match=rf"Unknown node type <class 'nir.ir.neuron.{node}'>"):
        import_from_nir(to_nir(_net(*VARIANTS[variant]), dt=1e-4))


def test_snntorch_export_loads_here():
    pytest.importorskip("snntorch")
    import snntorch as snn
    import torch
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    # Per-neuron beta and threshold tensors: snnTorch writes scalar ones as 0-d arrays,
    # which fail NIR's type check. reset "zero" is what its export writes (nir.LIF).
    net = torch.nn.Sequential(
        torch.nn.Linear(F, 8),
        snn.Leaky(
            beta=torch.full((8,), 0.9),
            threshold=torch.ones(8),
            reset_mechanism="zero",
            init_hidden=True,
        ),
        torch.nn.Linear(8, 6),
        snn.RLeaky(
            beta=torch.full((6,), 0.8),
            threshold=torch.ones(6),
            linear_features=6,
            reset_mechanism="zero",
            reset_delay=False,
            init_hidden=True,
        ),
        torch.nn.Linear(6, 4),
    )
    graph = export_to_nir(net, torch.zeros(F))
    model = from_nir(graph, dt=1e-4)
    assert model.config.recurrent == (False, True)
    assert [n.decay for n in model.config.neurons] == pytest.approx([0.9, 0.8], rel=1e-6)
    x = _inputs()
    logits, aux = model(x, record=True)
    _fires_everywhere(aux)
    np.testing.assert_allclose(np.asarray(logits), _torch_run(net, x).sum(1), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- spyx


def _spyx_run(graph, x, dt):
    """spyx's import and run of ``graph`` on batch-major ``x``: (layer types, outputs
    (B, T, C))."""
    import spyx.nir

    spyx_model, out = spyx.nir.from_nir(graph, jnp.swapaxes(x, 0, 1), dt=dt)
    return [type(l).__name__ for l in spyx_model.layers], np.swapaxes(np.asarray(out), 0, 1)


@pytest.mark.parametrize("rec", [(False,), (True,)])
def test_spyx_runs_hard_lif_as_soft_reset_one_step_late(rec):
    # spyx reads nir.LIF as its own LIF: spike S[t-1] emitted at step t (one step late,
    # per layer), a subtractive reset U - v_th S, the input gain r ignored. So our
    # hard-reset graph runs in spyx as our soft-reset, paper-order LIF, one step late.
    pytest.importorskip("spyx")
    hard = _net("lif", dict(reset="hard", surrogate=STRICT), recurrent=rec, hidden=(8,))
    soft = _net(
        "lif", dict(reset="soft", reset_order="paper", surrogate=STRICT), recurrent=rec, hidden=(8,)
    )
    x = _inputs()
    padded = np.concatenate([x, np.zeros((B, 1, F), np.float32)], 1)  # one more step
    kinds, out = _spyx_run(to_nir(hard), padded, 1.0)
    assert kinds == ["Linear", "RLIF" if rec[0] else "LIF", "Linear"]
    np.testing.assert_allclose(out[:, 1:].sum(1), np.asarray(soft(x)), rtol=0, atol=1e-5)
    assert np.abs(out[:, 1:].sum(1) - np.asarray(hard(x))).max() > 0.1


def test_spyx_drops_the_soft_reset():
    # spyx turns LI -> Threshold into its reset-free PSU_LIF and skips the reset Scale:
    # its output is our graph's with the reset scaled by 0, run by the NIR executor.
    pytest.importorskip("spyx")
    model = _net("lif", dict(reset="soft", reset_order="paper"), hidden=(8,))
    x = _inputs()
    graph = to_nir(model)
    kinds, out = _spyx_run(graph, x, 1.0)
    assert kinds == ["Linear", "PSU_LIF", "Linear"]
    nodes = dict(graph.nodes, **{"l0.reset": nir.Scale(scale=np.zeros(8, np.float32))})
    no_reset = nir.NIRGraph(nodes=nodes, edges=graph.edges, type_check=False)
    np.testing.assert_allclose(out, run_nir(no_reset, x, 1.0)["output"], rtol=0, atol=1e-5)
    assert np.abs(out.sum(1) - np.asarray(model(x))).max() > 0.1


def test_spyx_drops_tclif():
    # spyx has no I, Scale or Threshold module: it drops them without a word, leaving
    # the two Affine layers back to back (no neuron at all).
    pytest.importorskip("spyx")
    model = _net("tclif", {}, hidden=(8,))
    p = typed.from_state(parameters(model))
    x = _inputs()
    kinds, out = _spyx_run(to_nir(model), x, 1.0)
    assert kinds == ["Linear", "Linear"]
    linear = (
        x @ np.asarray(p.layers[0].dense.kernel) + np.asarray(p.layers[0].dense.bias)
    ) @ np.asarray(p.readout.kernel) + np.asarray(p.readout.bias)
    np.testing.assert_allclose(out, linear, rtol=1e-5, atol=1e-5)


def test_spyx_export_loads_here():
    # spyx writes its LIF as nir.LIF(tau = dt / (1 - beta), r = beta): read by NIR's
    # equations (as here), the input gain is dt r / tau = beta (1 - beta), folded into
    # the weights. The loaded network computes what the NIR executor computes.
    pytest.importorskip("spyx")
    import spyx.nir
    import spyx.nn

    rngs = nnx.Rngs(0)
    net = spyx.nn.Sequential(
        nnx.Linear(F, 8, rngs=rngs),
        spyx.nn.LIF((8,), beta=0.9, rngs=rngs),
        nnx.Linear(8, 4, rngs=rngs),
    )
    graph = spyx.nir.to_nir(net, {"input": np.array([F])}, {"output": np.array([4])}, dt=1.0)
    model = from_nir(graph, dt=1.0)
    assert model.config.neurons[0].decay == pytest.approx(0.9, rel=1e-6)
    x = _inputs() * 10  # the folded gain is 0.09
    logits, aux = model(x, record=True)
    _fires_everywhere(aux)
    np.testing.assert_allclose(
        np.asarray(logits), run_nir(graph, x, 1.0)["output"].sum(1), rtol=0, atol=1e-4
    )
    # spyx writes a recurrent layer's sub-graph with the edge (input, w_rec): its input
    # would pass through W_rec, which no layer here computes.
    rec = spyx.nn.Sequential(
        nnx.Linear(F, 8, rngs=rngs),
        spyx.nn.RLIF((8,), beta=0.9, rngs=rngs),
        nnx.Linear(8, 4, rngs=rngs),
    )
    rec_graph = spyx.nir.to_nir(rec, {"input": np.array([F])}, {"output": np.array([4])}, dt=1.0)
    with pytest.raises(ValueError, match=r"^Node 'layer_1/layer_1.w_rec' is a Linear"):
        from_nir(rec_graph, dt=1.0)


def test_dataclass_settings_survive():
    # The record keeps every setting, those NIR has no field for included.
    neuron = dataclasses.replace(
        TCLIF(), detach_reset=True, surrogate=surrogate.Surrogate("sigmoid", 4.0)
    )
    model = from_config(NetworkConfig(F, (4,), 2, (neuron,)))
    assert from_nir(to_nir(model)).config.neurons == (neuron,)
