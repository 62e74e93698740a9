"""Evaluation counts every test example exactly once (the last partial batch is padded and
masked, never dropped), for arrays on the device, on the host, and for streamed spike events."""

from __future__ import annotations

import numpy as np
import optax
import pytest

from tclif_jax import testing, train_steps
from tclif_jax import train as train_lib
from tclif_jax.config import NetworkConfig
from tclif_jax.data import spiking_audio
from tclif_jax.models import from_config, parameters
from tclif_jax.sharding import Split, make_mesh


def direct(model, x, y, scale=1.0):
    """Accuracy and mean loss of the whole split in one call, no batching."""
    logits = np.asarray(model(np.asarray(x, np.float32) * scale), np.float64)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return float(np.mean(logits.argmax(-1) == y)), float(loss)


@pytest.mark.parametrize("on_device", [True, False])
def test_every_test_example_counted_once(on_device):
    rng = np.random.default_rng(0)
    n, batch = 37, 8  # 4 full batches and a last one of 5
    x = rng.normal(0, 1, (n, 12, 4)).astype(np.float32)
    model = from_config(NetworkConfig(4, (16,), 3, neuron_settings={"v_th": 0.3}), seed=1)
    logits = np.asarray(model(x))
    # Labels the model gets right except on the last example: a padded batch that repeated
    # it (or dropped it) would move the accuracy away from 36/37.
    y = logits.argmax(-1).astype(np.int32)
    y[-1] = (y[-1] + 1) % 3
    acc, loss = direct(model, x, y)
    assert acc == pytest.approx(36 / 37)
    mesh = make_mesh()
    split = Split(x, y, mesh, on_device)
    step = train_lib.make_eval_step(model)
    ev = train_steps.evaluate(step, parameters(model), split, batch, mesh.devices.size, "test")
    assert ev["count"] == n
    assert ev["acc"] == pytest.approx(acc, abs=1e-9)
    assert ev["loss"] == pytest.approx(loss, rel=1e-5)
    # One batch of all n (batch n or larger): the same numbers.
    for bs in (37, 64):
        again = train_steps.evaluate(step, parameters(model), split, bs, mesh.devices.size, "test")
        assert again["count"] == n and again["acc"] == pytest.approx(acc, abs=1e-9), bs


def test_streamed_events_evaluate_like_dense(tmp_path):
    path = testing.write_fake_hsd(str(tmp_path / "ssc_test.h5"), 37, 35, seed=2)
    events, y, _ = spiking_audio.read_events(path)
    dense = np.asarray(events)
    model = from_config(NetworkConfig(700, (8,), 35, neuron_settings={"v_th": 0.5}), seed=0)
    acc, loss = direct(model, dense, y)
    mesh = make_mesh()
    step = train_lib.make_eval_step(model)
    split = Split(events, y, mesh, False)  # host path: each batch binned from the events
    ev = train_steps.evaluate(step, parameters(model), split, 8, mesh.devices.size, "test")
    assert ev["count"] == 37
    assert ev["acc"] == pytest.approx(acc, abs=1e-9)
    assert ev["loss"] == pytest.approx(loss, rel=1e-5)
