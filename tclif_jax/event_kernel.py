"""Event-driven products as native CPU kernels: the input projection from padded events,
and products of a layer's spikes.

``event_matmul(channels, counts, kernel, valid, bias)`` computes, for each row of padded
events (as in ``tclif_jax.events``), ``bias + sum_k counts[r, k] * kernel[channels[r, k]]``:
the product ``x @ kernel + bias`` of the dense row ``x`` the events stand for, reading only
the kernel rows of live entries. ``spike_matmul(s, kernel)`` computes ``s @ kernel`` for
a dense array of spikes ``s``, mostly zeros, reading only the kernel rows of its nonzero
entries; ``spike_matmul_transpose(s, g, acc)`` the weight gradient ``acc + s^T g``
(``tclif_jax.execution``'s ``spike_products`` uses them for hidden layers' inputs and
recurrent terms, forward and backward). In pure JAX such products are gathers and
segment sums, which XLA:CPU compiles to scalar loops, so they are C++ loops
(``csrc/event_matmul.cc``) called through the XLA FFI:

* the forwards: rows in parallel (OpenMP) above a few thousand rows, each summing the
  kernel rows of its entries in registers (AVX2 where the CPU has it);
* the transposes, scatter-adds: the rows are cut into a fixed number of chunks, each
  adding its entries into its own ``(F, n)`` partial sum (which stays in cache while
  ``g`` is read row by row), then the partials are added up in chunk order. A per-step
  product (a few hundred rows) is one chunk on the calling thread.

Each sums in an order fixed by the shapes, so no result depends on the number of threads.
The counts' cotangent, ``g[r] . kernel[channels[r, k]]``, and the spikes' cotangent
``g @ kernel.T`` are plain JAX; XLA drops them when nothing uses them.

The library is compiled on first use rather than at install time: its FFI headers must
match the jaxlib that loads it, and installing must not need a compiler. It is built with
``$CXX`` (default ``c++``) into ``$TCLIF_CACHE_DIR/native/<hash>/`` (default
``~/.cache/tclif_jax``), where the hash covers the source, the compiler command, the
jaxlib version and the CPU (it is built with ``-march=native``), so a change of any of
them builds anew. Where it cannot be built or loaded, where ``TCLIF_NATIVE=0``, and on
platforms other than CPU, the same function is computed in pure JAX: the events scattered
into a dense block, then a float32 product at the highest precision. ``status()`` says
which path is in use and why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
from absl import logging

__all__ = ["event_matmul", "spike_matmul", "spike_matmul_transpose", "available", "status"]

_SOURCE = Path(__file__).parent / "csrc" / "event_matmul.cc"
_FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-march=native")
_FORWARD, _TRANSPOSE = "tclif_event_matmul", "tclif_event_matmul_transpose"
# FFI target name -> the handler's symbol in the library.
_SPIKES, _SPIKES_T = "tclif_spike_matmul", "tclif_spike_matmul_transpose"
_SYMBOLS = {
    _FORWARD: "TclifEventMatmul",
    _TRANSPOSE: "TclifEventMatmulTranspose",
    _SPIKES: "TclifSpikeMatmul",
    _SPIKES_T: "TclifSpikeMatmulTranspose",
}

_lock = threading.Lock()
_state: tuple[bool, str] | None = None  # (available, status), decided once
# Targets registered in this process: once each (a library built later is the same code).
_registered: set[str] = set()
_libraries: list[ctypes.CDLL] = []  # kept loaded: XLA holds pointers into them


def available() -> bool:
    """Whether the native kernels are built and registered (decided once per process)."""
    return _load()[0]


def status() -> str:
    """Which path ``event_matmul`` takes on CPU: ``"built: <library>"`` or ``"fallback: <why>"``."""
    return _load()[1]


def reset_for_tests() -> None:
    """Forget the decision, so that the next call reads the environment again (for tests)."""
    global _state
    with _lock:
        _state = None


def event_matmul(channels, counts, kernel, valid=None, bias=None) -> jax.Array:
    """``out[..., :] = bias + sum_k counts[..., k] * kernel[channels[..., k]]`` per row of
    padded events: the product ``x @ kernel + bias`` of the dense rows ``x`` they stand for.

    ``channels`` integers, ``counts`` float32 and ``valid`` bool (default: all True), of
    one shape ``(..., K)`` with at least one leading axis; ``kernel (F, n)`` and ``bias
    (n,)`` (default 0) float32. Entries that are not valid, have count 0 or a channel
    outside ``0..F-1`` contribute nothing. Returns ``(..., n)``. Differentiable in
    ``counts``, ``kernel`` and ``bias``; jit- and vmap-safe.
    """
    channels = jnp.asarray(channels)
    if not jnp.issubdtype(channels.dtype, jnp.integer):
        raise TypeError(f"event_matmul: channels must be integers, got {channels.dtype}.")
    channels = channels.astype(jnp.int32)
    counts, kernel = jnp.asarray(counts, jnp.float32), jnp.asarray(kernel, jnp.float32)
    valid = jnp.ones(channels.shape, bool) if valid is None else jnp.asarray(valid, bool)
    if (
        channels.ndim < 2
        or counts.shape != channels.shape
        or valid.shape != channels.shape
        or kernel.ndim != 2
    ):
        raise ValueError(
            "event_matmul takes channels, counts and valid of one shape (..., K) and a "
            f"kernel (F, n); got {channels.shape}, {counts.shape}, {valid.shape} and "
            f"{kernel.shape}."
        )
    n = kernel.shape[1]
    bias = jnp.zeros((n,), jnp.float32) if bias is None else jnp.asarray(bias, jnp.float32)
    if bias.shape != (n,):
        raise ValueError(f"event_matmul: bias is {bias.shape}, not ({n},).")
    lead, k = channels.shape[:-1], channels.shape[-1]
    rows = [a.reshape(-1, k) for a in (channels, counts, valid)]
    if not available():
        out = _dense(*rows, kernel, bias)
    else:
        out = jax.lax.platform_dependent(*rows, kernel, bias, cpu=_native, default=_dense)
    return out.reshape(*lead, n)


def _dense(channels, counts, valid, kernel, bias):
    """The pure-JAX path: the events ``(R, K)`` scattered into ``(R, F)``, then the dense
    product."""
    rows, num_channels = channels.shape[0], kernel.shape[0]
    live = valid & (channels >= 0) & (channels < num_channels)
    columns = jnp.where(live, channels, num_channels)  # dead entries: dropped
    x = jnp.zeros((rows, num_channels), jnp.float32)
    x = x.at[jnp.arange(rows)[:, None], columns].add(counts, mode="drop")
    return jnp.matmul(x, kernel, precision="highest") + bias


def _call(target, shape, *args):
    result = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.ffi.ffi_call(target, result, vmap_method="sequential")(*args)


@jax.custom_vjp
def _native(channels, counts, valid, kernel, bias):
    shape = (channels.shape[0], kernel.shape[1])
    return _call(_FORWARD, shape, channels, counts, valid, kernel, bias)


def _native_fwd(channels, counts, valid, kernel, bias):
    return _native(channels, counts, valid, kernel, bias), (channels, counts, valid, kernel)


def _native_bwd(residuals, g):
    channels, counts, valid, kernel = residuals
    dkernel = _call(_TRANSPOSE, kernel.shape, channels, counts, valid, g)
    num_channels = kernel.shape[0]
    live = valid & (channels >= 0) & (channels < num_channels)
    rows = jnp.take(kernel, jnp.clip(channels, 0, num_channels - 1), axis=0)  # (R, K, n)
    rows = jnp.where(live[..., None], rows, 0.0)
    dcounts = jnp.einsum("rkn,rn->rk", rows, g, precision="highest")
    return None, dcounts, None, dkernel, jnp.sum(g, 0)


_native.defvjp(_native_fwd, _native_bwd)


# ----------------------------------------------------------------------------- spikes


def spike_matmul(spikes, kernel) -> jax.Array:
    """``spikes @ kernel (R, n)`` for ``spikes (R, F)``, mostly zeros (a layer's output),
    reading only the kernel rows of nonzero entries; float32, ``kernel (F, n)``.

    Differentiable: the spikes' cotangent is the dense ``g @ kernel.T``, the kernel's the
    native ``spike_matmul_transpose``. Where the kernel is not built, and off the CPU, the
    dense product at the highest precision.
    """
    spikes, kernel = jnp.asarray(spikes, jnp.float32), jnp.asarray(kernel, jnp.float32)
    if spikes.ndim != 2 or kernel.ndim != 2 or spikes.shape[1] != kernel.shape[0]:
        raise ValueError(
            f"spike_matmul takes spikes (R, F) and a kernel (F, n); got {spikes.shape} and "
            f"{kernel.shape}."
        )
    if not available():
        return _dense_product(spikes, kernel)
    return jax.lax.platform_dependent(spikes, kernel, cpu=_spikes_native, default=_dense_product)


def spike_matmul_transpose(spikes, g, acc=None) -> jax.Array:
    """``acc + spikes^T g (F, n)`` for ``spikes (R, F)`` mostly zeros and ``g (R, n)``: the
    kernel's cotangent of ``spikes @ kernel``, added to ``acc`` (zeros when None), reading
    only the rows of ``g`` where a spike is nonzero. Not differentiable (a gradient)."""
    spikes, g = jnp.asarray(spikes, jnp.float32), jnp.asarray(g, jnp.float32)
    if spikes.ndim != 2 or g.ndim != 2 or spikes.shape[0] != g.shape[0]:
        raise ValueError(
            f"spike_matmul_transpose takes spikes (R, F) and a cotangent (R, n); got "
            f"{spikes.shape} and {g.shape}."
        )
    shape = (spikes.shape[1], g.shape[1])
    acc = jnp.zeros(shape, jnp.float32) if acc is None else jnp.asarray(acc, jnp.float32)
    if acc.shape != shape:
        raise ValueError(f"spike_matmul_transpose: the accumulator is {acc.shape}, not {shape}.")
    if not available():
        return _dense_transpose(spikes, g, acc)
    return jax.lax.platform_dependent(
        spikes, g, acc, cpu=_spikes_transpose_native, default=_dense_transpose
    )


def _dense_product(spikes, kernel):
    return jnp.matmul(spikes, kernel, precision="highest")


def _dense_transpose(spikes, g, acc):
    return acc + jnp.matmul(spikes.T, g, precision="highest")


def _spikes_transpose_native(spikes, g, acc):
    # Not aliased to the result: measured, XLA's running sum in a loop took 1.4x as long
    # with input_output_aliases={2: 0} (benchmarks/RESULTS.md, "Products of spikes").
    return _call(_SPIKES_T, acc.shape, spikes, g, acc)


@jax.custom_vjp
def _spikes_native(spikes, kernel):
    return _call(_SPIKES, (spikes.shape[0], kernel.shape[1]), spikes, kernel)


def _spikes_native_fwd(spikes, kernel):
    return _spikes_native(spikes, kernel), (spikes, kernel)


def _spikes_native_bwd(residuals, g):
    spikes, kernel = residuals
    dspikes = jnp.matmul(g, kernel.T, precision="highest")
    return dspikes, _spikes_transpose_native(spikes, g, jnp.zeros(kernel.shape, jnp.float32))


_spikes_native.defvjp(_spikes_native_fwd, _spikes_native_bwd)


def _load() -> tuple[bool, str]:
    global _state
    with _lock:
        if _state is None:
            if os.environ.get("TCLIF_NATIVE") == "0":
                _state = (False, "fallback: disabled by TCLIF_NATIVE=0")
            else:
                try:
                    _state = (True, f"built: {_build_and_register()}")
                except Exception as e:  # any failure to build or load: the pure-JAX path
                    _state = (False, f"fallback: {e}")
                    logging.warning(
                        "tclif_jax.event_kernel: the native kernel is unavailable, so events "
                        "are projected in pure JAX (%s).",
                        e,
                    )
        return _state


def _build_and_register() -> Path:
    """Build the library unless it is cached, load it and register its FFI targets."""
    command = [*(shlex.split(os.environ.get("CXX", "c++")) or ["c++"]), *_FLAGS]
    command.append(f"-I{jax.ffi.include_dir()}")
    key = "\n".join([_SOURCE.read_text(), shlex.join(command), jaxlib.__version__, _cpu_id()])
    cache = os.environ.get("TCLIF_CACHE_DIR") or Path.home() / ".cache" / "tclif_jax"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    library = Path(cache) / "native" / digest / "event_matmul.so"
    if not library.exists():
        _compile(command, library)
    try:
        lib = ctypes.CDLL(str(library))
        handlers = {name: getattr(lib, symbol) for name, symbol in _SYMBOLS.items()}
    except (OSError, AttributeError) as e:
        raise RuntimeError(f"cannot load {library}: {e}") from e
    _libraries.append(lib)
    for name, handler in handlers.items():
        if name not in _registered:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler), platform="cpu")
            _registered.add(name)
    return library


def _compile(command: list[str], library: Path) -> None:
    """Compile the source into ``library`` through a temporary name, so that processes
    building at once never load a half-written file."""
    if shutil.which(command[0]) is None:
        raise RuntimeError(f"no C++ compiler {command[0]!r} (set CXX to one)")
    library.parent.mkdir(parents=True, exist_ok=True)
    partial = library.with_name(f".{library.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        done = subprocess.run(
            [*command, str(_SOURCE), "-o", str(partial)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode != 0:
            lines = done.stderr.splitlines()
            errors = [line for line in lines if "error" in line] or lines[-5:]
            raise RuntimeError(
                f"{shlex.join(command)} failed with exit code {done.returncode}: "
                + " | ".join(errors[:5])
            )
        os.replace(partial, library)
    finally:
        partial.unlink(missing_ok=True)


def _cpu_id() -> str:
    """The CPU's model and features, which ``-march=native`` compiles for."""
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("model name", "flags", "Features", "CPU part") and name not in found:
                    found[name] = value.strip()
    except OSError:
        pass
    return " | ".join([platform.machine(), platform.processor(), *found.values()])
