"""The paper's analyses: numbers checked by hand, and every entry point at smoke size."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tclif_jax.analysis import beta_grid as bg
from tclif_jax.analysis import curves
from tclif_jax.analysis import energy as en
from tclif_jax.analysis import gradient_flow as gf
from tclif_jax.analysis import gradient_norms as gn
from tclif_jax.analysis import landscape as ls
from tclif_jax.analysis import paper_inf_norm, transition_jacobian
from tclif_jax.models import SpikingNetwork, apply
from tclif_jax.neurons import LIF, TCLIF, TwoCompartment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("TCLIF_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
MNIST_DIR = os.path.join(SHARED, "mnist")
HAVE_MNIST = os.path.isfile(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz"))


# ----------------------------------------------------------------------------- Eq. 15 / Jacobian


def test_table7_rows_eq15_matches_the_paper():
    rows = gn.table7_rows()
    assert len(rows) == 32
    for r in rows:
        tol = 0.0025 if r["trained"] else 0.0005  # printed (b1, b2) are rounded; see test_gradients
        assert r["eq15"] == pytest.approx(r["paper_table7"], abs=tol), (r["b1"], r["b2"])
    # The values quoted in the reference, to the printed precision.
    assert paper_inf_norm(-0.2, 0.8) == pytest.approx(2.312, abs=5e-4)
    assert paper_inf_norm(-0.8, 0.2) == pytest.approx(1.208, abs=5e-4)


def test_exact_jacobian_autodiff_equals_closed_form_and_is_marginal():
    for r in gn.table7_rows():
        b1, b2 = r["b1"], r["b2"]
        closed = np.array([[1.0, b1], [b2, 1.0 + b1 * b2]])
        np.testing.assert_allclose(r["exact_jacobian"], closed, atol=1e-6)
        np.testing.assert_allclose(gn.exact_jacobian(b1, b2), closed, atol=1e-12)
        assert r["exact_det"] == pytest.approx(1.0, abs=1e-5)
        assert r["exact_spectral_radius"] == pytest.approx(1.0, abs=1e-5)
        assert r["exact_inf_norm"] == pytest.approx(max(1 - b1, b2 + abs(1 + b1 * b2)), abs=1e-6)
        # Eq. 15 exceeds 1 everywhere on Table 7 although no eigenvalue does.
        assert r["eq15"] > 1.15


def test_eigen_moduli_closed_form_matches_numpy_over_the_plane():
    v = np.linspace(-3, 3, 41)
    m = gn.norm_plane(v, v)
    jac = gn.exact_jacobian(m["b1"], m["b2"])
    ref = np.sort(np.abs(np.linalg.eigvals(jac)), axis=-1)[..., ::-1]
    np.testing.assert_allclose(gn.eigen_moduli(jac), ref, rtol=1e-9, atol=1e-9)
    inside = m["marginal"]
    np.testing.assert_allclose(m["spectral_radius"][inside], 1.0, atol=1e-9)
    assert np.all(m["spectral_radius"][(m["b1"] * m["b2"] > 0)] > 1.0)
    # Eq. 15 = 1 on b1 = -2 / (1 + b2).
    b2 = np.array([0.3, 1.0, 2.0])
    np.testing.assert_allclose(paper_inf_norm(gn.paper_unit_norm_curve(b2), b2), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(transition_jacobian(0.4, 0.5)), gn.exact_jacobian(0.4, 0.5),
                               atol=1e-6)


def _tiny_net(neuron, hidden=(5, 4), in_features=3, classes=3, seed=0, readout="sum"):
    from flax import nnx
    return SpikingNetwork(in_features, hidden, classes, neuron, readout=readout,
                          rngs=nnx.Rngs(params=seed))


def test_measured_jacobian_without_spikes_is_the_exact_one():
    net = _tiny_net(TwoCompartment(init_b=(-0.3, 0.6), v_th=1e6))
    x = jax.random.uniform(jax.random.key(0), (2, 7, 3))
    out = gn.measured_jacobian_norms(net.spec, net.arrays(), x)
    np.testing.assert_allclose(out["mean_jacobian"], gn.exact_jacobian(-0.3, 0.6), atol=1e-5)
    assert out["mean_inf_norm"] == pytest.approx(float(gn.inf_norm(gn.exact_jacobian(-0.3, 0.6))),
                                                 abs=1e-5)
    assert out["fraction_near_threshold"] == 0.0 and out["eq15"] == pytest.approx(
        paper_inf_norm(-0.3, 0.6), abs=1e-6)


def test_step_jacobian_includes_spike_and_surrogate_terms():
    # Official TC-LIF order at U = (U_D, U_S) = (0.3, 0.8), v_th = 1: the spike of the
    # previous step is H(-0.2) = 0 with triangle surrogate s' = 0.8. By hand:
    #   dD'/dD = 1, dD'/dS = -gamma s' + b1 (1 - v_th s')
    #   dS'/dD = b2, dS'/dS = (1 - v_th s') + b2 dD'/dS
    b1, b2, gamma, v_th, sp = -0.4, 0.7, 0.3, 1.0, 0.8
    neuron = TCLIF(gamma=gamma, init_b=(b1, b2), v_th=v_th)
    params = {"c": jnp.asarray(neuron.initial_c(), jnp.float32)}
    jac = np.asarray(gn.step_jacobians(neuron, params, jnp.asarray([[0.3, 0.8]]), jnp.asarray([0.1])))[0]
    dd_ds = -gamma * sp + b1 * (1 - v_th * sp)
    np.testing.assert_allclose(jac, [[1.0, dd_ds], [b2, (1 - v_th * sp) + b2 * dd_ds]], atol=1e-5)
    lif = LIF(decay=0.8, v_th=1.0)
    jl = np.asarray(gn.step_jacobians(lif, {}, jnp.asarray([[0.5]]), jnp.asarray([0.0])))[0]
    np.testing.assert_allclose(jl, [[0.8 * (1 - 0.5)]], atol=1e-6)  # s'(-0.5) = 0.5


# ----------------------------------------------------------------------------- energy


def test_energy_formulas_against_hand_computation():
    # LIF, feed-forward: m n Fr_in E_AC + n Fr_out E_AC + n E_MAC
    assert en.spiking_layer_energy(2, 3, 0.5, 0.25, recurrent=False) == pytest.approx(
        2 * 3 * 0.5 * 0.9 + 3 * 0.25 * 0.9 + 3 * 4.6)
    # TC-LIF, recurrent: m n Fr_in E_AC + (n^2 + 2n) Fr_out E_AC + 2 n E_MAC
    assert en.spiking_layer_energy(2, 3, 0.5, 0.25, recurrent=True, compartments=2) == pytest.approx(
        2.7 + (9 + 6) * 0.25 * 0.9 + 6 * 4.6)
    # LSTM: 4 (m n + n^2) E_MAC + 17 n E_MAC
    assert en.lstm_energy(2, (3,))["pJ_per_step"] == pytest.approx(4 * (6 + 9) * 4.6 + 17 * 3 * 4.6)
    # A two-layer network, per sample of T = 10 steps, in nJ.
    e = en.snn_energy(2, (3, 4), (0.5, 0.1), neuron="lif", input_rate=1.0, time_steps=10)
    l1 = 2 * 3 * 1.0 * 0.9 + 3 * 0.5 * 0.9 + 3 * 4.6
    l2 = 3 * 4 * 0.5 * 0.9 + 4 * 0.1 * 0.9 + 4 * 4.6
    assert e["nJ"] == pytest.approx((l1 + l2) * 10 / 1000)


def test_paper_table2_is_reproduced_per_step_with_the_recurrent_network():
    best = en.paper_table2_check()[0]
    assert best["network"] == "rec" and best["time_steps"] == 1
    assert best["lif"] == pytest.approx(23.8, rel=5e-3)
    assert best["tclif"] == pytest.approx(28.2, rel=5e-3)
    # ... but not the LSTM: 1-64-256-256 with the stated formula is 4,040.6 nJ per step.
    assert en.lstm_energy(1, (64, 256, 256))["nJ"] == pytest.approx(4040.64)
    assert all(abs(r["lstm_rel_err"]) > 0.4 for r in en.paper_table2_check())


# ----------------------------------------------------------------------------- landscape


def test_filter_normalised_direction_and_landscape_origin_is_the_trained_loss():
    net = _tiny_net(TCLIF(v_th=0.5))
    params = net.arrays()
    d = ls.filter_normalised_direction(jax.random.key(1), params)
    for lp, ld in zip(params["layers"], d["layers"]):
        np.testing.assert_allclose(np.linalg.norm(ld["w_in"], axis=0),
                                   np.linalg.norm(lp["w_in"], axis=0), rtol=1e-5)
        assert not np.any(ld["b_in"]) and not np.any(ld["neuron"]["c"])
    x = jax.random.uniform(jax.random.key(2), (6, 9, 3), maxval=2.0)
    y = jnp.asarray([0, 1, 2, 0, 1, 2])
    loss_fn = ls.make_loss_fn(net.spec, x, y, batch_size=3)
    d2 = ls.filter_normalised_direction(jax.random.key(3), params)
    grid = np.linspace(-0.5, 0.5, 5)
    f = ls.make_evaluator(loss_fn, params, d, d2)
    Z = ls.loss_surface(loss_fn, params, d, d2, grid, grid, evaluator=f)
    logits, _ = apply(net.spec, params, x)
    trained = float(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean())
    assert Z.shape == (5, 5) and Z[2, 2] == pytest.approx(trained, rel=1e-5)
    sharp = ls.radial_sharpness(loss_fn, params, d, d2, 0.25, num_angles=4, evaluator=f)
    assert sharp["loss_at_origin"] == pytest.approx(trained, rel=1e-5)
    assert sharp["max_rise"] >= sharp["mean_rise"]


# ----------------------------------------------------------------------------- gradient flow


def test_gradient_flow_maps_sum_to_one_and_first_half_share():
    net = _tiny_net(TCLIF(v_th=0.5))
    x = jax.random.uniform(jax.random.key(0), (4, 10, 3), maxval=2.0)
    y = jnp.asarray([0, 1, 2, 0])
    r = gf.gradient_flow(net.spec, net.arrays(), x, y)
    assert r["finite"]
    for m, n in zip(r["maps"], (5, 4)):
        assert m.shape == (n, 10) and m.sum() == pytest.approx(1.0, abs=1e-9) and np.all(m >= 0)
    assert r["stacked"].sum() == pytest.approx(1.0, abs=1e-9)
    assert gf.time_profile(r["maps"][0]).sum() == pytest.approx(1.0, abs=1e-9)
    assert r["first_half_all"] == pytest.approx(np.mean(r["first_half"]), abs=1e-9)
    # A hand-made map: all mass at t = 0 and t = 3 of T = 4 -> first-half share 0.25 / 1.
    g = np.zeros((2, 4, 3))
    g[:, 0, :], g[:, 3, :] = 1.0, -3.0
    fmap = gf.flow_map(g)
    assert fmap.sum() == pytest.approx(1.0) and gf.first_half_fraction(fmap) == pytest.approx(0.25)
    assert np.isnan(gf.flow_map(np.full((1, 2, 2), np.inf))).all()


def test_membrane_gradients_are_dL_dU():
    # In a LIF layer the input current and the probe enter the potential at the same
    # place, so for the first layer dL/dx[t] = dL/dU[t] @ W_in^T: an independent check.
    net = _tiny_net(LIF(v_th=0.3), hidden=(6, 4))
    params = net.arrays()
    x = jax.random.uniform(jax.random.key(0), (3, 8, 3), maxval=2.0)
    y = jnp.asarray([0, 1, 2])
    grads, loss = gf.membrane_gradients(net.spec, params, x, y)
    assert [g.shape for g in grads] == [(3, 8, 6), (3, 8, 4)]

    def loss_x(x):
        logits, aux = apply(net.spec, params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), aux

    gx, aux = jax.grad(loss_x, has_aux=True)(x)
    assert 0 < float(aux["firing_rates"][0]) < 1  # spikes and surrogate terms are in play
    np.testing.assert_allclose(np.asarray(gx), grads[0] @ np.asarray(params["layers"][0]["w_in"]).T,
                               rtol=1e-4, atol=1e-7)
    assert np.abs(grads[0]).sum() > 0


# ----------------------------------------------------------------------------- curves, grid


def _fake_run(root, name, neuron, seed, accs):
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for e, a in enumerate(accs, 1):
            f.write(json.dumps({"epoch": e, "test_acc": a, "train_loss": 1.0 / e}) + "\n")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model": {"neuron": neuron}, "seed": seed}, f)
    return d


def test_curves_mean_and_std_over_seeds(tmp_path):
    _fake_run(tmp_path, "a", "tclif", 0, [0.5, 0.7, 0.9])
    _fake_run(tmp_path, "b", "tclif", 1, [0.3, 0.5])
    _fake_run(tmp_path, "c", "lif", 0, [0.1, 0.2, 0.3])
    groups = curves.group_runs(curves.read_run(d) for d in curves.find_runs(str(tmp_path)))
    ms = curves.mean_std(groups["tclif"])
    np.testing.assert_allclose(ms["x"], [1, 2])  # epochs every run reached
    np.testing.assert_allclose(ms["mean"], [0.4, 0.6])
    np.testing.assert_allclose(ms["std"], [0.1, 0.1])
    numbers = curves.plot_curves(groups, str(tmp_path / "c.png"))
    assert os.path.getsize(tmp_path / "c.png") > 0 and numbers["lif"]["test_acc"]["n"] == 1


def test_beta_grid_points_and_classification():
    pts = bg.grid_points()
    assert len(pts) == 36 and len(set(pts)) == 36
    for q, (s1, s2) in bg.QUADRANTS.items():
        assert len(bg.grid_points(quadrants=[q])) == 9
        assert all(np.sign(b1) == s1 and np.sign(b2) == s2 for b1, b2 in bg.grid_points(quadrants=[q]))
    assert bg.classify(0.9, 10) == "ok"
    assert bg.classify(0.12, 10) == "chance"
    assert bg.classify(float("nan"), 10) == "diverged"
    assert bg.classify(0.9, 10, diverged=True) == "diverged"


# ----------------------------------------------------------------------------- entry points


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Common flags: the small offline digits task (T = 64), one shared run folder."""
    root = tmp_path_factory.mktemp("analyses")
    return root, ["--size=smoke", "--task=digits", f"--rundir={root / 'runs'}"]


def test_entry_gradient_norms(smoke):
    from experiments.analyses import gradient_norms
    root, flags = smoke
    out = gradient_norms.main(flags + [f"--outdir={root / 'gn'}"])
    for f in ("table7.csv", "table7.json", "norm_plane.png", "measured.json"):
        assert os.path.getsize(root / "gn" / f) > 0
    assert out["measured"][0]["neuron"] == "TCLIF" and np.isfinite(out["measured"][0]["mean_inf_norm"])


def test_entry_learning_curves_landscape_energy(smoke):
    from experiments.analyses import energy, landscape, learning_curves
    root, flags = smoke
    lc = learning_curves.main(flags + [f"--outdir={root / 'lc'}", "--neurons=tclif,lif", "--seeds=0"])
    assert set(lc["summary"]) == {"tclif", "lif"}
    assert os.path.getsize(root / "lc" / "learning_curves.png") > 0
    # These reuse the seed-0 runs trained above.
    land = landscape.main(flags + [f"--outdir={root / 'ls'}"])
    for row in land["sharpness"]:
        s = land["surfaces"][row["neuron"]]
        assert s["loss"][1, 1] == pytest.approx(row["loss_at_origin"], rel=1e-4)  # 3x3 grid centre
    assert os.path.getsize(root / "ls" / "landscape.png") > 0
    e = energy.main(flags + [f"--outdir={root / 'en'}"])
    assert [r["model"] for r in e["table"]] == ["lstm", "lif", "tclif"]
    assert os.path.getsize(root / "en" / "energy.png") > 0


def test_entry_beta_grid_marks_divergence_and_resumes(smoke, capsys):
    from experiments.analyses import beta_grid
    root, flags = smoke
    args = flags + [f"--outdir={root / 'bg'}", "--tasks=digits", "--points=-0.5:0.5,3:3"]
    out = beta_grid.main(args)
    status = {(r["b1"], r["b2"]): r["status"] for r in out["runs"]}
    assert status[(3.0, 3.0)] == "diverged" and status[(-0.5, 0.5)] in ("ok", "chance")
    assert os.path.getsize(root / "bg" / "beta_grid.png") > 0
    capsys.readouterr()
    beta_grid.main(args + ["--index=0"])  # finished runs are skipped, not retrained
    assert "skipped" in capsys.readouterr().out


def test_entry_gradient_flow(smoke):
    from experiments.analyses import gradient_flow
    root, flags = smoke
    out = gradient_flow.main(flags + [f"--outdir={root / 'gf'}", "--neurons=lif,tclif"])
    for r in out["results"].values():
        assert r["stacked"].sum() == pytest.approx(1.0, abs=1e-6)
    assert os.path.getsize(root / "gf" / "gradient_flow.png") > 0


@pytest.mark.skipif(not HAVE_MNIST, reason=f"real MNIST IDX files not found in {MNIST_DIR} "
                                           "(set TCLIF_SHARED_DATA to the folder holding mnist/)")
def test_entry_gradient_flow_on_real_smnist(tmp_path):
    from experiments.analyses import gradient_flow
    out = gradient_flow.main(["--size=smoke", f"--data_dir={MNIST_DIR}", f"--outdir={tmp_path}",
                              "--neurons=lif,tclif", "--readout=last", "--examples=2"])
    assert out["summary"]["time_steps"] == 784
    nets = out["summary"]["networks"]
    # Through time alone (last-step readout), TC-LIF keeps far more gradient early on.
    assert nets["tclif"]["first_half_all"] > 10 * nets["lif"]["first_half_all"]
