"""Devices and data placement: the mesh, parameter shardings, and feeding batches.

All devices of all processes form one 1-D mesh named ``"data"``; batches (batch-major
``(B, ...)``) are split over it on their first axis, parameters are replicated or split
on their first axis. On several processes (``jax.distributed``) every process computes the
same global batch indices (same seed, same order as one process) but builds only the rows
its own devices hold (``jax.make_array_from_process_local_data``), so no process ever
loads a whole global batch.

``Split`` holds one split of a dataset: on the devices (replicated, batched there by a
jitted gather) when small, else on the host, where the next batches are assembled in a
background thread while the current step runs.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tclif_jax.events import EventBatch

__all__ = [
    "make_mesh",
    "param_shardings",
    "init_opt_state",
    "put_global",
    "local_rows",
    "Split",
]


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D mesh named ``"data"`` over all (global) devices."""
    devices = jax.devices() if devices is None else devices
    return jax.sharding.Mesh(np.asarray(devices), ("data",))


def param_shardings(params, mesh, shard_params: bool):
    """Replicated, or (``shard_params``) split on the first axis where it divides evenly."""
    n = mesh.devices.size

    def one(a):
        if shard_params and a.ndim >= 1 and a.shape[0] % n == 0 and a.shape[0] >= n:
            return NamedSharding(mesh, P("data"))
        return NamedSharding(mesh, P())

    return jax.tree.map(one, params)


def init_opt_state(tx, params, mesh):
    """Optimizer state on ``mesh``: moments follow their parameter's sharding, scalars
    (Adam's count) are replicated. Returns ``(opt_state, shardings)``."""
    rep = NamedSharding(mesh, P())
    state = jax.jit(tx.init)(params)
    shardings = jax.tree.map(
        lambda a: (
            a.sharding if isinstance(a.sharding, NamedSharding) and a.sharding.mesh == mesh else rep
        ),
        state,
    )
    return jax.device_put(state, shardings), shardings


def put_global(array: np.ndarray, sharding) -> jax.Array:
    """A global array from a host array every process holds in full (each process puts
    only the shards of its own devices)."""
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


def local_rows(sharding, num_rows: int) -> slice:
    """The rows of a ``(num_rows, ...)`` array split on axis 0 that this process's devices
    hold: one contiguous block (the mesh lists each process's devices together)."""
    starts, stops = [], []
    for index in sharding.addressable_devices_indices_map((num_rows,)).values():
        rows = index[0]
        starts.append(rows.start or 0)
        stops.append(num_rows if rows.stop is None else rows.stop)
    start, stop = min(starts), max(stops)
    if stop - start != sum(b - a for a, b in set(zip(starts, stops))):
        raise ValueError(
            "This process's devices do not hold one contiguous block of rows; "
            "build the mesh with each process's devices next to each other."
        )
    return slice(start, stop)


class Split:
    """One split's inputs ``(N, T, F)`` and labels ``(N,)``, fed as global batches.

    ``inputs`` may be any array-like with ``x[int_index_array]`` (e.g. streamed spike
    data). With ``on_device`` the split is placed once on every device (replicated) and
    batches are gathered there; otherwise batches are built on the host, each process
    taking only its own rows.
    """

    def __init__(self, inputs, labels: np.ndarray, mesh, on_device: bool):
        self.n = len(labels)
        self.mesh = mesh
        self.on_device = on_device
        self.batch_sharding = NamedSharding(mesh, P("data"))
        labels = np.asarray(labels, np.int32)
        if on_device:
            rep = NamedSharding(mesh, P())
            self.x = put_global(np.asarray(inputs), rep)
            self.y = put_global(labels, rep)
            self._take = jax.jit(lambda a, i: a[i], out_shardings=self.batch_sharding)
        else:
            self.x, self.y = inputs, labels

    def host_rows(self, idx: np.ndarray) -> tuple[Any, np.ndarray]:
        """This process's rows of the global batch ``idx`` (host arrays, or an
        ``EventBatch`` of them)."""
        rows = idx[local_rows(self.batch_sharding, len(idx))]
        x = self.x[rows]
        return (x if isinstance(x, EventBatch) else np.asarray(x)), self.y[rows]

    def assemble(self, idx: np.ndarray, local: tuple[np.ndarray, np.ndarray] | None = None):
        """The global batch ``(x (B, T, F) or an EventBatch, y (B,))`` for indices ``idx (B,)``, sharded on
        the batch axis; ``local`` is ``host_rows(idx)`` when already computed."""
        if self.on_device:
            i = put_global(idx.astype(np.int32), self.batch_sharding)
            return self._take(self.x, i), self._take(self.y, i)
        x_local, y_local = self.host_rows(idx) if local is None else local
        shape = (len(idx),)
        x = jax.tree.map(
            lambda a: jax.make_array_from_process_local_data(
                self.batch_sharding, a, shape + a.shape[1:]
            ),
            x_local,
        )
        y = jax.make_array_from_process_local_data(self.batch_sharding, y_local, shape)
        return x, y

    def batches(self, index_batches: Iterable[np.ndarray], prefetch: int = 2) -> Iterator[Any]:
        """Global batches for a sequence of index arrays. On the host path the next
        ``prefetch`` batches' rows are read in a background thread while the caller runs
        the current step (rows only: device transfers stay on the caller's thread)."""
        index_batches = list(index_batches)
        if self.on_device or prefetch <= 0:
            for idx in index_batches:
                yield self.assemble(idx)
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pending = [pool.submit(self.host_rows, idx) for idx in index_batches[:prefetch]]
            for i, idx in enumerate(index_batches):
                local = pending.pop(0).result()
                if i + prefetch < len(index_batches):
                    pending.append(pool.submit(self.host_rows, index_batches[i + prefetch]))
                yield self.assemble(idx, local)
