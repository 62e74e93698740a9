"""tclif_jax.event_kernel: the native event projection and its pure-JAX fallback, against
a float64 NumPy reference of the dense product they stand for."""

import logging
import shutil

import jax
import numpy as np
import pytest

from tclif_jax import event_kernel

HAS_CXX = shutil.which("c++") is not None
needs_cxx = pytest.mark.skipif(not HAS_CXX, reason="no C++ compiler 'c++' on this machine")
TOL = dict(rtol=1e-5, atol=1e-5)


# The native kernels are allowed in every test here (tests/conftest.py turns them off elsewhere).
pytestmark = pytest.mark.usefixtures("native_kernels")


def random_events(rng, rows, k, f, density=0.6):
    """Counts in {1, 2, 3} on about ``density`` of the entries, padding (channel 0,
    count 0) on the rest; channels may repeat within a row."""
    live = rng.random((rows, k)) < density
    channels = np.where(live, rng.integers(0, f, (rows, k)), 0).astype(np.int32)
    counts = (rng.integers(1, 4, (rows, k)) * live).astype(np.float32)
    return channels, counts


def reference(channels, counts, kernel, g):
    """Float64 ``x @ W``, ``x^T g`` and the counts' cotangent ``g[r] . W[channels[r, k]]``
    for the dense ``x`` the events stand for; channels outside ``0..F-1`` count for nothing."""
    rows, f = channels.shape[0], kernel.shape[0]
    keep = (channels >= 0) & (channels < f)
    r, c = np.arange(rows)[:, None], np.where(keep, channels, 0)
    x = np.zeros((rows, f))
    np.add.at(x, (r, c), np.where(keep, counts, 0))
    w, g = kernel.astype(np.float64), g.astype(np.float64)
    return x @ w, x.T @ g, np.where(keep, (g @ w.T)[r, c], 0)


def run(channels, counts, kernel, g):
    """Jitted forward, kernel and counts cotangents (a new function: traced afresh)."""

    def f(channels, counts, kernel, g):
        project = lambda c, w: event_kernel.event_matmul(channels, c, w)  # noqa: E731
        out, vjp = jax.vjp(project, counts, kernel)
        dcounts, dkernel = vjp(g)
        return out, dkernel, dcounts

    return [np.asarray(a) for a in jax.jit(f)(channels, counts, kernel, g)]


def check(channels, counts, kernel, seed=0):
    """The three results against the reference; returns them."""
    rng = np.random.default_rng(seed)
    kernel = np.asarray(kernel, np.float32)
    g = rng.normal(size=(channels.shape[0], kernel.shape[1])).astype(np.float32)
    got = run(channels, counts, kernel, g)
    for name, a, b in zip(
        ("out", "dkernel", "dcounts"), got, reference(channels, counts, kernel, g)
    ):
        np.testing.assert_allclose(a, b, **TOL, err_msg=name)
    return got


def kernel_for(f, n, seed=1):
    return np.random.default_rng(seed).normal(size=(f, n)).astype(np.float32)


# (20, 6, 4096, 1024): partial sums of 16 MiB each, so the transpose takes 4 chunks.
@pytest.mark.parametrize(
    "rows, k, f, n", [(16, 8, 40, 12), (33, 24, 700, 5), (7, 3, 3, 64), (20, 6, 4096, 1024)]
)
def test_matches_dense_product_and_gradients(native, rows, k, f, n):
    channels, counts = random_events(np.random.default_rng(rows), rows, k, f)
    check(channels, counts, kernel_for(f, n))


def test_jax_grad_of_a_loss(native):
    channels, counts = random_events(np.random.default_rng(3), 10, 6, 20)
    kernel, target = kernel_for(20, 4), kernel_for(10, 4, seed=2)

    def loss(w, c):
        return ((event_kernel.event_matmul(channels, c, w) - target) ** 2).sum()

    dw, dc = jax.jit(jax.grad(loss, argnums=(0, 1)))(kernel, counts)
    out = reference(channels, counts, kernel, np.zeros_like(target))[0]
    _, want_dw, want_dc = reference(channels, counts, kernel, 2 * (out - target))
    np.testing.assert_allclose(dw, want_dw, **TOL)
    np.testing.assert_allclose(dc, want_dc, **TOL)


def test_edge_cases(either_path):
    f = 6
    channels = np.array(
        [
            [0, 0, 0, 0, 0, 0],  # empty row: all padding
            [0, 1, 2, 3, 4, 5],  # every channel active
            [2, 2, 2, 5, 0, 0],  # a repeated channel adds up
            [4, 1, 0, 0, 0, 0],  # counts above 1
        ],
        np.int32,
    )
    counts = np.array(
        [[0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 2, 1, 1, 0, 0], [3.5, 7, 0, 0, 0, 0]],
        np.float32,
    )
    kernel = kernel_for(f, 9)
    out, dkernel, _ = check(channels, counts, kernel)
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_allclose(out[1], kernel.sum(0), **TOL)
    np.testing.assert_allclose(out[2], 4 * kernel[2] + kernel[5], **TOL)
    np.testing.assert_allclose(out[3], 3.5 * kernel[4] + 7 * kernel[1], **TOL)
    assert dkernel.shape == kernel.shape


@pytest.mark.parametrize("rows, k", [(1, 1), (1, 5), (9, 1)])
def test_single_row_or_single_entry(either_path, rows, k):
    channels, counts = random_events(np.random.default_rng(k), rows, k, 11, density=1.0)
    check(channels, counts, kernel_for(11, 3))


def test_out_of_range_channels_count_for_nothing(either_path):
    channels = np.array([[-1, 3, 4], [4, 100, 1]], np.int32)
    kernel = kernel_for(4, 3)
    out, _, dcounts = check(channels, np.ones((2, 3), np.float32), kernel)
    np.testing.assert_allclose(out, [kernel[3], kernel[1]], **TOL)  # F = 4: only 3 and 1
    np.testing.assert_array_equal(dcounts == 0, [[True, False, True], [True, True, False]])


def test_vmap(native):
    channels, counts = random_events(np.random.default_rng(5), 6, 4, 10)
    kernel = kernel_for(10, 3)
    batched = jax.vmap(lambda c: event_kernel.event_matmul(channels, c, kernel))(
        np.stack([counts, 2 * counts])
    )
    want = reference(channels, counts, kernel, np.zeros((6, 3), np.float32))[0]
    np.testing.assert_allclose(batched, np.stack([want, 2 * want]), **TOL)


def test_rejects_bad_inputs():
    with pytest.raises(TypeError, match="integers"):
        event_kernel.event_matmul(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="one shape"):
        event_kernel.event_matmul(np.zeros((2, 3), int), np.zeros((2, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="one shape"):
        event_kernel.event_matmul(np.zeros((3,), int), np.zeros((3,)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="one shape"):
        ones = np.ones((2, 3), int)
        event_kernel.event_matmul(ones, ones, np.zeros((4, 5)), valid=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="bias"):
        event_kernel.event_matmul(
            np.ones((2, 3), int), np.ones((2, 3)), np.zeros((4, 5)), bias=np.zeros(4)
        )


# 4,480 rows, above the kernels' one-thread limit, so the forward runs in parallel and the
# transpose in chunks; n = 72 and 128 take the 64- and 8-column register blocks, n = 5
# the scalar tail.
@pytest.mark.parametrize(
    "lead, k, f, n", [((3, 5), 4, 9, 5), ((70, 64), 6, 30, 72), ((18,), 8, 20, 128)]
)
def test_valid_mask_bias_and_leading_axes(either_path, lead, k, f, n):
    """Events (..., K) with a valid mask and a bias give (..., n): the dense product of the
    valid entries, plus the bias; and the kernel's, bias's and counts' cotangents."""
    rng = np.random.default_rng(k)
    rows = int(np.prod(lead))
    channels, counts = random_events(rng, rows, k, f, density=0.8)
    valid = rng.random(channels.shape) < 0.7  # invalid entries keep their counts: ignored
    kernel, bias = kernel_for(f, n), rng.normal(size=n).astype(np.float32)
    g = rng.normal(size=(*lead, n)).astype(np.float32)
    shaped = [a.reshape(*lead, k) for a in (channels, counts, valid)]

    def project(counts, kernel, bias):
        return event_kernel.event_matmul(shaped[0], counts, kernel, shaped[2], bias)

    out, vjp = jax.vjp(project, shaped[1], kernel, bias)
    dcounts, dkernel, dbias = vjp(g)
    g_rows = g.reshape(rows, n)
    want_out, want_dw, want_dc = reference(channels, counts * valid, kernel, g_rows)
    np.testing.assert_allclose(out, (want_out + bias).reshape(*lead, n), **TOL)
    # Float32 sums of thousands of terms: their error bounds scale with the sums of |terms|.
    dw_scale = reference(channels, counts * valid, kernel, np.abs(g_rows))[1].max()
    np.testing.assert_allclose(dkernel, want_dw, rtol=0, atol=1e-6 * dw_scale)
    db_scale = np.abs(g_rows).sum(0).max()
    np.testing.assert_allclose(
        dbias, g_rows.astype(np.float64).sum(0), rtol=0, atol=1e-6 * db_scale
    )
    np.testing.assert_allclose(
        np.asarray(dcounts).reshape(rows, k), np.where(valid, want_dc, 0), **TOL
    )


THREADS_SCRIPT = """
import hashlib, numpy as np, jax
from tclif_jax import event_kernel
rng = np.random.default_rng(3)
live = rng.random((300, 16)) < 0.7
channels = np.where(live, rng.integers(0, 90, (300, 16)), 0).astype(np.int32)
counts = (rng.integers(1, 4, (300, 16)) * live).astype(np.float32)
kernel = rng.normal(size=(90, 40)).astype(np.float32)
g = rng.normal(size=(300, 40)).astype(np.float32)
out, vjp = jax.vjp(lambda w: event_kernel.event_matmul(channels, counts, w), kernel)
assert event_kernel.available(), event_kernel.status()
print(hashlib.sha256(np.asarray(out).tobytes() + np.asarray(vjp(g)[0]).tobytes()).hexdigest())
"""


@pytest.mark.slow  # two subprocesses
@needs_cxx
def test_results_do_not_depend_on_the_number_of_threads():
    import os
    import subprocess
    import sys

    digests = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-c", THREADS_SCRIPT], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(done.stdout.split()[-1])
    assert len(set(digests)) == 1, digests


@pytest.mark.slow  # compiles the library afresh (a compiler subprocess)
@needs_cxx
def test_native_is_built_and_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TCLIF_CACHE_DIR", str(tmp_path))
    assert event_kernel.available()
    assert event_kernel.status() == f"built: {next(tmp_path.glob('native/*/event_matmul.so'))}"
    assert not list(tmp_path.rglob("*.tmp"))  # the temporary name was replaced
    channels, counts = random_events(np.random.default_rng(0), 5, 4, 8)
    kernel = kernel_for(8, 3)

    def project(c, w):
        return event_kernel.event_matmul(channels, c, w)

    assert "@tclif_event_matmul(" in jax.jit(project).lower(counts, kernel).as_text()
    loss = jax.grad(lambda w: project(counts, w).sum())
    assert "@tclif_event_matmul_transpose(" in jax.jit(loss).lower(kernel).as_text()
    # Another platform (exported for CUDA here) lowers the pure-JAX path.
    exported = jax.export.export(jax.jit(project), platforms=["cuda"])(counts, kernel)
    assert "@tclif_event" not in exported.mlir_module()


@needs_cxx
def test_disabled_by_environment_gives_the_same_results(native, monkeypatch, caplog):
    channels, counts = random_events(np.random.default_rng(7), 20, 12, 50)
    kernel = kernel_for(50, 6)
    native_results = check(channels, counts, kernel)
    monkeypatch.setenv("TCLIF_NATIVE", "0")
    event_kernel.reset_for_tests()
    with caplog.at_level(logging.WARNING):
        assert not event_kernel.available()
    assert event_kernel.status() == "fallback: disabled by TCLIF_NATIVE=0"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    project = lambda c: event_kernel.event_matmul(channels, c, kernel)  # noqa: E731
    assert "@tclif_event" not in jax.jit(project).lower(counts).as_text()
    for a, b in zip(check(channels, counts, kernel), native_results):
        np.testing.assert_allclose(a, b, **TOL)


def test_missing_compiler_falls_back(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TCLIF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    with caplog.at_level(logging.WARNING):
        assert not event_kernel.available()
    assert (
        event_kernel.status()
        == f"fallback: no C++ compiler '{tmp_path / 'no-such-c++'}' (set CXX to one)"
    )
    assert any("no C++ compiler" in r.getMessage() for r in caplog.records)
    assert not list(tmp_path.rglob("*.so"))
    channels, counts = random_events(np.random.default_rng(8), 12, 5, 30)
    check(channels, counts, kernel_for(30, 7))


def test_failing_compiler_falls_back(tmp_path, monkeypatch):
    if shutil.which("false") is None:
        pytest.skip("no 'false' program")
    monkeypatch.setenv("TCLIF_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    assert not event_kernel.available()
    assert event_kernel.status().startswith("fallback: false -O3")
    assert "failed with exit code 1" in event_kernel.status()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no partial library left
    channels, counts = random_events(np.random.default_rng(9), 4, 3, 5)
    check(channels, counts, kernel_for(5, 2))
