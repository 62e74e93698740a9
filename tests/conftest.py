"""Shared fixtures and set-up: every test runs on the CPU backend, in float32."""

import os
import sys

import pytest

# Before JAX initialises: the tests run on CPU whatever the machine has.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compiling dominates the suite (hundreds of small programs), and LLVM's optimisations are
# most of each compile, so the tests compile without them (child processes inherit this).
# Results then differ from a default compile in the last bits, which a 784-step spiking
# run can amplify into another prediction; a test that checks a figure recorded under a
# default compile runs it in a child process with DEFAULT_XLA_FLAGS
# (tests/test_pretrained.py). TCLIF_TEST_FULL_OPT=1 keeps the default compile throughout.
# Kept in the environment: pytest-xdist's workers inherit the flags set below.
os.environ.setdefault("TCLIF_TEST_DEFAULT_XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
DEFAULT_XLA_FLAGS = os.environ["TCLIF_TEST_DEFAULT_XLA_FLAGS"]
if os.environ.get("TCLIF_TEST_FULL_OPT") != "1":
    os.environ["XLA_FLAGS"] = f"{DEFAULT_XLA_FLAGS} --xla_backend_optimization_level=0".strip()

# A compilation cache on disk for the session, shared by pytest-xdist's workers and the
# child processes (all inherit the environment): many tests compile the same programs
# (the toy task's train step, above all), which the in-memory cache cannot reuse across
# tests because each builds its functions anew. Made by the first process, which removes
# it at the end (pytest_unconfigure); TCLIF_TEST_NO_COMPILE_CACHE=1 turns it off.
if os.environ.get("TCLIF_TEST_NO_COMPILE_CACHE") != "1" and not os.environ.get(
    "JAX_COMPILATION_CACHE_DIR"
):
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="tclif-test-xla-cache-")
    os.environ["TCLIF_TEST_COMPILE_CACHE_OWNER"] = str(os.getpid())
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

# The native kernels (tclif_jax.event_kernel) are tested where they are the subject:
# tests/test_event_kernel.py, test_spike_products.py and test_events.py turn them back on.
# Elsewhere the suite computes the same functions in pure JAX, because spike_products="auto"
# puts a lax.cond and two custom calls around every hidden layer's product, which made
# compiling tests/test_adjoint.py and test_strategies.py 1.3x slower (157 s against 119 s).
# TCLIF_TEST_NATIVE=1 keeps them on throughout.
if os.environ.get("TCLIF_TEST_NATIVE") != "1":
    os.environ.setdefault("TCLIF_NATIVE", "0")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("TCLIF_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
MNIST_DIR = os.path.join(SHARED, "mnist")
HAS_MNIST = os.path.exists(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz"))


# The slow tier (`pytest -m "not slow"` leaves it out): tests that start a subprocess, run a
# notebook or read real data. A test taking one of these fixtures is marked here, so a new
# one joins the tier without anyone remembering a marker; others carry @pytest.mark.slow.
SLOW_FIXTURES = {"cli", "mnist_dir", "processes", "torch_process", "sleeper", "tmpfs"}


def pytest_unconfigure(config):
    if os.environ.get("TCLIF_TEST_COMPILE_CACHE_OWNER") == str(os.getpid()):
        import shutil

        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


# The longest tests (30-110 s each on 2 cores), started first: with pytest-xdist's
# worksteal scheduling (pyproject.toml's addopts) the other worker meanwhile takes the
# short ones, so no long test is left to run alone at the end.
LONG_FIRST = (
    "test_multihost.py::test_two_processes_train_as_one",
    "test_experiments.py::test_real_smnist_ff64_learns_well_above_chance",
    "test_pretrained.py::test_shipped_model_reproduces_its_recorded_test_accuracy_exactly",
    "test_experiments.py::test_training_agrees_on_1_and_4_devices",
    "test_notebooks.py::test_notebook_runs_in_smoke_mode",
    "test_benchmarks.py::test_step_time_cli_json_fields_and_torch",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: not any(name in item.nodeid for name in LONG_FIRST))


@pytest.fixture(scope="session")
def root() -> str:
    """The repository root (where ``python -m experiments.<task>`` runs)."""
    return ROOT


@pytest.fixture(scope="session")
def mnist_dir() -> str:
    """The real MNIST IDX folder; tests using it skip cleanly when it is absent."""
    if not HAS_MNIST:
        pytest.skip(f"real MNIST files not found in {MNIST_DIR} (set TCLIF_SHARED_DATA)")
    return MNIST_DIR


def run_module(*args, env=None, timeout=600, cwd=ROOT):
    """``python -m <args>`` in the repository root; returns the CompletedProcess."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **(env or {})),
    )


@pytest.fixture(scope="session")
def cli():
    """Run an entry point: ``cli("experiments.delayed_cue", "--config=...")``."""
    return run_module


# ----------------------------------------------------------------------------- a toy task


def toy_splits(nan: bool = False):
    """Four classes told apart by which channel is on during the first 5 of 30 steps:
    train (256, 30, 4), test (64, 30, 4), float32; ``nan`` puts NaNs in every train input."""
    import numpy as np

    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 4, n)
        x = rng.normal(0, 0.1, (n, 30, 4)).astype(np.float32)
        x[np.arange(n), :5, y] += 1.0
        return x, y.astype(np.int32)

    splits = {"train": make(256), "test": make(64)}
    if nan:
        splits["train"][0][:, 3, 0] = np.nan
    return splits


class ToyTask:
    """The toy task in place of every dataset (``data.load_dataset`` is patched)."""

    def __init__(self):
        self.nan = False

    def dataset(self, name, cfg, workdir=None):
        from tclif_jax.data import SequenceDataset

        return SequenceDataset(name="toy", splits=toy_splits(self.nan), num_classes=4)

    @staticmethod
    def config(**train):
        """A delayed-cue task config for the toy: one layer of 32, batch 32, 3 epochs."""
        from experiments.configs.base import base_config, schedule

        c = base_config("delayed_cue", "custom", "toy", schedule(32, 3, 5e-3, "constant"))
        c.model.hidden, c.model.v_th = (32,), 0.5
        c.train.progress = False
        for k, v in train.items():
            c.train[k] = v
        return c


@pytest.fixture
def toy(monkeypatch):
    """The toy task: ``toy.config(**train)`` builds a config, ``toy.nan = True`` NaN inputs."""
    from tclif_jax import data as data_lib

    task = ToyTask()
    monkeypatch.setattr(data_lib, "load_dataset", task.dataset)
    return task


def strip_times(history):
    """Metrics records without their wall-clock fields (what must repeat bit for bit)."""
    return [{k: v for k, v in r.items() if k not in ("wall_time", "epoch_time")} for r in history]


# ----------------------------------------------------------------------------- native kernels


@pytest.fixture
def native_kernels(monkeypatch):
    """The native kernels of ``tclif_jax.event_kernel`` allowed again (this file turns them
    off for the suite): the test decides native or fallback from its own environment, and
    the decision is forgotten before and after it."""
    from tclif_jax import event_kernel

    monkeypatch.delenv("TCLIF_NATIVE", raising=False)
    event_kernel.reset_for_tests()
    yield
    event_kernel.reset_for_tests()


@pytest.fixture
def native(native_kernels):
    """The native path, built in the default cache: skips without a C++ compiler, fails if
    one is there and the kernels still do not build."""
    import shutil

    from tclif_jax import event_kernel

    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler 'c++' on this machine")
    assert event_kernel.available(), event_kernel.status()


@pytest.fixture(params=["native", "fallback"])
def either_path(request, native_kernels, monkeypatch):
    """Each path in turn: the native kernels, then pure JAX (TCLIF_NATIVE=0)."""
    from tclif_jax import event_kernel

    if request.param == "native":
        request.getfixturevalue("native")
    else:
        monkeypatch.setenv("TCLIF_NATIVE", "0")
        assert not event_kernel.available()
