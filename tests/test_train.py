"""Training loop: learning, resumption, determinism, failures, 1 vs 4 devices."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tclif_jax import train as train_lib
from tclif_jax.checkpoint import CheckpointError

from conftest import strip_times

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_learns_and_writes_metrics_curve_and_checkpoints(toy, tmp_path):
    s = train_lib.train_and_evaluate(toy.config(), str(tmp_path))
    assert s["best_test_acc"] > 0.9  # chance is 0.25
    recs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["epoch"] for r in recs] == [1, 2, 3] and [r["step"] for r in recs] == [8, 16, 24]
    for key in ("train_loss", "train_acc", "test_acc", "lr", "firing_rates", "wall_time"):
        assert key in recs[0]
    assert recs[0]["lr"] == pytest.approx(5e-3) and len(recs[0]["firing_rates"]) == 1
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    assert sorted(os.listdir(tmp_path / "checkpoints" / "last")) == ["16", "24", "8"]
    assert os.listdir(tmp_path / "checkpoints" / "best")


def test_same_seed_same_metrics_bit_for_bit(toy, tmp_path):
    a = train_lib.train_and_evaluate(toy.config(), str(tmp_path / "a"))
    b = train_lib.train_and_evaluate(toy.config(), str(tmp_path / "b"))
    assert strip_times(a["history"]) == strip_times(b["history"])


def test_max_steps_then_resume_equals_uninterrupted(toy, tmp_path):
    full = train_lib.train_and_evaluate(toy.config(), str(tmp_path / "full"))
    part = train_lib.train_and_evaluate(toy.config(max_steps=11), str(tmp_path / "r"))
    assert part["history"][-1]["step"] == 11 and part["history"][-1]["partial_epoch"]
    rest = train_lib.train_and_evaluate(toy.config(), str(tmp_path / "r"))
    assert strip_times(rest["history"]) == strip_times(full["history"])


def test_max_steps_at_an_epoch_end_logs_that_epoch_only(toy, tmp_path):
    s = train_lib.train_and_evaluate(toy.config(max_steps=16), str(tmp_path))
    assert [(r["epoch"], r["step"], r["partial_epoch"]) for r in s["history"]] == [
        (1, 8, False),
        (2, 16, False),
    ]


def test_crash_mid_epoch_resumes_from_step_checkpoint(toy, tmp_path, monkeypatch):
    full = train_lib.train_and_evaluate(toy.config(), str(tmp_path / "full"))
    real_step = train_lib.make_train_step
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        step = real_step(*args, **kwargs)

        def wrapped(*a):
            calls["n"] += 1
            if calls["n"] == 14:
                raise KeyboardInterrupt("simulated kill")
            return step(*a)

        return wrapped

    monkeypatch.setattr(train_lib, "make_train_step", crashing)
    with pytest.raises(KeyboardInterrupt):
        train_lib.train_and_evaluate(toy.config(checkpoint_every_steps=4), str(tmp_path / "k"))
    assert "12" in os.listdir(tmp_path / "k" / "checkpoints" / "last")
    monkeypatch.setattr(train_lib, "make_train_step", real_step)
    rest = train_lib.train_and_evaluate(toy.config(checkpoint_every_steps=4), str(tmp_path / "k"))
    assert strip_times(rest["history"]) == strip_times(full["history"])


def test_nonfinite_loss_stops_naming_step_and_keeps_checkpoint(toy, tmp_path):
    toy.nan = True
    with pytest.raises(train_lib.NonFiniteLossError, match=r"step 0 .*skip_nonfinite"):
        train_lib.train_and_evaluate(toy.config(), str(tmp_path))
    s = train_lib.train_and_evaluate(
        toy.config(skip_nonfinite=True, num_epochs=1), str(tmp_path / "skip")
    )
    params = jax.tree.leaves(s["params"])
    assert all(np.all(np.isfinite(np.asarray(p))) for p in params)


def test_batch_must_divide_over_devices_and_fit_the_data(toy, tmp_path):
    with pytest.raises(ValueError, match="fewer than train.batch_size"):
        train_lib.train_and_evaluate(toy.config(batch_size=512), str(tmp_path))


def test_schedules_are_concrete_values_chosen_by_the_config_argument():
    from experiments.configs import shd

    c = shd.get_config("rec")  # the official command's schedule
    assert (
        c.optimizer.learning_rate,
        c.optimizer.schedule,
        tuple(c.optimizer.decay_epochs),
        c.optimizer.decay_factor,
    ) == (5e-4, "multistep", (40, 80), 0.5)
    assert (c.train.batch_size, c.train.num_epochs) == (64, 100)
    c = shd.get_config("variant=rec,schedule=paper")  # the paper's text
    assert (c.optimizer.learning_rate, c.optimizer.schedule, c.optimizer.decay_every) == (
        5e-3,
        "step",
        10,
    )
    assert c.run_name == "shd-rec"
    with pytest.raises(ValueError, match="official, paper"):
        shd.get_config("variant=rec,schedule=fastest")
    with pytest.raises(ValueError, match="Unknown config argument 'sched'.*variant, schedule"):
        shd.get_config("rec,sched=official")


def test_step_schedule_values():
    import ml_collections

    opt = ml_collections.ConfigDict(
        dict(
            name="adam",
            learning_rate=1.0,
            schedule="step",
            decay_epochs=(),
            decay_every=10,
            decay_factor=0.8,
            grad_clip=0.0,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
        )
    )
    _, sched = train_lib.make_optimizer(opt, steps_per_epoch=5, num_epochs=100)
    assert float(sched(49)) == pytest.approx(1.0) and float(sched(50)) == pytest.approx(0.8)
    assert float(sched(5 * 95)) == pytest.approx(0.8**9, rel=1e-6)
    opt.schedule, opt.decay_epochs, opt.decay_factor = "multistep", (60, 80), 0.1
    _, sched = train_lib.make_optimizer(opt, steps_per_epoch=2, num_epochs=200)
    assert [float(sched(s)) for s in (119, 120, 159, 160)] == pytest.approx([1.0, 0.1, 0.1, 0.01])


FOUR_DEVICES = r"""
import json, os, sys
import jax, jax.numpy as jnp, numpy as np
sys.path.insert(0, sys.argv[1])
from tclif_jax import train as T
from tclif_jax.models import from_preset, parameters
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
assert jax.device_count() == 4, jax.devices()
model = from_preset("shd-rec", seed=0, hidden=(32, 16))
opt = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3, schedule="constant", decay_epochs=(),
                                     decay_every=0, decay_factor=1.0, grad_clip=0.0, b1=0.9, b2=0.999, eps=1e-8))
tx, _ = T.make_optimizer(opt, 1, 1)
rng = np.random.default_rng(0)
x = rng.poisson(0.05, (8, 40, 700)).astype(np.float32)
y = rng.integers(0, 20, 8).astype(np.int32)
out = {}
for n, shard_params in ((1, False), (4, False), (4, True)):
    mesh = T.make_mesh(jax.devices()[:n])
    p_sh = T.param_shardings(parameters(model), mesh, shard_params)
    params = jax.device_put(jax.tree.map(np.array, parameters(model)), p_sh)
    opt_state, o_sh = T.init_opt_state(tx, params, mesh)
    step = T.make_train_step(model, tx, mesh=mesh, shardings=(p_sh, o_sh))
    xb = jax.device_put(x, NamedSharding(mesh, P("data")))
    yb = jax.device_put(y, NamedSharding(mesh, P("data")))
    assert len(xb.sharding.device_set) == n
    p2, _, m = step(params, opt_state, xb, yb, jax.random.key(0))
    if shard_params:
        assert p2["layers"][0]["dense"]["kernel"].sharding.spec == P("data")
        n = "4s"
    out[n] = {"loss": float(m["loss"]), "w": np.asarray(p2["layers"][0]["dense"]["kernel"]).tolist()[:3]}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_loss_and_update_agree_on_1_and_4_devices(tmp_path):
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    res = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES, ROOT],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for other in ("4", "4s"):
        assert out["1"]["loss"] == pytest.approx(out[other]["loss"], rel=1e-5)
        np.testing.assert_allclose(out["1"]["w"], out[other]["w"], rtol=1e-5, atol=1e-6)


def test_checkpoint_of_the_previous_parameter_layout_is_refused_clearly(toy, tmp_path):
    import orbax.checkpoint as ocp

    # What tclif_jax 0.1 wrote: the arrays() tree and a meta without param_layout.
    old = {
        "layers": [
            {
                "w_in": np.zeros((4, 32), np.float32),
                "b_in": np.zeros(32, np.float32),
                "neuron": {"c": np.zeros(2, np.float32)},
            }
        ],
        "readout": {"w": np.zeros((32, 4), np.float32), "b": np.zeros(4, np.float32)},
    }
    mngr = ocp.CheckpointManager(
        tmp_path / "checkpoints" / "last", options=ocp.CheckpointManagerOptions(create=True)
    )
    mngr.save(
        8,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave((old, {})), meta=ocp.args.JsonSave({"step": 8, "epoch": 1})
        ),
    )
    mngr.wait_until_finished()
    with pytest.raises(CheckpointError, match="tclif_jax 0.1.*new --workdir"):
        train_lib.train_and_evaluate(toy.config(), str(tmp_path))
    assert os.listdir(tmp_path / "checkpoints" / "last") == ["8"]


def _close_histories(a, b, tol=1e-5):
    a, b = strip_times(a), strip_times(b)
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for ra, rb in zip(a, b):
        for key, value in ra.items():
            np.testing.assert_allclose(rb[key], value, rtol=tol, atol=tol, err_msg=key)


def test_resume_under_another_execution_equals_uninterrupted(toy, tmp_path, caplog):
    # Strategies agree to float rounding, so a run may change them when it resumes.
    def config(strategy, **train):
        c = toy.config(**train)
        c.execution.strategy = strategy
        return c

    full = train_lib.train_and_evaluate(config("fused"), str(tmp_path / "full"))
    train_lib.train_and_evaluate(config("fused", max_steps=11), str(tmp_path / "r"))
    with caplog.at_level("INFO"):
        rest = train_lib.train_and_evaluate(config("layerwise"), str(tmp_path / "r"))
    assert "execution.strategy: 'fused' -> 'layerwise'" in caplog.text
    _close_histories(full["history"], rest["history"])


def test_the_last_partial_batch_is_kept_unless_drop_last(toy, tmp_path):
    # 256 training examples at batch 48: 5 full batches and one of 16 (the official
    # loaders' drop_last=False), or 5 steps an epoch with drop_last=True.
    kept = train_lib.train_and_evaluate(toy.config(batch_size=48), str(tmp_path / "kept"))
    dropped = train_lib.train_and_evaluate(
        toy.config(batch_size=48, drop_last=True), str(tmp_path / "dropped")
    )
    assert [r["step"] for r in kept["history"]] == [6, 12, 18]
    assert [r["step"] for r in dropped["history"]] == [5, 10, 15]
    assert kept["history"][0]["train_loss"] != dropped["history"][0]["train_loss"]


def test_padded_rows_of_a_partial_batch_carry_no_weight(toy):
    # The step on 16 real rows padded to 48 (weight 0) equals the step on the 16 rows alone.
    import jax.numpy as jnp
    import optax

    from tclif_jax.models import parameters

    cfg = toy.config()
    model = train_lib.build_model(cfg, 4, 4)
    tx = optax.adam(1e-2)
    step = train_lib.make_train_step(model, tx)
    x, y = (np.asarray(a) for a in toy.dataset("toy", None).splits["train"])
    x16, y16 = jnp.asarray(x[:16]), jnp.asarray(y[:16])
    pad = np.resize(np.arange(16), 48)
    weights = jnp.asarray((np.arange(48) < 16).astype(np.float32))
    key = jax.random.key(0)

    def fresh():
        params = jax.tree.map(jnp.array, parameters(model))
        return params, tx.init(params)

    p_alone, _, m_alone = step(*fresh(), x16, y16, key)
    p_pad, _, m_pad = step(*fresh(), jnp.asarray(x[pad]), jnp.asarray(y[pad]), key, weights)
    np.testing.assert_allclose(float(m_pad["loss"]), float(m_alone["loss"]), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(p_pad), jax.tree.leaves(p_alone)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_settings_saved_by_0_2_are_read_in_todays_names():
    saved = {"model.strategy": "fused", "model.remat_chunk": 0, "model.hidden": [32]}
    assert train_lib._saved_settings({"settings": saved}) == {
        "model.hidden": [32],
        "train.drop_last": True,  # 0.2 dropped every epoch's last partial batch
    }
