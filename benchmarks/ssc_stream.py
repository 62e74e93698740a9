"""Peak host memory and data time of training SSC from streamed spike events.

Example::

    python -m benchmarks.ssc_stream --config=benchmarks/configs/ssc_stream.py:spikes=8000

1. Fabricates SSC-size HDF5 files in tonic's layout in ``data_dir`` (skipped when files
   made with the same settings are there): ``clips``/``valid_clips``/``test_clips``
   samples, each with a uniform number of spikes in [0.5, 1.5] x ``spikes``, float16
   times (as the real files) sorted over a 0.5-1 s clip, and channels spread around a
   per-clip centre (so some (bin, channel) cells get several spikes).
2. In a fresh process (so the fabrication's memory does not count), loads the files
   through ``tclif_jax.data.load_dataset("ssc")`` and trains ``preset`` with
   ``tclif_jax.train.make_train_step`` at ``batch`` on the host path the training loop
   takes for data over 2 GiB (``tclif_jax.sharding.Split``). It times, separately: the
   data of one batch (binning the events: ``Split.host_rows``; and the copy to the device),
   one train step on a ready batch, and the training loop with ``prefetch`` batches
   binned in a background thread. It also times the other way to bin, a jitted
   scatter-add on the device from a padded list of flat indices, for comparison.
   Peak RSS is the child's ``VmHWM`` after all of it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

import numpy as np

from benchmarks import common

FORMAT_VERSION = 1  # bump when the fabricated files change


def _log(config):
    return common.log_to(config.json)


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ----------------------------------------------------------------------------- fabrication


def _write_split(path: str, n: int, spikes: int, rng, log) -> int:
    """Write ``n`` fake SSC clips to ``path``; returns the number of spikes written."""
    import h5py

    total = 0
    chunk = 2048
    with h5py.File(path + ".tmp", "w") as f:
        t_ds = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float16))
        u_ds = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            m = b - a
            lengths = rng.integers(spikes // 2, spikes + spikes // 2 + 1, m)
            owner = np.repeat(np.arange(m), lengths)
            duration = rng.uniform(0.5, 1.0, m)
            t = rng.random(len(owner), np.float32) * duration[owner].astype(np.float32)
            t = np.sort(owner + t * 0.5)  # sorted by clip, then by time
            t = ((t - np.floor(t)) * 2.0).astype(np.float16)
            centre = rng.uniform(100, 600, m)[owner]
            u = np.clip(np.rint(centre + rng.normal(0, 120, len(owner))), 0, 699)
            cuts = np.cumsum(lengths)[:-1]
            t_rows, u_rows = np.empty(m, object), np.empty(m, object)
            for j, (tj, uj) in enumerate(
                zip(np.split(t, cuts), np.split(u.astype(np.uint16), cuts))
            ):
                t_rows[j], u_rows[j] = tj, uj
            t_ds[a:b], u_ds[a:b] = t_rows, u_rows
            total += int(lengths.sum())
            if (a // chunk) % 8 == 0:
                log(f"  {os.path.basename(path)}: {b}/{n} clips")
        f.create_dataset("labels", data=rng.integers(0, 35, n).astype(np.uint16))
        f.create_dataset("extra/keys", data=np.array([f"word_{k}".encode() for k in range(35)]))
        f.create_dataset("extra/speaker", data=rng.integers(0, 2000, n).astype(np.uint16))
    os.replace(path + ".tmp", path)
    return total


def fabricate(config) -> dict:
    """The fake SSC files in ``config.data_dir/SSC`` (made unless already there)."""
    log = _log(config)
    folder = os.path.join(config.data_dir, "SSC")
    sizes = {"train": config.clips, "valid": config.valid_clips, "test": config.test_clips}
    meta = {"version": FORMAT_VERSION, "sizes": sizes, "spikes": config.spikes, "seed": config.seed}
    meta_path = os.path.join(folder, "fabricated.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            saved = json.load(f)
        if {k: saved.get(k) for k in meta} == meta:
            log(f"reusing the fabricated files in {folder}")
            return saved
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    meta["spikes_written"] = {}
    for split, n in sizes.items():
        path = os.path.join(folder, f"ssc_{split}.h5")
        meta["spikes_written"][split] = _write_split(path, n, config.spikes, rng, log)
    meta["file_bytes"] = sum(os.path.getsize(os.path.join(folder, f"ssc_{s}.h5")) for s in sizes)
    meta["fabricate_s"] = round(time.perf_counter() - t0, 1)
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    log(
        f"fabricated {sum(sizes.values())} clips ({meta['file_bytes'] / 1e9:.2f} GB) in "
        f"{meta['fabricate_s']} s"
    )
    return meta


# ----------------------------------------------------------------------------- measurement


def _median_ms(times) -> float:
    return round(1e3 * statistics.median(times), 2)


def _device_scatter(events, batches, batch) -> dict:
    """Bin on the device instead: host gathers flat indices, XLA scatter-adds them."""
    import jax
    import jax.numpy as jnp

    _, steps, channels = events.shape
    cells = batch * steps * channels

    def flat_indices(idx):
        parts = [
            events.blocks[b][s : s + n]
            for b, s, n in zip(events.block_of[idx], events.start[idx], events.length[idx])
        ]
        rowstep = np.repeat(
            np.arange(len(idx) * steps, dtype=np.int32), events.bin_counts[idx].ravel()
        )
        flat = rowstep * channels + np.concatenate(parts).astype(np.int32)
        size = 1 << 22
        while size < len(flat):
            size *= 2
        return np.pad(flat, (0, size - len(flat)), constant_values=cells)  # dropped below

    @jax.jit
    def scatter(flat):
        out = jnp.zeros(cells, jnp.uint8).at[flat].add(1, mode="drop")
        return out.reshape(batch, steps, channels)

    host, device = [], []
    for i, idx in enumerate(batches):
        t0 = time.perf_counter()
        flat = flat_indices(idx)
        t1 = time.perf_counter()
        out = scatter(jax.device_put(flat)).block_until_ready()
        t2 = time.perf_counter()
        if i:  # the first call compiles
            host.append(t1 - t0)
            device.append(t2 - t1)
    ok = bool(np.array_equal(np.asarray(out), events[batches[-1]]))
    return {
        "host_indices_ms": _median_ms(host),
        "scatter_ms": _median_ms(device),
        "total_ms": _median_ms([a + b for a, b in zip(host, device)]),
        "matches_host_binning": ok,
    }


def measure(config) -> dict:
    """Load the fabricated SSC and train ``config.preset`` on it (run in a fresh process)."""
    import jax

    from experiments.configs.ssc import get_config as ssc_config
    from tclif_jax import data as data_lib
    from tclif_jax import train
    from tclif_jax.models import from_preset, parameters
    from tclif_jax.sharding import Split, init_opt_state, make_mesh, param_shardings

    log = _log(config)
    out = {"rss_start_gb": round(_rss_bytes() / 2**30, 3)}
    t0 = time.perf_counter()
    dataset = data_lib.load_dataset("ssc", {"dir": config.data_dir, "stream": config.stream})
    out["load_s"] = round(time.perf_counter() - t0, 1)
    info = dataset.info
    out.update(
        stream=info["stream"],
        spikes_loaded=info["spikes"],
        events_gb=round(info["events_bytes"] / 2**30, 3),
        dense_equivalent_gb=round(info["dense_bytes"] / 2**30, 2),
        rss_after_load_gb=round(_rss_bytes() / 2**30, 3),
        peak_rss_after_load_gb=round(common.peak_rss_bytes() / 2**30, 3),
    )
    log(
        f"loaded in {out['load_s']} s: {out['stream']}, events {out['events_gb']} GiB "
        f"(dense {out['dense_equivalent_gb']} GiB), RSS {out['rss_after_load_gb']} GiB"
    )

    x, y = dataset.splits["train"]
    task = ssc_config("ff")
    model = from_preset(config.preset, seed=config.seed)
    steps_per_epoch = len(y) // config.batch
    tx, _ = train.make_optimizer(task.optimizer, steps_per_epoch, task.train.num_epochs)
    mesh = make_mesh()
    params = jax.tree.map(np.array, parameters(model))
    p_sh = param_shardings(params, mesh, False)
    params = jax.device_put(params, p_sh)
    opt_state, o_sh = init_opt_state(tx, params, mesh)
    step = train.make_train_step(
        model, tx, input_scale=dataset.input_scale, mesh=mesh, shardings=(p_sh, o_sh)
    )
    split = Split(x, y, mesh, on_device=False)  # > 2 GiB: the training loop's host path
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(y))

    def batch_indices(count):
        starts = rng.integers(0, len(y) - config.batch, count)
        return [order[a : a + config.batch] for a in starts]

    key = jax.random.key(config.seed)
    xb, yb = split.assemble(batch_indices(1)[0])
    t0 = time.perf_counter()
    params, opt_state, metrics = step(params, opt_state, xb, yb, key)
    jax.block_until_ready(metrics)
    out["compile_and_first_step_s"] = round(time.perf_counter() - t0, 1)

    # Rounds of (data alone, train step alone, the loop), so that each round's parts see
    # the same load on a shared machine; the data fraction is taken per round.
    rows = []
    for r in range(config.rounds):
        bin_s, put_s = [], []
        for idx in batch_indices(config.data_batches):
            t0 = time.perf_counter()
            local = split.host_rows(idx)  # the events of 256 clips binned on the host
            t1 = time.perf_counter()
            xb, yb = split.assemble(idx, local)  # and copied to the device
            xb.block_until_ready()
            bin_s.append(t1 - t0)
            put_s.append(time.perf_counter() - t1)
        step_s = []
        for i in range(config.train_steps):
            t0 = time.perf_counter()
            params, opt_state, metrics = step(params, opt_state, xb, yb, jax.random.fold_in(key, i))
            jax.block_until_ready(metrics)
            step_s.append(time.perf_counter() - t0)
        # The loop as train.py runs it: batches binned in a thread, prefetch ahead.
        loop_s = []
        t0 = time.perf_counter()
        batches = split.batches(batch_indices(config.train_steps + 1), config.prefetch)
        for i, (xl, yl) in enumerate(batches):
            params, opt_state, metrics = step(params, opt_state, xl, yl, jax.random.fold_in(key, i))
            jax.block_until_ready(metrics)
            loop_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
        row = {
            "data_bin_ms": _median_ms(bin_s),
            "data_to_device_ms": _median_ms(put_s),
            "train_step_ms": _median_ms(step_s),
            "loop_step_ms": _median_ms(loop_s[1:]),  # the first waits for the first batch
            "loadavg_1min": round(os.getloadavg()[0], 2),
        }
        row["data_fraction_of_step"] = round(
            (row["data_bin_ms"] + row["data_to_device_ms"]) / row["train_step_ms"], 4
        )
        row["loop_overhead_fraction"] = round(row["loop_step_ms"] / row["train_step_ms"] - 1, 4)
        rows.append(row)
        log(f"round {r + 1}: {row}")
    out["rounds"] = rows
    for k in rows[0]:
        out[k] = round(statistics.median(row[k] for row in rows), 4)
    out["batch_bytes"] = int(xb.nbytes)
    out["loss_finite"] = bool(metrics["finite"])
    if hasattr(x, "blocks"):  # streamed events (not with stream="dense")
        out["device_scatter"] = _device_scatter(x, batch_indices(4), config.batch)
    out["rss_end_gb"] = round(_rss_bytes() / 2**30, 3)
    out["peak_rss_gb"] = round(common.peak_rss_bytes() / 2**30, 3)
    return out


def run(config, measure_only: bool = False) -> dict:
    """Fabricate (once), then measure in a fresh process; print and return the record."""
    from benchmarks.configs.ssc_stream import check

    check(config)
    if measure_only:
        result = measure(config)
        print(json.dumps(result))
        return result
    log = _log(config)
    fabricated = fabricate(config)
    log("measuring in a fresh process (load, bin, train) ...")
    args = common.config_args("ssc_stream", **config.to_dict()) + ["--measure_only"]
    result = common.run_json_subprocess("benchmarks.ssc_stream", args, timeout=7200)
    if "error" in result:
        print(result["error"], file=sys.stderr)
        raise SystemExit(1)
    out = {
        "benchmark": "ssc_stream",
        "machine": common.machine_info(),
        "fabricated": fabricated,
        "result": result,
        "config": config.to_dict(),
        "command": common.command("ssc_stream"),
    }
    if config.json:
        print(json.dumps(out))
    else:
        r = result
        print(
            f"\nSSC {sum(fabricated['sizes'].values())} clips, {config.spikes} spikes/clip "
            f"on average: {r['stream']}, events {r['events_gb']} GiB (dense "
            f"{r['dense_equivalent_gb']} GiB), loaded in {r['load_s']} s"
        )
        print(f"peak RSS {r['peak_rss_gb']} GiB ({config.preset}, batch {config.batch})")
        print(
            f"data per batch: bin {r['data_bin_ms']} ms + to device {r['data_to_device_ms']} "
            f"ms = {100 * r['data_fraction_of_step']:.1f}% of a {r['train_step_ms']} ms step; "
            f"loop with prefetch {r['loop_step_ms']} ms per step"
        )
        d = r.get("device_scatter")
        if d:
            print(
                f"device scatter instead: {d['host_indices_ms']} ms indices + {d['scatter_ms']} "
                f"ms scatter (same counts: {d['matches_host_binning']})"
            )
    return out


def main() -> None:
    common.main("ssc_stream", run, measure_only=False)


if __name__ == "__main__":
    main()
