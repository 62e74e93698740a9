"""Event inputs (``tclif_jax.events``): the padded layout, its checks, and equality with
the dense path for every neuron, both strategies, the train step and a training run."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tclif_jax import NEURONS, Execution, NetworkConfig, apply, from_config, parameters
from tclif_jax import events as ev
from tclif_jax.events import EventBatch
from tclif_jax.testing import shd_like_counts
from tclif_jax.train_steps import inputs_finite, make_train_step

B, T, F = 3, 10, 12
# As tests/test_adjoint.py: both sides compile the same HLO with LLVM's optimisations off.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


# The native kernels are allowed in every test here (tests/conftest.py turns them off elsewhere).
pytestmark = pytest.mark.usefixtures("native_kernels")


def _spikes(shape, density, seed=0, max_count=1):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, max_count + 1, shape)
    return np.where(rng.random(shape) < density, counts, 0).astype(np.uint8)


# ----------------------------------------------------------------------------- layout


@pytest.mark.parametrize(
    "needed,k", [(0, 8), (1, 8), (8, 8), (9, 16), (63, 64), (64, 64), (65, 128), (129, 256)]
)
def test_bucket_k(needed, k):
    assert ev.bucket_k(needed) == k


def test_from_dense_keeps_channel_order_counts_and_pads():
    x = np.zeros((1, 2, 5), np.float32)
    x[0, 0, [4, 1]] = [2.0, 3.0]  # two channels, out of order by value
    e = ev.from_dense(x, k=3)
    assert e.shape == (1, 2, 5) and e.k == 3
    np.testing.assert_array_equal(e.channels[0, 0], [1, 4, 0])
    np.testing.assert_array_equal(e.counts[0, 0], [3.0, 2.0, 0.0])
    np.testing.assert_array_equal(e.valid[0, 0], [True, True, False])
    np.testing.assert_array_equal(e.valid[0, 1], [False] * 3)  # an empty row
    assert ev.from_dense(x).k == 8  # bucket_k(2)


@pytest.mark.parametrize(
    "shape,density,k",
    [
        ((2, 7, 9), 0.3, None),
        ((1, 4, 6), 1.0, None),  # batch 1, every channel in every row
        ((3, 5, 4), 0.0, None),  # no event at all
        ((2, 6, 5), 0.15, 5),  # k = F
    ],
)
def test_to_dense_inverts_from_dense(shape, density, k):
    x = _spikes(shape, density, max_count=3)
    e = ev.from_dense(x, k=k)
    ev.validate(e)
    np.testing.assert_array_equal(np.asarray(ev.to_dense(e)), x.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(jax.jit(ev.to_dense)(e)), x.astype(np.float32))


def test_k_one_and_duplicate_channels():
    x = np.zeros((2, 3, 4), np.float32)
    x[0, 1, 2] = 5.0
    x[1, 2, 0] = 1.0
    e = ev.from_dense(x, k=1)
    assert e.k == 1
    np.testing.assert_array_equal(np.asarray(ev.to_dense(e)), x)
    # A hand-made row that repeats a channel adds up, as the dense sum it stands for.
    dup = EventBatch(
        np.array([[[3, 3, 1]]], np.int32),
        np.array([[[1.0, 2.0, 4.0]]], np.float32),
        np.array([[[True, True, True]]]),
        5,
    )
    ev.validate(dup)
    np.testing.assert_array_equal(np.asarray(ev.to_dense(dup))[0, 0], [0, 4, 0, 3, 0])


def test_events_are_a_pytree_and_index_on_leading_axes():
    e = ev.from_dense(_spikes((4, 5, 6), 0.4))
    leaves, treedef = jax.tree.flatten(e)
    assert len(leaves) == 3 and jax.tree.unflatten(treedef, leaves) == e
    assert e[1:3].shape == (2, 5, 6) and e.time_major().shape == (5, 4, 6)
    np.testing.assert_array_equal(
        np.asarray(ev.to_dense(e.time_major())), np.asarray(ev.to_dense(e)).swapaxes(0, 1)
    )
    np.testing.assert_array_equal(np.asarray(e.scaled(0.5).counts), np.asarray(e.counts) * 0.5)


# ----------------------------------------------------------------------------- checks


def _event(channels, counts, valid=None, num_channels=4):
    channels = np.array(channels, np.int32).reshape(1, 1, -1)
    counts = np.array(counts, np.float32).reshape(1, 1, -1)
    valid = np.ones(channels.shape, bool) if valid is None else np.array(valid).reshape(1, 1, -1)
    return EventBatch(channels, counts, valid, num_channels)


@pytest.mark.parametrize(
    "bad,match",
    [
        (_event([0, 4], [1, 1]), r"channel indices 0\.\.4 outside 0\.\.3"),
        (_event([-1, 2], [1, 1]), r"channel indices -1\.\.2 outside"),
        (_event([0, 1], [1, -2]), r"1 negative value"),
        (_event([0, 1], [np.nan, 1]), r"1 non-finite value"),
        (
            EventBatch(
                np.zeros((1, 2, 3), np.int32), np.zeros((1, 2, 2)), np.zeros((1, 2, 3), bool), 4
            ),
            r"must share one shape",
        ),
        (_event([0, 1], [1, 1], num_channels=0), r"num_channels=0"),
    ],
)
def test_bad_events_raise_outside_jit(bad, match):
    with pytest.raises(ValueError, match=match):
        ev.validate(bad)


def test_padding_is_not_checked_and_invalid_entries_do_not_count():
    e = _event([0, 9], [2, -5], valid=[True, False])
    ev.validate(e)  # the padded entry's channel and count are never read
    np.testing.assert_array_equal(np.asarray(ev.to_dense(e))[0, 0], [2, 0, 0, 0])


def test_from_dense_refuses_what_events_cannot_carry():
    x = np.zeros((1, 2, 5), np.float32)
    x[0, 1, :3] = 1
    with pytest.raises(ValueError, match=r"k=2 is too small: row \(0, 1\) has 3 active"):
        ev.from_dense(x, k=2)
    with pytest.raises(ValueError, match="6 negative value"):
        ev.from_dense(-np.ones((1, 2, 3)))
    x[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="1 non-finite"):
        ev.from_dense(x)
    with pytest.raises(TypeError, match="outside jit"):
        jax.jit(ev.from_dense)(x)


def test_the_model_validates_events_outside_jit():
    model = from_config(NetworkConfig(in_features=4, hidden=(5,), num_classes=3))
    with pytest.raises(ValueError, match="outside 0..3"):
        model(_event([0, 7], [1, 1]))
    with pytest.raises(ValueError, match=r"Expected input of shape \(batch, time, 4\)"):
        model(_event([0, 1], [1, 1], num_channels=6))
    assert model(_event([0, 3], [1, 2])).shape == (1, 3)


# ----------------------------------------------------------------------------- equality


def _config(name):
    settings = {} if name == "alif_official" else {"v_th": 0.5}
    return NetworkConfig.from_preset(
        "shd-rec",
        neuron=name,
        in_features=F,
        hidden=(8, 6),
        recurrent=(True, False),
        num_classes=4,
        **settings,
    )


def _loss_and_grads(config, params, x, y, execution):
    def loss(p):
        logits, aux = apply(config, p, x, execution)
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(B), y])
        return ce, (logits, aux["firing_rates"])

    step = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(params)
    (l, (logits, rates)), g = step.compile(compiler_options=FAST_COMPILE)(params)
    return l, logits, rates, g


def _assert_events_equal_dense(name, strategy):
    config = _config(name)
    params = from_config(config, seed=2).params()
    x = _spikes((B, T, F), 0.4, seed=5, max_count=2)
    y = jnp.arange(B) % 4
    ex = Execution(strategy=strategy)
    want = _loss_and_grads(config, params, jnp.asarray(x, jnp.float32), y, ex)
    got = _loss_and_grads(config, params, ev.from_dense(x), y, ex)
    assert float(want[2][0]) > 0.01  # the first layer fires: its gradients are not all zero
    assert jax.tree.structure(got[3]) == jax.tree.structure(want[3])
    flat = jax.tree_util.tree_flatten_with_path((want[:3], want[3]))[0]
    for (path, w), g in zip(flat, jax.tree.leaves((got[:3], got[3]))):
        np.testing.assert_allclose(
            np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5, err_msg=jax.tree_util.keystr(path)
        )


@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
def test_events_equal_dense_tclif(strategy):
    _assert_events_equal_dense("tclif", strategy)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
@pytest.mark.parametrize("name", sorted(set(NEURONS) - {"tclif"}))
def test_events_equal_dense_every_neuron(name, strategy):
    _assert_events_equal_dense(name, strategy)


def test_training_on_events_tracks_dense():
    """200 Adam steps on SHD-shaped events and on their dense counts give the same losses."""
    config = NetworkConfig.from_preset(
        "shd-rec", in_features=32, hidden=(16,), recurrent=(True,), num_classes=4, v_th=0.5
    )
    model = from_config(config, seed=0)
    x = shd_like_counts(64, 20, 32, seed=1)
    y = np.arange(64) % 4
    events = ev.from_dense(x)
    tx = optax.adam(3e-3)
    step = make_train_step(model, tx, input_scale=0.5)

    def run(batch_of):
        params = jax.tree.map(jnp.array, parameters(model))  # a copy: the step donates it
        opt_state, losses = tx.init(params), []
        for i in range(200):
            rows = np.arange(i * 16, i * 16 + 16) % 64
            params, opt_state, m = step(params, opt_state, batch_of(rows), y[rows], None)
            losses.append(float(m["loss"]))
        return np.array(losses)

    dense = run(lambda r: jnp.asarray(x[r]))
    sparse = run(lambda r: events[r])
    assert dense[-20:].mean() < 0.8 * dense[:20].mean()  # it learns
    # Step by step while float32 rounding has not flipped a spike; after that the runs
    # differ as two runs with equal settings do (here from step 191, where the loss has
    # fallen tenfold), so they are compared on their means over blocks of 20 steps.
    np.testing.assert_allclose(sparse[:100], dense[:100], rtol=1e-4, atol=1e-5)
    blocks = lambda a: a.reshape(-1, 20).mean(1)  # noqa: E731
    np.testing.assert_allclose(blocks(sparse), blocks(dense), rtol=0.1)


def test_inputs_finite_on_arrays_and_events():
    assert inputs_finite(jnp.ones((2, 3, 4))) and inputs_finite(jnp.ones((2, 3, 4), jnp.uint8))
    assert not inputs_finite(jnp.ones((2, 3, 4)).at[1, 2, 3].set(jnp.nan))
    e = ev.from_dense(np.ones((2, 3, 4), np.float32))
    assert inputs_finite(e)
    assert not inputs_finite(e.scaled(jnp.inf))


def test_shd_like_counts_have_the_asked_density_and_skew():
    x = shd_like_counts(40, 50, 100, density=0.05, seed=3)
    assert x.dtype == np.uint8 and x.shape == (40, 50, 100)
    assert 0.035 < (x > 0).mean() < 0.06  # repeats in one cell make it a little lower
    per_channel = (x > 0).mean((0, 1))
    assert per_channel[:10].mean() > 5 * per_channel[-10:].mean()  # busier low channels
    np.testing.assert_array_equal(x, shd_like_counts(40, 50, 100, density=0.05, seed=3))
