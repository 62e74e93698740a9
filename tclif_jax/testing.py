"""Small fake dataset files in the real on-disk formats, for tests, demos and notebooks.

The loaders of ``tclif_jax.data`` read what these write exactly as they read the real
files, so a pipeline can be run end to end without the data (nothing here is used by
the library itself).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["write_hsd", "write_fake_hsd", "shd_like_counts"]


def write_hsd(
    path: str, times, units, labels, *, keys=None, speakers=None, time_dtype=np.float32
) -> str:
    """Write spikes in the SHD/SSC HDF5 layout that tonic and ``load_hsd`` read.

    ``times``/``units``: sequences of 1-D arrays (seconds / channel ids), one per sample;
    ``labels`` ``(N,)``; ``keys``: class names (``extra/keys``); ``speakers`` ``(N,)``.
    """
    import h5py

    n = len(labels)
    if len(times) != n or len(units) != n:
        raise ValueError(
            f"need one times and one units array per label; got {len(times)}, {len(units)} and {n}."
        )
    labels = np.asarray(labels)
    if keys is None:
        keys = [f"class_{k}" for k in range(int(labels.max(initial=-1)) + 1)]
    speakers = np.zeros(n, np.uint16) if speakers is None else np.asarray(speakers, np.uint16)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with h5py.File(path, "w") as f:
        t_ds = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype(time_dtype)))
        u_ds = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
        for a in range(0, n, 1024):  # slices of ragged rows: far faster than row by row
            b = min(n, a + 1024)
            t_rows, u_rows = np.empty(b - a, object), np.empty(b - a, object)
            for j in range(b - a):
                t_rows[j] = np.asarray(times[a + j], time_dtype).reshape(-1)
                u_rows[j] = np.asarray(units[a + j], np.uint16).reshape(-1)
            if len({len(r) for r in t_rows}) > 1:
                t_ds[a:b], u_ds[a:b] = t_rows, u_rows
            else:  # h5py would read equal-length rows as one 2-D array
                for j in range(b - a):
                    t_ds[a + j], u_ds[a + j] = t_rows[j], u_rows[j]
        f.create_dataset("labels", data=labels.astype(np.uint16))
        f.create_dataset("extra/keys", data=np.array([str(k).encode() for k in keys]))
        f.create_dataset("extra/speaker", data=speakers)
    return path


def write_fake_hsd(
    path: str,
    num_samples: int,
    num_classes: int = 20,
    seed: int = 0,
    *,
    num_channels: int = 700,
    duration: float = 1.0,
    spikes: tuple[int, int] = (200, 600),
    nan_times: int = 0,
    inf_times: int = 0,
    late_times: int = 0,
    time_dtype=np.float32,
) -> str:
    """Write a learnable fake SHD/SSC file (tonic's layout) for tests and demos.

    Class ``k`` is a noisy sweep: spike times uniform in [0, duration) s, and the unit
    moves linearly over time through a band centred on ``(k + 0.5) / num_classes`` of the
    channels, with a class-specific direction. ``nan_times``/``inf_times``/``late_times``
    append that many NaN, +inf and 1.5 * max-window (2.1 s) times, one per sample in
    turn from sample 0, so loaders can be checked to drop and count them.
    """
    rng = np.random.default_rng(seed)
    labels = (np.arange(num_samples) % num_classes).astype(np.uint16)
    rng.shuffle(labels)
    times, units = [], []
    for k in labels:
        m = int(rng.integers(spikes[0], spikes[1] + 1))
        t = np.sort(rng.random(m) * duration)
        centre = (k + 0.5) / num_classes * num_channels
        sweep = (1 if k % 2 == 0 else -1) * 0.5 * num_channels / num_classes
        u = (
            centre
            + sweep * (t / duration - 0.5)
            + rng.normal(0, 0.1 * num_channels / num_classes, m)
        )
        times.append(t)
        units.append(np.clip(np.rint(u), 0, num_channels - 1).astype(np.uint16))
    bad = [np.nan] * nan_times + [np.inf] * inf_times + [2.1] * late_times
    for j, value in enumerate(bad):
        i = j % max(num_samples, 1)
        times[i] = np.append(times[i], value)
        units[i] = np.append(units[i], rng.integers(0, num_channels)).astype(np.uint16)
    speakers = rng.integers(0, 10, num_samples)
    return write_hsd(
        path,
        times,
        units,
        labels,
        keys=[f"class_{k}" for k in range(num_classes)],
        speakers=speakers,
        time_dtype=time_dtype,
    )


def shd_like_counts(
    n: int, steps: int = 250, channels: int = 700, density: float = 0.05, seed: int = 0
) -> np.ndarray:
    """Spike counts ``(n, steps, channels)`` uint8 with SHD-like statistics, batch-major.

    The recipe: each clip gets a spike budget drawn lognormal (sigma 0.3) around
    ``density * steps * channels`` (clips differ in length and loudness); its spikes fall
    on channels with probability decaying exponentially over a third of the channels
    (SHD's cochlea model is busier at one end), at times normal around the middle of the
    clip (sd steps / 5, clipped); several spikes in one cell add up, so the fraction of
    non-zero cells is a little below ``density``.
    """
    rng = np.random.default_rng(seed)
    x = np.zeros((n, steps, channels), np.uint8)
    skew = np.exp(-np.arange(channels) / (channels / 3))
    skew /= skew.sum()
    for i in range(n):
        spikes = int(rng.lognormal(np.log(density * steps * channels), 0.3))
        t = np.clip(rng.normal(steps / 2, steps / 5, spikes).astype(int), 0, steps - 1)
        c = rng.choice(channels, spikes, p=skew)
        np.add.at(x[i], (t, c), 1)
    return x
