"""The paper's analyses: numbers checked by hand, and every entry point at smoke size."""

import hashlib
import importlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tclif_jax.analysis import beta_grid as bg
from tclif_jax.analysis import curves, paper_inf_norm, transition_jacobian
from tclif_jax.analysis import energy as en
from tclif_jax.analysis import gradient_flow as gf
from tclif_jax.analysis import gradient_norms as gn
from tclif_jax.analysis import landscape as ls
from tclif_jax.config import NetworkConfig
from tclif_jax.models import apply, from_config, parameters
from tclif_jax.neurons import LIF, TCLIF, TwoCompartment

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
    np.testing.assert_allclose(
        np.asarray(transition_jacobian(0.4, 0.5)), gn.exact_jacobian(0.4, 0.5), atol=1e-6
    )


def _tiny_net(neuron, hidden=(5, 4), in_features=3, classes=3, seed=0, readout="sum"):
    return from_config(NetworkConfig(in_features, hidden, classes, neuron, readout=readout), seed)


def test_measured_jacobian_without_spikes_is_the_exact_one():
    net = _tiny_net(TwoCompartment(init_b=(-0.3, 0.6), v_th=1e6))
    x = jax.random.uniform(jax.random.key(0), (2, 7, 3))
    out = gn.measured_jacobian_norms(net.config, parameters(net), x)
    np.testing.assert_allclose(out["mean_jacobian"], gn.exact_jacobian(-0.3, 0.6), atol=1e-5)
    assert out["mean_inf_norm"] == pytest.approx(
        float(gn.inf_norm(gn.exact_jacobian(-0.3, 0.6))), abs=1e-5
    )
    assert out["fraction_near_threshold"] == 0.0 and out["eq15"] == pytest.approx(
        paper_inf_norm(-0.3, 0.6), abs=1e-6
    )


def test_step_jacobian_includes_spike_and_surrogate_terms():
    # Official TC-LIF order at U = (U_D, U_S) = (0.3, 0.8), v_th = 1: the spike of the
    # previous step is H(-0.2) = 0 with triangle surrogate s' = 0.8. By hand:
    #   dD'/dD = 1, dD'/dS = -gamma s' + b1 (1 - v_th s')
    #   dS'/dD = b2, dS'/dS = (1 - v_th s') + b2 dD'/dS
    b1, b2, gamma, v_th, sp = -0.4, 0.7, 0.3, 1.0, 0.8
    neuron = TCLIF(gamma=gamma, init_b=(b1, b2), v_th=v_th)
    params = {"c": jnp.asarray(neuron.initial_c(), jnp.float32)}
    jac = np.asarray(
        gn.step_jacobians(neuron, params, jnp.asarray([[0.3, 0.8]]), jnp.asarray([0.1]))
    )[0]
    dd_ds = -gamma * sp + b1 * (1 - v_th * sp)
    np.testing.assert_allclose(jac, [[1.0, dd_ds], [b2, (1 - v_th * sp) + b2 * dd_ds]], atol=1e-5)
    lif = LIF(decay=0.8, v_th=1.0)
    jl = np.asarray(gn.step_jacobians(lif, {}, jnp.asarray([[0.5]]), jnp.asarray([0.0])))[0]
    np.testing.assert_allclose(jl, [[0.8 * (1 - 0.5)]], atol=1e-6)  # s'(-0.5) = 0.5


def test_layer_states_are_the_networks_recorded_states():
    # A recurrent first layer feeding the measured second one: the per-layer scan of
    # layer_states sees exactly the states the whole network records (time-major there).
    config = NetworkConfig(3, (5, 4), 3, TCLIF(v_th=0.5), recurrent=(True,))
    net = from_config(config, seed=1)
    params = parameters(net)
    x = jax.random.uniform(jax.random.key(4), (2, 9, 3), maxval=2.0)
    _, aux = apply(config, params, x, record=True)
    for layer in (0, 1, -1):
        current, states = gn.layer_states(config, params, x, layer)
        assert current.shape == (9, 2, config.hidden[layer])
        for field in ("dendrite", "soma", "spike"):
            np.testing.assert_allclose(
                np.swapaxes(getattr(states, field), 0, 1),
                aux["states"][layer][field],
                rtol=1e-6,
                atol=1e-6,
            )
    with pytest.raises(ValueError, match="recurrent"):
        gn.measured_jacobian_norms(config, params, x, layer=0)


# ----------------------------------------------------------------------------- energy


def test_energy_formulas_against_hand_computation():
    # LIF, feed-forward: m n Fr_in E_AC + n Fr_out E_AC + n E_MAC
    assert en.spiking_layer_energy(2, 3, 0.5, 0.25, recurrent=False) == pytest.approx(
        2 * 3 * 0.5 * 0.9 + 3 * 0.25 * 0.9 + 3 * 4.6
    )
    # TC-LIF, recurrent: m n Fr_in E_AC + (n^2 + 2n) Fr_out E_AC + 2 n E_MAC
    assert en.spiking_layer_energy(
        2, 3, 0.5, 0.25, recurrent=True, compartments=2
    ) == pytest.approx(2.7 + (9 + 6) * 0.25 * 0.9 + 6 * 4.6)
    # LSTM: 4 (m n + n^2) E_MAC + 17 n E_MAC
    assert en.lstm_energy(2, (3,))["pJ_per_step"] == pytest.approx(4 * (6 + 9) * 4.6 + 17 * 3 * 4.6)
    # A two-layer network, per sample of T = 10 steps, in nJ.
    e = en.snn_energy(2, (3, 4), (0.5, 0.1), neuron="lif", input_rate=1.0, time_steps=10)
    l1 = 2 * 3 * 1.0 * 0.9 + 3 * 0.5 * 0.9 + 3 * 4.6
    l2 = 3 * 4 * 0.5 * 0.9 + 4 * 0.1 * 0.9 + 4 * 4.6
    assert e["nJ"] == pytest.approx((l1 + l2) * 10 / 1000)
    # Compartments come from the neuron protocol: TC-LIF charges two per neuron.
    assert [
        en.num_compartments(n) for n in ("lif", "plif", "alif", "tclif", "two_compartment")
    ] == [1, 1, 1, 2, 2]
    assert en.num_compartments(TCLIF()) == 2
    e2 = en.snn_energy(2, (3,), (0.25,), neuron="tclif", recurrent=(True,))
    assert e2["pJ_per_step"] == pytest.approx(
        en.spiking_layer_energy(2, 3, 1.0, 0.25, recurrent=True, compartments=2)
    )


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
    params = parameters(net)
    d = ls.filter_normalised_direction(jax.random.key(1), params)
    for i in range(len(net.config.hidden)):
        lp, ld = params["layers"][i], d["layers"][i]
        np.testing.assert_allclose(
            np.linalg.norm(ld["dense"]["kernel"], axis=0),
            np.linalg.norm(lp["dense"]["kernel"], axis=0),
            rtol=1e-5,
        )
        assert not np.any(ld["dense"]["bias"]) and not np.any(ld["neuron_params"]["c"])
    np.testing.assert_allclose(
        np.linalg.norm(d["readout"]["kernel"], axis=0),
        np.linalg.norm(params["readout"]["kernel"], axis=0),
        rtol=1e-5,
    )
    # Keys follow the layout before NNX names (bias, neuron, kernel per layer), so a seed
    # draws the directions it drew before and docs/figures/landscape stay reproducible.
    paths = [ls._path_keys(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    assert [p[-1] for p in paths[:3]] == ["bias", "kernel", "c"]
    assert ls.draw_order(paths) == [0, 2, 1, 3, 5, 4, 6, 7]
    x = jax.random.uniform(jax.random.key(2), (6, 9, 3), maxval=2.0)
    y = jnp.asarray([0, 1, 2, 0, 1, 2])
    loss_fn = ls.make_loss_fn(net.config, x, y, batch_size=3)
    d2 = ls.filter_normalised_direction(jax.random.key(3), params)
    grid = np.linspace(-0.5, 0.5, 5)
    f = ls.make_evaluator(loss_fn, params, d, d2)
    Z = ls.loss_surface(loss_fn, params, d, d2, grid, grid, evaluator=f)
    logits, _ = apply(net.config, params, x)
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
    r = gf.gradient_flow(net.config, parameters(net), x, y)
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
    params = parameters(net)
    x = jax.random.uniform(jax.random.key(0), (3, 8, 3), maxval=2.0)
    y = jnp.asarray([0, 1, 2])
    grads, loss = gf.membrane_gradients(net.config, params, x, y)
    assert [g.shape for g in grads] == [(3, 8, 6), (3, 8, 4)]

    def loss_x(x):
        logits, aux = apply(net.config, params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), aux

    gx, aux = jax.grad(loss_x, has_aux=True)(x)
    assert 0 < float(aux["firing_rates"][0]) < 1  # spikes and surrogate terms are in play
    np.testing.assert_allclose(
        np.asarray(gx),
        grads[0] @ np.asarray(params["layers"][0]["dense"]["kernel"]).T,
        rtol=1e-4,
        atol=1e-7,
    )
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
        assert all(
            np.sign(b1) == s1 and np.sign(b2) == s2 for b1, b2 in bg.grid_points(quadrants=[q])
        )
    assert bg.classify(0.9, 10) == "ok"
    assert bg.classify(0.12, 10) == "chance"
    assert bg.classify(float("nan"), 10) == "diverged"
    assert bg.classify(0.9, 10, diverged=True) == "diverged"


# ----------------------------------------------------------------------------- entry points

NAMES = ("gradient_norms", "beta_grid", "gradient_flow", "learning_curves", "landscape", "energy")


def _config(name, arg="size=smoke,task=digits", **fields):
    """An analysis config as ``--config=experiments/configs/analyses/<name>.py:<arg>`` gives it."""
    module = importlib.import_module(f"experiments.configs.analyses.{name}")
    config = module.get_config(arg)
    for key, value in fields.items():
        config[key] = value
    config.lock()  # as config_flags does: an unknown field is an error
    return config


def _snapshot(folder):
    """Every file under ``folder`` with its size, mtime and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            digest = hashlib.sha1(open(path, "rb").read()).hexdigest() if name in filenames else ""
            out[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns, digest)
    return out


def test_analysis_configs_are_concrete_and_write_under_runs_by_default():
    for name in NAMES:
        arg = "size=cpu"
        config = _config(name, arg)
        assert config.analysis == name and config.size == "cpu" and config.docs is False
        assert config.outdir == f"runs/analyses/{name}"
        assert config.docs_dir == f"docs/figures/{name}"
    last = _config("gradient_flow", "size=cpu,readout=last")
    assert last.outdir == "runs/analyses/gradient_flow_last"
    assert last.docs_dir == "docs/figures/gradient_flow_last"
    assert last.task_config.model.readout == "last"
    # The size's budget is written into the task config; paper leaves the task's schedule.
    smoke, cpu, paper = (_config("gradient_norms", f"size={s}") for s in ("smoke", "cpu", "paper"))
    assert (smoke.task_config.train.max_steps, smoke.task_config.data.train_limit) == (2, 32)
    assert (cpu.task_config.train.batch_size, cpu.task_config.optimizer.learning_rate) == (32, 1e-3)
    assert (paper.task_config.train.batch_size, paper.task_config.train.num_epochs) == (256, 200)
    assert (cpu.examples, paper.examples) == (32, 256)
    grid = _config("beta_grid", "size=cpu")
    assert set(grid.task_configs) == {"smnist", "psmnist"}
    assert grid.task_configs.psmnist.train.num_epochs == 1
    # Unknown config arguments and task-config fields are errors naming them.
    with pytest.raises(ValueError, match="sizee"):
        _config("energy", "sizee=cpu")
    with pytest.raises(ValueError, match="tiny"):
        _config("energy", "size=tiny")
    with pytest.raises(AttributeError, match="v_tth"):
        _config("energy").task_config.model.v_tth = 1.0


def test_neuron_item_settings_reach_the_built_model():
    from experiments.analyses import _common
    from tclif_jax.train import build_model

    config = _config("gradient_flow")
    task_cfg = _common.make_task_config(config, "alif:detach_reset=True;beta_adapt=1.0", seed=3)
    model = build_model(task_cfg, 1, 10)
    for neuron in model.config.neurons:
        assert neuron.name == "alif" and neuron.beta_adapt == 1.0 and neuron.detach_reset is True
    assert task_cfg.seed == 3 and config.task_config.model.neuron == "tclif"  # a copy
    assert _common.run_dir(config, task_cfg, "alif:detach_reset=True;beta_adapt=1.0").endswith(
        "digits-ff-alif-beta_adapt1.0-detach_resetTrue-seed3-smoke"
    )
    with pytest.raises(ValueError, match="betta"):
        _common.make_task_config(config, "alif:betta=1.0")
    with pytest.raises(ValueError, match="do not apply to neuron"):
        build_model(_common.make_task_config(config, "lif:beta_adapt=1.0"), 1, 10)


def test_mnist_is_found_where_the_tests_look(tmp_path, monkeypatch):
    from experiments.analyses import _common

    shared = tmp_path / "shared"
    (shared / "mnist").mkdir(parents=True)
    for base in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (shared / "mnist" / f"{base}.gz").write_bytes(b"")
    monkeypatch.setenv("TCLIF_SHARED_DATA", str(shared))
    config = _config("gradient_norms", "size=smoke")
    where = [w for w, _ in _common.mnist_search(config)]
    assert where == ["$TCLIF_SHARED_DATA/mnist", "../shared/data/mnist"]
    assert _common.make_task_config(config).data.dir == str(shared / "mnist")
    own = _config("gradient_norms", "size=smoke", data_dir=str(tmp_path / "mine"))
    assert _common.mnist_search(own) == [("config.data_dir", str(tmp_path / "mine"))]
    assert _common.make_task_config(own).data.dir == str(tmp_path / "mine")


def test_default_output_goes_under_runs_analyses(tmp_path, monkeypatch):
    from experiments.analyses import energy, gradient_norms

    monkeypatch.chdir(tmp_path)
    gradient_norms.main(_config("gradient_norms", measure=False))
    for f in ("table7.csv", "table7.json", "norm_plane.png"):
        assert os.path.getsize(tmp_path / "runs" / "analyses" / "gradient_norms" / f) > 0
    energy.main(_config("energy", paper_only=True))
    assert set(os.listdir(tmp_path / "runs" / "analyses")) == {"energy", "gradient_norms"}
    assert os.listdir(tmp_path / "runs" / "analyses" / "energy") == ["energy.json"]


def test_docs_output_refuses_smoke_size(tmp_path, cli):
    from experiments.analyses import _common, gradient_norms

    docs = tmp_path / "docs"
    config = _config("gradient_norms", measure=False, docs=True, docs_dir=str(docs))
    with pytest.raises(_common.AnalysisError, match="size=smoke") as err:
        gradient_norms.main(config)
    assert "\n" not in str(err.value) and not docs.exists()
    # From the command line: one line, no traceback, exit status 1.
    res = cli(
        "experiments.analyses.gradient_norms",
        "--config=experiments/configs/analyses/gradient_norms.py:size=smoke",
        "--config.docs=True",
        f"--config.docs_dir={docs}",
        timeout=300,
    )
    assert res.returncode == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("AnalysisError: config.docs=True") and "size=smoke" in line
    assert not docs.exists()


def test_cli_rejects_unknown_task_config_field(tmp_path, cli):
    res = cli(
        "experiments.analyses.energy",
        "--config=experiments/configs/analyses/energy.py:size=smoke",
        "--config.task_config.model.v_tth=1.0",
        f"--config.outdir={tmp_path}",
        timeout=300,
    )
    assert res.returncode != 0 and "v_tth" in res.stderr
    assert not os.listdir(tmp_path)


def test_missing_data_touches_no_output_file(tmp_path, root):
    from experiments.analyses import gradient_norms
    from tclif_jax.data import DataNotFoundError

    docs = tmp_path / "docs" / "gradient_norms"  # stands in for docs/figures/gradient_norms
    docs.mkdir(parents=True)
    for f in ("table7.csv", "norm_plane.png", "measured.json"):
        (docs / f).write_text(f"documented {f}")
    before, real_before = _snapshot(tmp_path / "docs"), _snapshot(os.path.join(root, "docs"))
    empty = tmp_path / "no-mnist-here"
    empty.mkdir()
    config = _config(
        "gradient_norms",
        "size=cpu",
        docs=True,
        docs_dir=str(docs),
        data_dir=str(empty),
        rundir=str(tmp_path / "runs"),
    )
    config.task_config.data.source = "idx"  # no TFDS fallback: fail fast
    with pytest.raises(DataNotFoundError) as err:
        gradient_norms.main(config)
    message = str(err.value)
    assert str(empty) in message and "config.data_dir" in message and "--config.data_dir" in message
    assert _snapshot(tmp_path / "docs") == before
    assert _snapshot(os.path.join(root, "docs")) == real_before


@pytest.fixture(scope="module")
def rundir(tmp_path_factory):
    """One run folder shared by the entry-point tests (the small offline digits task)."""
    return tmp_path_factory.mktemp("analyses")


@pytest.mark.slow  # the analysis entry point end to end
def test_entry_gradient_norms(rundir):
    from experiments.analyses import gradient_norms

    out = gradient_norms.main(
        _config("gradient_norms", rundir=str(rundir / "runs"), outdir=str(rundir / "gn"))
    )
    for f in ("table7.csv", "table7.json", "norm_plane.png", "measured.json"):
        assert os.path.getsize(rundir / "gn" / f) > 0
    assert out["measured"][0]["neuron"] == "tclif"
    assert np.isfinite(out["measured"][0]["mean_inf_norm"])


@pytest.mark.slow  # the analysis entry point end to end
def test_entry_learning_curves_landscape_energy(rundir):
    from experiments.analyses import energy, landscape, learning_curves

    common = dict(rundir=str(rundir / "runs"))
    lc = learning_curves.main(
        _config(
            "learning_curves", outdir=str(rundir / "lc"), neurons="tclif,lif", seeds=(0,), **common
        )
    )
    assert set(lc["summary"]) == {"tclif", "lif"}
    assert os.path.getsize(rundir / "lc" / "learning_curves.png") > 0
    assert json.load(open(rundir / "lc" / "learning_curves.json"))["curves"]["lif"]["test_acc"]
    # These reuse the seed-0 runs trained above.
    land = landscape.main(_config("landscape", outdir=str(rundir / "ls"), **common))
    for row in land["sharpness"]:
        s = land["surfaces"][row["neuron"]]
        assert s["loss"][1, 1] == pytest.approx(row["loss_at_origin"], rel=1e-4)  # 3x3 grid centre
    assert os.path.getsize(rundir / "ls" / "landscape.png") > 0
    e = energy.main(_config("energy", outdir=str(rundir / "en"), **common))
    assert [r["model"] for r in e["table"]] == ["lstm", "lif", "tclif"]
    assert os.path.getsize(rundir / "en" / "energy.png") > 0


def test_entry_beta_grid_marks_divergence_and_resumes(rundir, capsys):
    from experiments.analyses import beta_grid

    fields = dict(outdir=str(rundir / "bg"), rundir=str(rundir / "runs"), points="-0.5:0.5,3:3")
    out = beta_grid.main(_config("beta_grid", "size=smoke,tasks=digits", **fields))
    status = {(r["b1"], r["b2"]): r["status"] for r in out["runs"]}
    assert status[(3.0, 3.0)] == "diverged" and status[(-0.5, 0.5)] in ("ok", "chance")
    assert os.path.getsize(rundir / "bg" / "beta_grid.png") > 0
    capsys.readouterr()
    # Finished runs are skipped, not retrained.
    beta_grid.main(_config("beta_grid", "size=smoke,tasks=digits", index=0, **fields))
    assert "skipped" in capsys.readouterr().out


def test_entry_gradient_flow(rundir):
    from experiments.analyses import gradient_flow

    out = gradient_flow.main(
        _config(
            "gradient_flow",
            outdir=str(rundir / "gf"),
            rundir=str(rundir / "runs"),
            neurons="lif,tclif",
        )
    )
    for r in out["results"].values():
        assert r["stacked"].sum() == pytest.approx(1.0, abs=1e-6)
    assert os.path.getsize(rundir / "gf" / "gradient_flow.png") > 0


def test_entry_gradient_flow_on_real_smnist(tmp_path, mnist_dir):
    from experiments.analyses import gradient_flow

    config = _config(
        "gradient_flow",
        "size=smoke,readout=last",
        data_dir=mnist_dir,
        outdir=str(tmp_path),
        neurons="lif,tclif",
        examples=2,
    )
    out = gradient_flow.main(config)
    assert out["summary"]["time_steps"] == 784
    nets = out["summary"]["networks"]
    # Through time alone (last-step readout), TC-LIF keeps far more gradient early on.
    assert nets["tclif"]["first_half_all"] > 10 * nets["lif"]["first_half_all"]
