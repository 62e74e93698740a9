"""Spike inputs as events: per (sample, step) row, the active channels and their counts.

A spike input such as binned SHD is mostly zeros (about 5% of SHD's 700 channels are
active in a 5.6 ms bin), so its dense ``(B, T, F)`` tensor spends most of its bytes, and
most of the first layer's product, on zeros. ``EventBatch`` holds only the active
entries, padded to a static ``K`` per row so that it jits:

* ``channels (..., K)`` int32: the active channel of each entry (0 on padding);
* ``counts (..., K)`` float32: its value, a spike count (0 on padding; after
  ``scaled``, the count times the input scale);
* ``valid (..., K)`` bool: True on real entries;
* ``num_channels``: ``F``, static (pytree metadata).

The leading axes are those of the dense input they stand for: batch-major ``(B, T)`` as
the public API takes it; ``time_major()`` swaps them for the forward. ``shape`` is the
dense shape ``(..., F)``. A channel appears at most once per row in what ``from_dense``
and the loaders build; repeated channels in a hand-made batch add up, as in the dense
sum they stand for.

The hidden layers' inputs are spikes the network makes itself, dense arrays; their
products skip the zeros by another route (``Execution.spike_products``). Events are for
the first layer's input projection (``project``): the
model, ``apply`` and the train step take an ``EventBatch`` wherever they take a dense
input and compute the same function. ``project`` runs ``tclif_jax.event_kernel``: a
native CPU kernel that reads only the kernel rows of active channels (forward) and
scatter-adds only their gradient rows (backward), or where that kernel is not built, and
off the CPU, the dense product on the events scattered into a dense block. Under the
bfloat16 product policy it takes the dense path, which keeps that policy's rounding.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from tclif_jax import event_kernel

__all__ = ["EventBatch", "from_dense", "to_dense", "project", "validate", "bucket_k"]

# K is rounded up to a multiple of this (then to a power of two above 64) so that batches
# of similar activity share one compiled step.
_K_QUANTUM = 8


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EventBatch:
    """Padded per-row events standing for a dense ``(..., num_channels)`` input.

    See the module docstring for the fields. Build one with ``from_dense`` or from a
    spike dataset (``tclif_jax.data.spiking_audio.SpikeEvents.events``); check a
    hand-made one with ``validate``.
    """

    channels: jax.Array
    counts: jax.Array
    valid: jax.Array
    num_channels: int = dataclasses.field(metadata={"static": True})

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the dense input this stands for, ``(..., num_channels)``."""
        return (*self.channels.shape[:-1], self.num_channels)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def k(self) -> int:
        """Entries per row (the static padding)."""
        return self.channels.shape[-1]

    def time_major(self) -> EventBatch:
        """The same events with the two leading axes swapped: ``(B, T)`` <-> ``(T, B)``."""
        swap = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731
        return EventBatch(
            swap(self.channels), swap(self.counts), swap(self.valid), self.num_channels
        )

    def scaled(self, scale) -> EventBatch:
        """Every count times ``scale`` (as ``x * scale`` on the dense input), in float32."""
        counts = jnp.asarray(self.counts, jnp.float32) * scale
        return dataclasses.replace(self, counts=counts)

    def __getitem__(self, rows) -> EventBatch:
        """Index the leading axes (never the channel axis): ``events[:8]``, ``events[idx]``."""
        take = lambda a: a[rows]  # noqa: E731
        return EventBatch(
            take(self.channels), take(self.counts), take(self.valid), self.num_channels
        )


def bucket_k(needed: int) -> int:
    """The padded ``K`` for rows with at most ``needed`` entries: a multiple of 8, and a
    power of two above 64 (few distinct shapes, so few compilations)."""
    k = max(_K_QUANTUM, -(-int(needed) // _K_QUANTUM) * _K_QUANTUM)
    return k if k <= 64 else 1 << (k - 1).bit_length()


def from_dense(x, k: int | None = None) -> EventBatch:
    """The events of a dense, concrete input ``x (..., F)`` (a NumPy or JAX array).

    ``k`` is the padding per row: by default ``bucket_k`` of the busiest row's active
    count; a ``k`` smaller than that is a ValueError naming the row. Entries keep
    channel order. Values must be finite and >= 0 (spike counts); anything else is a
    ValueError (feed such input densely).
    """
    if isinstance(x, jax.core.Tracer):
        raise TypeError(
            "from_dense needs a concrete array: build events outside jit (in the data "
            "pipeline), not inside a traced function."
        )
    a = np.asarray(x)
    if a.ndim < 2:
        raise ValueError(f"from_dense takes an input of shape (..., features); got {a.shape}.")
    _check_values(a, "The dense input")
    active = a != 0
    per_row = active.sum(-1)
    busiest = int(per_row.max(initial=0))
    if k is None:
        k = bucket_k(busiest)
    elif not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r} is not valid: an integer >= 1 (entries per row).")
    elif busiest > k:
        row = np.unravel_index(int(per_row.argmax()), per_row.shape)
        raise ValueError(
            f"k={k} is too small: row {tuple(int(i) for i in row)} has {busiest} active "
            f"channels. Pass k >= {busiest} or leave k=None."
        )
    # Active channels first, in channel order (a stable sort on "inactive").
    order = np.argsort(~active, axis=-1, kind="stable")[..., :k]
    valid = np.take_along_axis(active, order, -1)
    counts = np.where(valid, np.take_along_axis(a, order, -1), 0).astype(np.float32)
    channels = np.where(valid, order, 0).astype(np.int32)
    if order.shape[-1] < k:  # fewer channels than k: pad the entry axis
        pad = [(0, 0)] * (a.ndim - 1) + [(0, k - order.shape[-1])]
        channels, counts, valid = (np.pad(v, pad) for v in (channels, counts, valid))
    return EventBatch(channels, counts, valid, a.shape[-1])


def _check_values(a: np.ndarray, what: str) -> None:
    if a.dtype.kind in "fc":
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise ValueError(
                f"{what} holds {bad} non-finite value(s) (NaN or inf); events carry spike "
                "counts. Clean the data (np.nan_to_num) or find where the NaN comes from."
            )
    if a.dtype.kind in "fci" and a.size and (a < 0).any():
        raise ValueError(
            f"{what} holds {int((a < 0).sum())} negative value(s); events carry spike "
            "counts (>= 0). Feed signed input as a dense array."
        )


def validate(events: EventBatch) -> None:
    """Raise a ValueError unless concrete ``events`` are well formed: equal field shapes,
    integer channels in ``0..num_channels-1`` on valid entries, finite counts >= 0.
    A no-op on traced values (call it outside ``jit``)."""
    if not isinstance(events, EventBatch):
        raise TypeError(f"expected an EventBatch, got {type(events).__name__}.")
    fields = (events.channels, events.counts, events.valid)
    if any(isinstance(f, jax.core.Tracer) for f in fields):
        return
    channels, counts, valid = (np.asarray(f) for f in fields)
    if not (channels.shape == counts.shape == valid.shape) or channels.ndim < 2:
        raise ValueError(
            "EventBatch fields must share one shape (..., K) with at least one leading "
            f"axis; got channels {channels.shape}, counts {counts.shape}, valid {valid.shape}."
        )
    if channels.dtype.kind not in "iu" or valid.dtype != bool:
        raise ValueError(
            f"EventBatch.channels must be integers and valid bool; got {channels.dtype} "
            f"and {valid.dtype}."
        )
    if not isinstance(events.num_channels, (int, np.integer)) or events.num_channels < 1:
        raise ValueError(f"EventBatch.num_channels={events.num_channels!r}: an integer >= 1.")
    live = channels[valid]
    if live.size and (live.min() < 0 or live.max() >= events.num_channels):
        raise ValueError(
            f"EventBatch holds channel indices {int(live.min())}..{int(live.max())} outside "
            f"0..{events.num_channels - 1}; the input has {events.num_channels} channels."
        )
    _check_values(counts[valid], "EventBatch.counts")


def to_dense(events: EventBatch, dtype=jnp.float32) -> jax.Array:
    """The dense input ``(..., num_channels)`` the events stand for (jit-safe)."""
    lead = events.channels.shape[:-1]
    rows = int(np.prod(lead, dtype=np.int64))
    counts = jnp.where(events.valid, events.counts, 0).astype(dtype)
    flat = jnp.zeros((rows, events.num_channels), dtype)
    row_ids = jnp.arange(rows, dtype=jnp.int32)[:, None]
    flat = flat.at[row_ids, events.channels.reshape(rows, -1)].add(
        counts.reshape(rows, -1), mode="drop"
    )
    return flat.reshape(*lead, events.num_channels)


def project(events: EventBatch, kernel: jax.Array, matmul, bias=None) -> jax.Array:
    """``x @ kernel + bias`` for the dense ``x (..., F)`` the events stand for: ``(..., out)``.

    ``matmul`` is the network's ``MatmulPolicy``; a low-precision policy takes the dense
    product so that its rounding is the dense path's. Otherwise the native event kernel
    (``tclif_jax.event_kernel``) computes it, equal to the dense product to float32
    rounding.
    """
    if matmul.lowp:
        out = matmul(to_dense(events), kernel)
        return out if bias is None else out + bias
    return event_kernel.event_matmul(
        events.channels, events.counts, kernel.astype(jnp.float32), events.valid, bias
    )
