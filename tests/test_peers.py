"""benchmarks.peers: our side of both settings at tiny size, the peers' code paths, and (when
spyx, snnTorch or norse are installed) that every library's LIF network computes the same
spikes on the same weights, so that the timings compare the same work.

The peers are an optional extra (``pip install -e ".[bench]"``), never required here: each
test that needs one skips cleanly without it.
"""

import json

import numpy as np
import pytest

from benchmarks import peers
from benchmarks.configs import peers as peers_config
from tclif_jax.surrogate import Surrogate

# norse registers its parameter tuples with torch's pytree, which warns (harmlessly)
pytestmark = pytest.mark.filterwarnings("ignore:PyTree type:UserWarning")


def _cli(cli_args, timeout=600):
    from tests.conftest import run_module

    out = run_module("benchmarks.peers", *cli_args, "--config.json=True", timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_config_opens_with_its_command_and_checks_values():
    doc = peers_config.__doc__.lstrip().splitlines()[2].strip()
    assert doc.startswith("python -m benchmarks.peers --config=benchmarks/configs/peers.py:")
    config = peers_config.get_config()
    assert config.setting == "a" and config.malloc_tuning is True and config.json is False
    assert peers_config.get_config("setting=b,n=64,json=True").n == 64
    with pytest.raises(ValueError, match="Unknown config argument 'bogus'"):
        peers_config.get_config("bogus=1")
    with pytest.raises(ValueError, match="choose one of: a, b"):
        peers_config.get_config("setting=c")
    with pytest.raises(ValueError, match="snntorch"):
        peers_config.get_config("libraries=brian2")
    with pytest.raises(ValueError, match="missing"):
        peers_config.get_config("missing=ignore")


def test_problem_shapes_flops_and_shared_weights():
    a = peers.Problem.from_config(peers_config.get_config("setting=a"))
    assert (a.batch, a.steps, a.widths, a.classes) == (64, 250, (700, 128, 128), 20)
    assert [w.shape for w, _ in a.weights()] == [(700, 128), (128, 128), (128, 20)]
    b = peers.Problem.from_config(peers_config.get_config("setting=b,n=1024"))
    assert (b.batch, b.steps, b.widths, b.classes) == (16, 500, (1024, 1024), 0)
    assert b.flops()["total"] == 4.0 * 16 * 500 * 1024**2
    x, y = b.data()
    assert x.shape == (16, 500, 1024) and x.dtype == np.float32 and abs(x.mean()) < 0.01
    # every process draws the same weights and data from the seed
    np.testing.assert_array_equal(b.weights()[0][0], b.weights()[0][0])
    np.testing.assert_array_equal(a.data()[0], a.data()[0])


def test_missing_peers_skip_or_fail_cleanly(monkeypatch):
    monkeypatch.setattr(peers, "installed", lambda lib: lib == "ours")
    config = peers_config.get_config("setting=b,n=8,steps=4,batch=2,neurons=lif,strategy=auto")
    problem = peers.Problem.from_config(config)
    runners, skipped = peers.build_runners(config, problem, log=lambda *a: None)
    assert [r.name for r in runners] == ["ours-lif-auto(fused)"]
    assert [s["library"] for s in skipped] == ["spyx", "snntorch", "norse", "norse-lif"]
    config = peers_config.get_config("setting=b,n=8,steps=4,batch=2,missing=error")
    with pytest.raises(SystemExit, match="spyx"):
        peers.build_runners(config, problem, log=lambda *a: None)


def _check_rows(res, batch, steps):
    assert res["benchmark"] == "peers" and res["steps"] == steps and res["batch"] == batch
    for r in res["results"]:
        assert r["n"] == 2 and 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
        assert np.isfinite(r["first_loss"]) and r["gflops"] > 0
    assert res["command"].startswith("python -m benchmarks.peers --config=")


@pytest.mark.slow
def test_cli_setting_a_lists_every_library():
    # the installed peers run (torch ones in a worker process each), the others are skipped
    arg = "setting=a,batch=2,steps=6,repeats=2,threads=1,neurons=lif,strategy=auto"
    res = _cli([f"--config=benchmarks/configs/peers.py:{arg}"])
    _check_rows(res, 2, 6)
    assert res["results"][0]["name"] == "ours-lif-auto(fused)"
    libs = [r["library"] for r in res["results"]] + [s["library"] for s in res["skipped"]]
    assert sorted(libs) == sorted(peers_config.LIBRARIES)
    for s in res["skipped"]:
        assert not peers.installed(s["library"])
    for r in res["results"][1:]:
        assert r["version"] == peers.library_version(r["library"])
        assert r["ratio_vs_fastest_peer"] >= 1.0
    assert set(res["peer_notes"]) == {r["library"] for r in res["results"]}


@pytest.mark.slow
def test_cli_setting_b_times_our_neurons_and_strategies():
    arg = "setting=b,n=16,batch=2,steps=6,repeats=2,libraries=ours"
    res = _cli([f"--config=benchmarks/configs/peers.py:{arg}"])
    _check_rows(res, 2, 6)
    assert [r["name"] for r in res["results"]] == [
        "ours-lif-auto(fused)",
        "ours-lif-layerwise",
        "ours-tclif-auto(fused)",
        "ours-tclif-layerwise",
    ]
    assert res["flops_counted"]["total"] == 4.0 * 2 * 6 * 16 * 16
    # the same weights and LIF, either strategy: the same spike count in the first forward
    lif = res["results"][:2]
    assert lif[0]["first_loss"] == lif[1]["first_loss"] > 0
    assert all(r["ratio_vs_fastest_peer"] is None for r in res["results"])


# ----------------------------------------------------------------------------- same function

# Dyadic weights and binary input keep every sum exact in float32 over these few steps, so
# the libraries' spike trains can be compared bit for bit (the thresholds are hit exactly
# at times; every peer fires at U > 1, so ours is set to as well).
STRICT = Surrogate("triangle", 1.0, fires_at_zero=False)


def _problem(setting):
    if setting == "a":
        return peers.Problem("a", 3, 12, (12, 16, 16), 5)
    return peers.Problem("b", 3, 12, (12, 16), 0)


def _inputs(problem):
    rng = np.random.default_rng(3)
    dims = problem.widths + ((problem.classes,) if problem.classes else ())
    weights = [
        (
            (rng.integers(-24, 33, (i, o)) / 32).astype(np.float32),
            (rng.integers(-8, 9, (o,)) / 32).astype(np.float32),
        )
        for i, o in zip(dims[:-1], dims[1:])
    ]
    x = (rng.random((problem.batch, problem.steps, problem.widths[0])) < 0.4).astype(np.float32)
    y = np.arange(problem.batch, dtype=np.int32) % max(problem.classes, 1)
    return weights, x, y


def _ours(problem, weights, x, y, **settings):
    r = peers.OursRunner(problem, "lif", "layerwise", weights, x, y, surrogate=STRICT, **settings)
    return r.output()


def _need(lib):
    """Skip unless ``lib`` (and torch, for the torch peers) is installed."""
    if lib in peers.TORCH_PEERS:
        pytest.importorskip("torch")
    pytest.importorskip(peers.PEER_MODULES[lib])


def _peer(lib, problem, weights, x, y):
    if lib == "spyx":
        return peers.SpyxRunner(problem, weights, x, y)
    return peers.TorchPeerRunner(lib, problem, weights, x, y, threads=1)


# ours' LIF settings that compute each peer's LIF (see benchmarks/peers.py's docstring)
MATCH = {
    "snntorch": {"reset_order": "paper"},
    "spyx": {"reset_order": "paper"},
    "norse": {},
    "norse-lif": {"reset": "hard"},
}


@pytest.mark.parametrize("lib", list(MATCH))
def test_every_library_fires_the_same_spikes(lib):
    _need(lib)
    problem = _problem("b")
    weights, x, y = _inputs(problem)
    ours = _ours(problem, weights, x, y, **MATCH[lib])  # (B, T, n)
    theirs = _peer(lib, problem, weights, x, y).output()
    assert theirs.shape == ours.shape and ours.sum() > 0.1 * ours.size
    if lib == "spyx":  # spyx returns S[t-1] at step t
        np.testing.assert_array_equal(theirs[:, 0], 0)
        np.testing.assert_array_equal(theirs[:, 1:], ours[:, :-1])
    else:
        np.testing.assert_array_equal(theirs, ours)


@pytest.mark.parametrize("lib", ["snntorch", "norse", "norse-lif"])
def test_torch_peers_compute_our_logits(lib):
    # setting a's whole network: two LIF layers and the readout summed over time
    _need(lib)
    problem = _problem("a")
    weights, x, y = _inputs(problem)
    ours = _ours(problem, weights, x, y, **MATCH[lib])
    theirs = _peer(lib, problem, weights, x, y).output()
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)
    assert np.ptp(ours) > 0.1  # the hidden layers spiked


@pytest.mark.parametrize("lib", list(MATCH))
def test_peer_steps_run_and_learn(lib):
    _need(lib)
    problem = _problem("a")
    weights, x, y = _inputs(problem)
    r = _peer(lib, problem, weights, x, y)
    losses = []
    for _ in range(5):
        out = r.step()
        r.block(out)
        losses.append(r.loss(out))
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_weight_scale_multiplies_the_spiking_layers_only():
    from benchmarks.configs.peers import get_config

    base = peers.Problem("a", 3, 12, (12, 16, 16), 5).weights()
    scaled = peers.Problem("a", 3, 12, (12, 16, 16), 5, weight_scale=4.0).weights()
    for (w, b), (ws, bs) in zip(base[:2], scaled[:2]):
        np.testing.assert_array_equal(ws, np.float32(4.0) * w)
        np.testing.assert_array_equal(bs, b)
    np.testing.assert_array_equal(scaled[2][0], base[2][0])  # the readout keeps its init
    assert peers.Problem.from_config(get_config("setting=a")).weight_scale == 4.0
    assert peers.Problem.from_config(get_config("setting=b")).weight_scale == 1.0
    assert peers.Problem.from_config(get_config("setting=a,weight_scale=2")).weight_scale == 2.0
    with pytest.raises(ValueError, match="inputs=events needs setting=a"):
        get_config("setting=b,inputs=events")
