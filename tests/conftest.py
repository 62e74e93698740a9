"""Shared fixtures and set-up: every test runs on the CPU backend, in float32."""

import os
import sys

import pytest

# Before JAX initialises: the tests run on CPU whatever the machine has.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("TCLIF_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
MNIST_DIR = os.path.join(SHARED, "mnist")
HAS_MNIST = os.path.exists(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz"))


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
