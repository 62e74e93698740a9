"""Products of spikes (``Execution.spike_products``): the native kernels
``event_kernel.spike_matmul`` / ``spike_matmul_transpose`` against a float64 reference,
the per-product choice by density, and equal networks (loss and gradients) whichever
product runs, for every neuron and both strategies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tclif_jax import NEURONS, Execution, NetworkConfig, apply, event_kernel, from_config
from tclif_jax.execution import SPIKE_DENSITY_LIMITS, _by_density

TOL = dict(rtol=1e-5, atol=1e-5)
# As tests/test_adjoint.py: both sides compile the same HLO with LLVM's optimisations off.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


# The native kernels are allowed in every test here (tests/conftest.py turns them off elsewhere).
pytestmark = pytest.mark.usefixtures("native_kernels")


def spikes_like(rng, shape, density):
    """Mostly zeros; the rest 1, or a graded value (a count, a negative, -0.0) here and
    there: the kernels must take any float, skipping only zeros."""
    s = (rng.random(shape) < density).astype(np.float32)
    graded = rng.random(shape) < 0.1
    s = np.where(graded & (s > 0), rng.choice([2.0, -1.5, 0.25], shape), s)
    s[rng.random(shape) < 0.05] = -0.0
    return s.astype(np.float32)


def run(s, w, g, acc):
    """Forward, both cotangents and the accumulating transpose, jitted afresh."""

    def f(s, w, g, acc):
        out, vjp = jax.vjp(event_kernel.spike_matmul, s, w)
        ds, dw = vjp(g)
        return out, ds, dw, event_kernel.spike_matmul_transpose(s, g, acc)

    return [np.asarray(a) for a in jax.jit(f)(s, w, g, acc)]


# (4100, 30, 20): above the one-thread row limit, so the forward runs in parallel and the
# transpose in chunks. Widths 128 and 72 take the 64- and 8-column register blocks, 5 the
# scalar tail; F = 13 leaves a tail after the 8-wide zero test.
@pytest.mark.parametrize(
    "rows, f, n, density",
    [(1, 13, 5, 0.5), (256, 128, 128, 0.04), (40, 64, 72, 0.2), (4100, 30, 20, 0.1)],
)
def test_matches_the_dense_product_and_its_gradients(either_path, rows, f, n, density):
    rng = np.random.default_rng(rows)
    s = spikes_like(rng, (rows, f), density)
    w, g, acc = (rng.normal(size=shape).astype(np.float32) for shape in ((f, n), (rows, n), (f, n)))
    out, ds, dw, dw_acc = run(s, w, g, acc)
    s64, w64, g64 = (a.astype(np.float64) for a in (s, w, g))
    np.testing.assert_allclose(out, s64 @ w64, **TOL)
    np.testing.assert_allclose(ds, g64 @ w64.T, **TOL)
    np.testing.assert_allclose(dw, s64.T @ g64, **TOL)
    np.testing.assert_allclose(dw_acc, acc + s64.T @ g64, **TOL)


def test_edge_rows(either_path):
    """An empty row, a full row, a single nonzero at the last column."""
    s = np.zeros((3, 11), np.float32)
    s[1] = 1.0
    s[2, 10] = 3.0
    w = np.arange(11 * 4, dtype=np.float32).reshape(11, 4)
    g = np.ones((3, 4), np.float32)
    out, _, dw, _ = run(s, w, g, np.zeros((11, 4), np.float32))
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_allclose(out[1], w.sum(0), **TOL)
    np.testing.assert_allclose(out[2], 3 * w[10], **TOL)
    np.testing.assert_allclose(dw, s.T @ g, **TOL)


def test_the_accumulator_carries_through_a_loop(either_path):
    """The transpose as a running sum in a scan (its buffer may be the result's)."""
    rng = np.random.default_rng(1)
    s = spikes_like(rng, (7, 5, 16), 0.2)
    g = rng.normal(size=(7, 5, 3)).astype(np.float32)

    def total(s, g):
        def body(acc, sg):
            return event_kernel.spike_matmul_transpose(*sg, acc), None

        return jax.lax.scan(body, jnp.zeros((16, 3)), (s, g))[0]

    want = np.einsum("tbf,tbn->fn", s.astype(np.float64), g)
    np.testing.assert_allclose(jax.jit(total)(s, g), want, **TOL)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"spikes \(R, F\) and a kernel \(F, n\)"):
        event_kernel.spike_matmul(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"spikes \(R, F\) and a cotangent \(R, n\)"):
        event_kernel.spike_matmul_transpose(np.zeros((2, 3)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="accumulator"):
        event_kernel.spike_matmul_transpose(np.zeros((2, 3)), np.zeros((2, 5)), np.zeros((5, 3)))


# ----------------------------------------------------------------------------- the choice


@pytest.mark.parametrize("product", sorted(SPIKE_DENSITY_LIMITS))
@pytest.mark.parametrize("extra", [0, 1])
def test_auto_takes_the_kernel_up_to_the_limit_and_dense_above(product, extra):
    """``_by_density`` on a 1000-entry array with exactly the limit (then one more)
    nonzero: the sparse branch at the limit, the dense one above it."""
    limit = int(SPIKE_DENSITY_LIMITS[product] * 1000)
    s = jnp.zeros(1000).at[: limit + extra].set(1.0)
    one, zero = (lambda: jnp.int32(1)), (lambda: jnp.int32(0))
    chose = jax.jit(lambda s: _by_density("auto", product, s, one, zero))(s)
    assert int(chose) == (1 if extra == 0 else 0)
    assert int(_by_density("events", product, s, one, zero)) == 1


def _lowered(execution, config, params, x):
    loss = lambda p: jnp.sum(apply(config, p, x, execution)[0] ** 2)  # noqa: E731
    return jax.jit(jax.grad(loss)).lower(params).as_text()


def test_which_products_each_setting_lowers(monkeypatch):
    if not event_kernel.available():
        pytest.skip(event_kernel.status())
    config = NetworkConfig(6, (5, 4), 3, "lif", recurrent=(True, False))
    params = from_config(config, seed=0).params()
    x = jnp.ones((2, 3, 6))
    text = {
        mode: _lowered(Execution(spike_products=mode), config, params, x)
        for mode in ("auto", "events", "dense")
    }
    assert "tclif_spike_matmul" not in text["dense"]
    for mode in ("auto", "events"):
        assert (
            "@tclif_spike_matmul(" in text[mode] and "@tclif_spike_matmul_transpose(" in text[mode]
        )
    assert "stablehlo.case" in text["auto"] or "stablehlo.if" in text["auto"]  # the choice
    bf16 = _lowered(Execution(matmul_dtype="bfloat16"), config, params, x)
    assert "tclif_spike_matmul" not in bf16  # the bf16 policy keeps its dense products
    monkeypatch.setenv("TCLIF_NATIVE", "0")
    event_kernel.reset_for_tests()
    assert "tclif_spike" not in _lowered(Execution(spike_products="events"), config, params, x)


def test_execution_refuses_an_unknown_setting():
    with pytest.raises(
        ValueError, match="spike_products='sparse' is not valid; choose one of: auto, dense, events"
    ):
        Execution(spike_products="sparse")


# ----------------------------------------------------------------------------- networks


def _loss_and_grads(config, params, x, y, execution):
    def loss(p):
        logits, aux = apply(config, p, x, execution)
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(x.shape[0]), y])
        return ce, aux["firing_rates"]

    step = jax.jit(jax.value_and_grad(loss, has_aux=True)).lower(params)
    return step.compile(compiler_options=FAST_COMPILE)(params)


def _assert_products_agree(name, strategy, backward="auto", modes=("events", "auto")):
    """The same loss, firing and gradients (1e-5) with every product dense, with every
    product of spikes on the kernel, and chosen by density; a recurrent layer and a
    feed-forward one above it."""
    settings = {} if name == "alif_official" else {"v_th": 0.5}
    config = NetworkConfig(12, (10, 8), 4, name, settings, recurrent=(True, False))
    params = from_config(config, seed=3).params()
    # Larger input weights, so that the layers fire (the products are not all of zeros).
    layers = tuple(
        lp._replace(dense=lp.dense._replace(kernel=3 * lp.dense.kernel)) for lp in params.layers
    )
    params = params._replace(layers=layers)
    rng = np.random.default_rng(4)
    x = jnp.asarray((rng.random((3, 16, 12)) < 0.3).astype(np.float32))
    y = jnp.arange(3) % 4
    base = Execution(strategy=strategy, backward=backward)
    want = _loss_and_grads(config, params, x, y, base.replace(spike_products="dense"))
    assert float(want[0][1].min()) > 0.01, want[0][1]  # every layer fires
    for mode in modes:
        got = _loss_and_grads(config, params, x, y, base.replace(spike_products=mode))
        for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), **TOL, err_msg=mode)


@pytest.mark.parametrize("backward", ["auto", "autodiff"])
@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
def test_spike_products_agree_tclif(either_path, strategy, backward):
    _assert_products_agree("tclif", strategy, backward)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(NEURONS) - {"tclif"}))
def test_spike_products_agree_every_neuron(name):
    # Every neuron's own adjoint around the kernels: the fused loop, whose backward calls
    # them at every step (the choice by density and the layerwise products are covered
    # by the TC-LIF test above).
    _assert_products_agree(name, "fused", modes=("events",))


def test_the_training_page_states_the_limits_in_use():
    import os

    page = os.path.join(os.path.dirname(__file__), "..", "docs", "training.md")
    text = " ".join(open(page).read().split())
    forward, weight_grad = (
        round(100 * SPIKE_DENSITY_LIMITS[k]) for k in ("forward", "weight_grad")
    )
    assert (
        f"at most {forward}% nonzero for the forward, {weight_grad}% for the weight gradient"
        in text
    )
