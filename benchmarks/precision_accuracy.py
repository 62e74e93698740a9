"""Does the bf16 matmul policy cost accuracy? A short real S-MNIST run, f32 against bf16.

Example::

    python -m benchmarks.precision_accuracy \\
        --config=benchmarks/configs/precision_accuracy.py:steps=150,json=True

Both runs start from the same initial weights and see the same batches in the same
order (pixels scaled to [0, 1], one pixel per step, T = 784); only ``matmul_dtype``
differs. After ``steps`` Adam steps each model is evaluated on the full MNIST test
set (10,000 images). The MNIST IDX files are read from ``data`` (default
``$TCLIF_SHARED_DATA/mnist`` or ``../shared/data/mnist``).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
import time

import numpy as np

from benchmarks import common


def read_idx_gz(path: str) -> np.ndarray:
    """An IDX file (gzipped or not) as a numpy array (big-endian header, uint8 payload)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(folder: str):
    def find(base):
        for name in (base + ".gz", base):
            p = os.path.join(folder, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(
            f"{base}(.gz) not found in {folder}; pass --config.data=/path/to/mnist."
        )

    xs = {
        s: read_idx_gz(find(f"{p}-images-idx3-ubyte"))
        for s, p in (("train", "train"), ("test", "t10k"))
    }
    ys = {
        s: read_idx_gz(find(f"{p}-labels-idx1-ubyte"))
        for s, p in (("train", "train"), ("test", "t10k"))
    }
    return {s: (xs[s].reshape(len(xs[s]), 784, 1), ys[s].astype(np.int32)) for s in xs}


def train_and_test(mdt: str, config, data, order) -> dict:
    """Train ``config.steps`` Adam steps with matmul dtype ``mdt`` on the batches ``order``
    gives, then evaluate on the test set."""
    import jax
    import jax.numpy as jnp
    import optax

    from tclif_jax.models import apply, from_preset, parameters
    from tclif_jax.train import make_train_step

    model = from_preset(config.preset, seed=config.seed, matmul_dtype=mdt, strategy=config.strategy)
    net = model.config
    # A copy: the step donates its params, which must not be the module's own buffers.
    params = jax.tree.map(jnp.array, parameters(model))
    tx = optax.adam(config.lr)
    opt = tx.init(params)
    step = make_train_step(model, tx, input_scale=1.0 / 255.0)
    xtr, ytr = data["train"]
    key = jax.random.key(config.seed)
    losses = []
    t0 = time.perf_counter()
    for i in range(config.steps):
        idx = order[i * config.batch : (i + 1) * config.batch]
        params, opt, m = step(params, opt, jnp.asarray(xtr[idx]), jnp.asarray(ytr[idx]), key)
        losses.append(float(m["loss"]))
        if (i + 1) % 25 == 0:
            print(
                f"[{mdt}] step {i + 1}/{config.steps} loss {np.mean(losses[-25:]):.4f}",
                file=sys.stderr,
                flush=True,
            )
    train_s = time.perf_counter() - t0

    @jax.jit
    def correct(p, x, y):
        logits, _ = apply(net, p, x.astype(jnp.float32) / 255.0)
        return jnp.sum(jnp.argmax(logits, -1) == y)

    xte, yte = data["test"]
    n = config.test_limit or len(yte)
    hits = 0
    for s in range(0, n, config.eval_batch):
        e = min(n, s + config.eval_batch)
        hits += int(correct(params, jnp.asarray(xte[s:e]), jnp.asarray(yte[s:e])))
    dtypes = sorted({str(a.dtype) for a in jax.tree.leaves(params)})
    curve = [round(float(np.mean(losses[i : i + 25])), 4) for i in range(0, len(losses), 25)]
    return {
        "matmul_dtype": mdt,
        "test_accuracy": hits / n,
        "test_examples": n,
        "final_train_loss_25": float(np.mean(losses[-25:])),
        "loss_curve_every_25": curve,
        "train_seconds": round(train_s, 1),
        "param_dtypes": dtypes,
    }


def run(config) -> dict:
    """Run the comparison ``config`` describes (``benchmarks/configs/precision_accuracy.py``)
    and print it, or with ``config.json`` one JSON object; returns that object."""
    from benchmarks.configs.precision_accuracy import check

    check(config)
    data = load_mnist(config.data)
    # One fixed order for both runs: shuffled epochs, as many as the steps need.
    rng = np.random.default_rng(config.seed)
    n = len(data["train"][1])
    epochs = -(-config.steps * config.batch // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    results = [train_and_test(m, config, data, order) for m in ("float32", "bfloat16")]
    diff = 100 * (results[1]["test_accuracy"] - results[0]["test_accuracy"])
    out = {
        "benchmark": "precision_accuracy",
        "machine": common.machine_info(),
        "preset": config.preset,
        "steps": config.steps,
        "batch": config.batch,
        "lr": config.lr,
        "seed": config.seed,
        "results": results,
        "bf16_minus_f32_points": round(diff, 2),
        "within_0.5_points": abs(diff) <= 0.5,
        "config": config.to_dict(),
        "command": common.command("precision_accuracy"),
    }
    if config.json:
        print(json.dumps(out))
    else:
        for r in results:
            print(
                f"{r['matmul_dtype']:9s} test accuracy {100 * r['test_accuracy']:.2f}% "
                f"(train loss {r['final_train_loss_25']:.4f}, {r['train_seconds']} s)"
            )
        within = "within" if abs(diff) <= 0.5 else "NOT within"
        print(f"bf16 - f32: {diff:+.2f} points ({within} 0.5)")
    return out


def main() -> None:
    common.main("precision_accuracy", run)


if __name__ == "__main__":
    main()
