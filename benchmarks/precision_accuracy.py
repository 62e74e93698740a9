"""Does the bf16 matmul policy cost accuracy? A short real S-MNIST run, f32 against bf16.

Example::

    python -m benchmarks.precision_accuracy --steps 150 [--preset smnist-ff-64] [--json]

Both runs start from the same initial weights and see the same batches in the same
order (pixels scaled to [0, 1], one pixel per step, T = 784); only ``matmul_dtype``
differs. After ``--steps`` Adam steps each model is evaluated on the full MNIST test
set (10,000 images). The MNIST IDX files are read from ``--data``
(default ``$TCLIF_SHARED_DATA/mnist`` or ``../shared/data/mnist``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np

from benchmarks import common


def _default_data() -> str:
    shared = os.environ.get("TCLIF_SHARED_DATA") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "data")
    return os.path.join(shared, "mnist")


def read_idx_gz(path: str) -> np.ndarray:
    """An IDX file (gzipped or not) as a numpy array (big-endian header, uint8 payload)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(folder: str):
    def find(base):
        for name in (base + ".gz", base):
            p = os.path.join(folder, name)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(f"{base}(.gz) not found in {folder}; pass --data.")
    xs = {s: read_idx_gz(find(f"{p}-images-idx3-ubyte")) for s, p in (("train", "train"), ("test", "t10k"))}
    ys = {s: read_idx_gz(find(f"{p}-labels-idx1-ubyte")) for s, p in (("train", "train"), ("test", "t10k"))}
    return {s: (xs[s].reshape(len(xs[s]), 784, 1), ys[s].astype(np.int32)) for s in xs}


def run(mdt: str, args, data, order) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from tclif_jax.models import apply, from_preset
    from tclif_jax.train import make_train_step

    model = from_preset(args.preset, seed=args.seed, matmul_dtype=mdt, strategy=args.strategy)
    spec = model.spec
    params = model.arrays()
    tx = optax.adam(args.lr)
    opt = tx.init(params)
    step = make_train_step(spec, tx, input_scale=1.0 / 255.0)
    xtr, ytr = data["train"]
    key = jax.random.key(args.seed)
    losses = []
    t0 = time.perf_counter()
    for i in range(args.steps):
        idx = order[i * args.batch:(i + 1) * args.batch]
        params, opt, m = step(params, opt, jnp.asarray(xtr[idx]), jnp.asarray(ytr[idx]), key)
        losses.append(float(m["loss"]))
        if (i + 1) % 25 == 0:
            print(f"[{mdt}] step {i + 1}/{args.steps} loss {np.mean(losses[-25:]):.4f}",
                  file=sys.stderr, flush=True)
    train_s = time.perf_counter() - t0

    @jax.jit
    def correct(p, x, y):
        logits, _ = apply(spec, p, x.astype(jnp.float32) / 255.0)
        return jnp.sum(jnp.argmax(logits, -1) == y)

    xte, yte = data["test"]
    n = args.test_limit or len(yte)
    hits = 0
    for s in range(0, n, args.eval_batch):
        e = min(n, s + args.eval_batch)
        hits += int(correct(params, jnp.asarray(xte[s:e]), jnp.asarray(yte[s:e])))
    dtypes = sorted({str(a.dtype) for a in jax.tree.leaves(params)})
    return {"matmul_dtype": mdt, "test_accuracy": hits / n, "test_examples": n,
            "final_train_loss_25": float(np.mean(losses[-25:])), "loss_curve_every_25": [
                round(float(np.mean(losses[i:i + 25])), 4) for i in range(0, len(losses), 25)],
            "train_seconds": round(train_s, 1), "param_dtypes": dtypes}


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision_accuracy")
    p.add_argument("--preset", default="smnist-ff-64")
    p.add_argument("--strategy", default="auto")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-batch", type=int, default=1000)
    p.add_argument("--test-limit", type=int, default=0, help="0: the full test set")
    p.add_argument("--data", default=_default_data())
    p.add_argument("--no-malloc-tuning", action="store_true")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    common.ensure_malloc_tuning(not args.no_malloc_tuning)

    data = load_mnist(args.data)
    # One fixed order for both runs: shuffled epochs, as many as the steps need.
    rng = np.random.default_rng(args.seed)
    n = len(data["train"][1])
    epochs = -(-args.steps * args.batch // n)
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    results = [run(m, args, data, order) for m in ("float32", "bfloat16")]
    diff = 100 * (results[1]["test_accuracy"] - results[0]["test_accuracy"])
    out = {"benchmark": "precision_accuracy", "machine": common.machine_info(), "preset": args.preset,
           "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
           "results": results, "bf16_minus_f32_points": round(diff, 2),
           "within_0.5_points": abs(diff) <= 0.5,
           "command": "python -m benchmarks.precision_accuracy " + " ".join(sys.argv[1:])}
    if args.json:
        print(json.dumps(out))
    else:
        for r in results:
            print(f"{r['matmul_dtype']:9s} test accuracy {100 * r['test_accuracy']:.2f}% "
                  f"(train loss {r['final_train_loss_25']:.4f}, {r['train_seconds']} s)")
        print(f"bf16 - f32: {diff:+.2f} points ({'within' if abs(diff) <= 0.5 else 'NOT within'} 0.5)")
    return out


if __name__ == "__main__":
    main()
