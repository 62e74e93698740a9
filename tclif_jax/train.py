"""Training: pure, jitted, data-parallel Optax steps and the epoch loop around them.

* ``make_optimizer``: Adam with the paper's (or the official code's) schedule.
* ``make_train_step`` / ``make_eval_step``: pure functions of
  ``(params, opt_state, x, y, key)``, jitted with donated state; batches are
  sharded over a ``jax.sharding`` mesh of every device (axis ``"data"``),
  parameters replicated (or sharded on their first axis with
  ``mesh.shard_params``).
* ``train_and_evaluate(config, workdir)``: the loop: resumable orbax
  checkpoints, ``metrics.jsonl``, a learning-curve PNG, a tqdm bar per epoch.

Batches are batch-major ``(B, T, F)``; the whole dataset is placed on device
once when it fits (``data.on_device``), so no host pipeline runs per step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tclif_jax import data as data_lib
from tclif_jax.checkpoint import RunCheckpoints, abstract_like
from tclif_jax.config import NetworkConfig
from tclif_jax.models import SpikingNetwork, from_config, parameters

__all__ = [
    "NonFiniteLossError",
    "network_config",
    "build_model",
    "make_optimizer",
    "make_train_step",
    "init_opt_state",
    "make_eval_step",
    "make_mesh",
    "train_and_evaluate",
]


class NonFiniteLossError(FloatingPointError):
    """The loss or a gradient became NaN/inf and ``train.skip_nonfinite`` is off."""


# ----------------------------------------------------------------------------- building


def network_config(
    config: ml_collections.ConfigDict, in_features: int, num_classes: int
) -> NetworkConfig:
    """The ``NetworkConfig`` that ``config.model`` names: a preset (or ``"custom"`` with
    ``hidden``) with every non-None field of ``config.model`` as an override."""
    mc = config.model
    overrides = {k: v for k, v in mc.items() if k not in ("preset", "neuron") and v is not None}
    if mc.preset == "custom":
        if not overrides.get("hidden"):
            raise ValueError("model.preset='custom' needs model.hidden, e.g. (64, 64).")
        base = NetworkConfig(in_features, overrides.pop("hidden"), num_classes)
        return base.replace(neuron=mc.neuron, neuron_settings={}, **overrides)
    net = NetworkConfig.from_preset(mc.preset, neuron=mc.neuron, **overrides)
    if net.in_features != in_features or net.num_classes != num_classes:
        raise ValueError(
            f"Preset {mc.preset!r} expects {net.in_features} input features and "
            f"{net.num_classes} classes, but the {config.task} data has {in_features} and "
            f"{num_classes}. Pick the task's preset or use model.preset='custom'."
        )
    return net


def build_model(
    config: ml_collections.ConfigDict, in_features: int, num_classes: int
) -> SpikingNetwork:
    """The network named by ``config.model``, initialised from ``config.seed``."""
    return from_config(network_config(config, in_features, num_classes), seed=config.seed)


def make_optimizer(opt: ml_collections.ConfigDict, steps_per_epoch: int, num_epochs: int):
    """Adam with a step-wise learning-rate schedule and optional global-norm clipping.

    ``opt.schedule``: ``"multistep"`` (x ``decay_factor`` at each epoch in
    ``decay_epochs``), ``"step"`` (x ``decay_factor`` every ``decay_every`` epochs) or
    ``"constant"``. Returns ``(tx, schedule_fn)``.
    """
    if opt.name != "adam":
        raise ValueError(f"Unknown optimizer {opt.name!r}; valid: adam.")
    if opt.schedule == "multistep":
        epochs = list(opt.decay_epochs)
    elif opt.schedule == "step":
        epochs = list(range(opt.decay_every, num_epochs, opt.decay_every))
    elif opt.schedule == "constant":
        epochs = []
    else:
        raise ValueError(f"Unknown schedule {opt.schedule!r}; valid: multistep, step, constant.")
    boundaries = {int(e * steps_per_epoch): float(opt.decay_factor) for e in epochs}
    schedule = optax.piecewise_constant_schedule(float(opt.learning_rate), boundaries)
    parts = [optax.clip_by_global_norm(opt.grad_clip)] if opt.grad_clip else []
    tx = optax.chain(*parts, optax.adam(schedule, b1=opt.b1, b2=opt.b2, eps=opt.eps))
    return tx, schedule


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


def _loss_and_metrics(graphdef, params, x, y, key):
    model = nnx.merge(graphdef, params)
    logits, aux = model(x, dropout_key=key, return_aux=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    acc = jnp.mean(jnp.argmax(logits, -1) == y)
    return loss, {"accuracy": acc, "firing_rates": aux["firing_rates"]}


def make_train_step(
    model: SpikingNetwork,
    tx: optax.GradientTransformation,
    *,
    input_scale: float = 1.0,
    mesh=None,
    shardings=None,
    jit: bool = True,
) -> Callable:
    """``step(params, opt_state, x, y, key) -> (params, opt_state, metrics)``.

    ``params`` is ``parameters(model)`` (the ``nnx.Param`` state as a pure dict); the step
    merges it with the model's graph (``nnx.merge``) and differentiates the model's own
    call. Pure: one forward/backward through the scan and one Adam update. A batch whose
    loss or gradients are not finite leaves params and optimizer state unchanged
    and reports ``metrics["finite"] = False``. ``x`` is ``(B, T, F)`` in any real
    dtype (cast to f32 and multiplied by ``input_scale`` inside), ``y`` ``(B,)`` int.
    """

    graphdef = nnx.graphdef(model)

    def step(params, opt_state, x, y, key):
        x = x.astype(jnp.float32) * input_scale
        (loss, metrics), grads = jax.value_and_grad(_loss_and_metrics, argnums=1, has_aux=True)(
            graphdef, params, x, y, key
        )
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)])
        )
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        new_params = jax.tree.map(keep, new_params, params)
        new_opt_state = jax.tree.map(keep, new_opt_state, opt_state)
        metrics = dict(metrics, loss=loss, finite=finite, grad_norm=optax.tree.norm(grads))
        return new_params, new_opt_state, metrics

    if not jit:
        return step
    if mesh is None:
        return jax.jit(step, donate_argnums=(0, 1))
    p_sh, o_sh = shardings
    rep = NamedSharding(mesh, P())
    return jax.jit(step, donate_argnums=(0, 1), out_shardings=(p_sh, o_sh, rep))


def make_eval_step(model: SpikingNetwork, *, input_scale: float = 1.0) -> Callable:
    """``eval(params, x, y, mask) -> sums`` of loss, correct, count and per-layer firing
    rates times count; padded rows have mask 0 (they repeat the last example, so the
    batch's rate stays an unbiased estimate up to that repeat)."""

    graphdef = nnx.graphdef(model)

    def step(params, x, y, mask):
        x = x.astype(jnp.float32) * input_scale
        logits, aux = nnx.merge(graphdef, params)(x, return_aux=True)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        count = jnp.sum(mask)
        return {
            "loss": jnp.sum(losses * mask),
            "correct": jnp.sum((jnp.argmax(logits, -1) == y) * mask),
            "count": count,
            "rates": aux["firing_rates"] * count,
        }

    return jax.jit(step)


# ----------------------------------------------------------------------------- data placement


class _Split:
    """One split's arrays, on device (replicated) when ``on_device`` else on host."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mesh, on_device: bool):
        self.n = len(y)
        self.mesh = mesh
        self.on_device = on_device
        self.batch_sharding = NamedSharding(mesh, P("data"))
        if on_device:
            rep = NamedSharding(mesh, P())
            self.x = _put_global(x, rep)
            self.y = _put_global(y.astype(np.int32), rep)
            self._take = jax.jit(lambda a, i: a[i], out_shardings=self.batch_sharding)
        else:
            self.x, self.y = x, y.astype(np.int32)

    def batch(self, idx: np.ndarray):
        if self.on_device:
            i = _put_global(idx.astype(np.int32), self.batch_sharding)
            return self._take(self.x, i), self._take(self.y, i)
        return (
            _put_global(self.x[idx], self.batch_sharding),
            _put_global(self.y[idx], self.batch_sharding),
        )


def _put_global(array: np.ndarray, sharding):
    # Works on one host and on many (each process holds the same full array).
    return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])


# ----------------------------------------------------------------------------- the loop


def _fingerprint(config, dataset) -> str:
    blob = json.dumps(
        {
            "task": config.task,
            "model": config.model.to_dict(),
            "features": dataset.num_features,
            "classes": dataset.num_classes,
            "seed": config.seed,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _evaluate(eval_step, params, split: _Split, batch_size: int, n_dev: int) -> dict[str, Any]:
    """Loss, accuracy and per-layer firing rates over a whole split (last batch padded, masked)."""
    sums = {"loss": 0.0, "correct": 0.0, "count": 0.0, "rates": 0.0}
    bs = max(n_dev, min(batch_size, math.ceil(split.n / n_dev) * n_dev))
    for start in range(0, split.n, bs):
        idx = np.arange(start, start + bs)
        mask = (idx < split.n).astype(np.float32)
        x, y = split.batch(np.minimum(idx, split.n - 1))
        out = eval_step(params, x, y, _put_global(mask, split.batch_sharding))
        for k in sums:
            sums[k] = sums[k] + np.asarray(out[k], np.float64)
    return {
        "loss": float(sums["loss"] / sums["count"]),
        "acc": float(sums["correct"] / sums["count"]),
        "rates": [round(float(r), 6) for r in sums["rates"] / sums["count"]],
    }


def _plot_curves(history: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("cross-entropy"), ax1.legend()
    for key in ("train_acc", "val_acc", "test_acc"):
        if key in history[0]:
            ax2.plot(ep, [100 * h[key] for h in history], "o-", label=key.replace("_acc", ""))
    ax2.set_xlabel("epoch"), ax2.set_ylabel("accuracy (%)"), ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _write_history(workdir: str, history: list[dict]) -> None:
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")
    _plot_curves(history, os.path.join(workdir, "learning_curve.png"))


@dataclasses.dataclass
class _Run:
    """What stays fixed during one run: compiled steps, data, checkpoints, settings."""

    config: ml_collections.ConfigDict
    workdir: str
    splits: dict[str, _Split]
    train_step: Callable
    eval_step: Callable
    schedule: Callable
    ckpts: RunCheckpoints
    steps_per_epoch: int
    n_dev: int
    select: str  # the split that picks the best checkpoint: "valid" if there is one, else "test"
    start_time: float = 0.0


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train ``config`` in ``workdir``, resuming from its last checkpoint if there is one.

    Returns a summary: ``best_acc`` (best validation accuracy where the task has a
    validation split, else best test accuracy), ``best_test_acc``, ``final_test_acc``,
    ``history`` (the metrics.jsonl records), ``params`` and ``model`` (holding them).
    """
    if config.task not in data_lib.DATASETS:
        raise ValueError(f"Unknown task {config.task!r}; valid: {', '.join(data_lib.DATASETS)}.")
    os.makedirs(workdir, exist_ok=True)
    data_fields = {k: v for k, v in config.data.items() if k != "on_device"}
    dataset = data_lib.load_dataset(config.task, data_fields, workdir=workdir)
    for k, v in dataset.info.items():
        logging.info("data %s: %s", k, v)
    model = build_model(config, dataset.num_features, dataset.num_classes)
    tc = config.train

    mesh = make_mesh()
    n_dev = mesh.devices.size
    if tc.batch_size % n_dev:
        raise ValueError(
            f"train.batch_size={tc.batch_size} must be a multiple of the "
            f"{n_dev} devices (data-parallel); try {tc.batch_size - tc.batch_size % n_dev or n_dev}."
        )
    num_train = len(dataset.splits["train"][1])
    if num_train < tc.batch_size:
        raise ValueError(
            f"The training split has {num_train} examples, fewer than "
            f"train.batch_size={tc.batch_size}; lower the batch size or raise data.train_limit."
        )
    on_device = config.data.get("on_device", "auto")
    total_bytes = sum(a.nbytes for xy in dataset.splits.values() for a in xy)
    place = total_bytes < 2**31 if on_device == "auto" else bool(on_device)
    splits = {name: _Split(x, y, mesh, place) for name, (x, y) in dataset.splits.items()}
    steps_per_epoch = num_train // tc.batch_size
    tx, schedule = make_optimizer(config.optimizer, steps_per_epoch, tc.num_epochs)

    # Copy: the step donates its params, which must not be the module's own buffers.
    params = jax.tree.map(np.array, parameters(model))
    p_sh = param_shardings(params, mesh, config.get("mesh", {}).get("shard_params", False))
    params = jax.device_put(params, p_sh)
    opt_state, o_sh = init_opt_state(tx, params, mesh)
    run = _Run(
        config,
        workdir,
        splits,
        make_train_step(
            model, tx, input_scale=dataset.input_scale, mesh=mesh, shardings=(p_sh, o_sh)
        ),
        make_eval_step(model, input_scale=dataset.input_scale),
        schedule,
        RunCheckpoints(workdir, keep=tc.keep_checkpoints),
        steps_per_epoch,
        n_dev,
        "valid" if "valid" in splits else "test",
    )

    fingerprint = _fingerprint(config, dataset)
    meta = {
        "epoch": 0,
        "step": 0,
        "epoch_step": 0,
        "sums": [0.0, 0.0, 0],
        "history": [],
        "best_acc": -1.0,
        "best_test_acc": -1.0,
        "nonfinite_skipped": 0,
        "elapsed": 0.0,
        "fingerprint": fingerprint,
    }
    if run.ckpts.latest_step() is not None:
        (params, opt_state), meta = run.ckpts.restore(
            abstract_like((params, opt_state)), fingerprint
        )
        logging.info("Resumed from step %d (epoch %d) in %s", meta["step"], meta["epoch"], workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config.to_dict(), f, indent=1, default=str)

    run.start_time = time.time() - meta["elapsed"]

    def finished():
        return meta["epoch"] >= tc.num_epochs or bool(tc.max_steps and meta["step"] >= tc.max_steps)

    while not finished():
        epoch_start = time.time()
        params, opt_state = _train_epoch(run, params, opt_state, meta)
        _end_epoch(run, params, opt_state, meta, meta["epoch_step"] < steps_per_epoch, epoch_start)

    history = meta["history"]
    if not history:
        raise RuntimeError(f"Nothing was trained in {workdir}: train.num_epochs={tc.num_epochs}.")
    nnx.update(model, jax.tree.map(np.asarray, params))
    best, best_test = history[-1]["best_acc"], history[-1]["best_test_acc"]
    val = f"best val accuracy {100 * best:.2f}%, " if run.select == "valid" else ""
    msg = (
        f"{config.task} {config.model.preset} ({config.model.neuron}): {val}best test accuracy "
        f"{100 * best_test:.2f}%, final test {100 * history[-1]['test_acc']:.2f}% after "
        f"{meta['step']} steps; metrics in {os.path.join(workdir, 'metrics.jsonl')}"
    )
    logging.info(msg)
    print(msg, flush=True)
    return {
        "best_acc": best,
        "best_test_acc": best_test,
        "final_test_acc": history[-1]["test_acc"],
        "history": history,
        "params": params,
        "model": model,
        "workdir": workdir,
    }


def _train_epoch(run: _Run, params, opt_state, meta: dict):
    """Train from ``meta["epoch_step"]`` to the epoch's end or ``train.max_steps``,
    checkpointing every ``train.checkpoint_every_steps``; updates ``meta`` in place."""
    from tqdm.auto import tqdm

    tc = run.config.train
    epoch = meta["epoch"]
    order = np.random.default_rng([run.config.seed, epoch]).permutation(run.splits["train"].n)
    base_key = jax.random.key(run.config.seed)
    bar = tqdm(
        total=run.steps_per_epoch,
        initial=meta["epoch_step"],
        leave=False,
        desc=f"epoch {epoch + 1}/{tc.num_epochs}",
        disable=not tc.progress,
        dynamic_ncols=True,
    )
    pending = None
    for b in range(meta["epoch_step"], run.steps_per_epoch):
        if tc.max_steps and meta["step"] >= tc.max_steps:
            break
        x, y = run.splits["train"].batch(order[b * tc.batch_size : (b + 1) * tc.batch_size])
        key = jax.random.fold_in(base_key, meta["step"])
        params, opt_state, metrics = run.train_step(params, opt_state, x, y, key)
        # Read the previous step's metrics after dispatching this one (no pipeline stall).
        if pending is not None:
            _consume(pending, meta, tc, bar)
        pending = (metrics, meta["step"], epoch, tc.batch_size)
        meta["step"] += 1
        meta["epoch_step"] = b + 1
        if (
            tc.checkpoint_every_steps
            and meta["step"] % tc.checkpoint_every_steps == 0
            and meta["epoch_step"] < run.steps_per_epoch
        ):
            _consume(pending, meta, tc, bar)
            pending = None
            meta["elapsed"] = time.time() - run.start_time
            run.ckpts.save(meta["step"], (params, opt_state), meta)
    if pending is not None:
        _consume(pending, meta, tc, bar)
    bar.close()
    return params, opt_state


def _end_epoch(run: _Run, params, opt_state, meta: dict, stopped_early: bool, epoch_start: float):
    """Evaluate, log a metrics record, checkpoint (also as best), and advance ``meta``."""
    tc = run.config.train
    loss_sum, correct_sum, seen = meta["sums"]
    record = {
        "epoch": meta["epoch"] + 1,
        "step": meta["step"],
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": correct_sum / max(seen, 1),
    }
    for name, split in run.splits.items():
        if name == "train":
            continue
        ev = _evaluate(run.eval_step, params, split, tc.eval_batch_size or tc.batch_size, run.n_dev)
        prefix = "val" if name == "valid" else name
        record[f"{prefix}_acc"], record[f"{prefix}_loss"] = ev["acc"], ev["loss"]
        if name == run.select:
            record["firing_rates"] = ev["rates"]
    record["lr"] = float(run.schedule(meta["step"]))
    record["epoch_time"] = round(time.time() - epoch_start, 3)
    record["wall_time"] = round(time.time() - run.start_time, 3)
    record["partial_epoch"] = stopped_early
    selected = record["val_acc" if run.select == "valid" else "test_acc"]
    is_best = selected > meta["best_acc"]
    record["best_acc"] = max(meta["best_acc"], selected)
    record["best_test_acc"] = max(meta["best_test_acc"], record["test_acc"])
    if not stopped_early:
        # A max_steps stop reports its evaluation but does not move the run's state, so a
        # resumed run ends exactly as an uninterrupted one would.
        meta["best_acc"], meta["best_test_acc"] = record["best_acc"], record["best_test_acc"]
        meta["epoch"], meta["epoch_step"], meta["sums"] = meta["epoch"] + 1, 0, [0.0, 0.0, 0]
    # A partial record logged earlier for this epoch is replaced by the new one.
    meta["history"] = [h for h in meta["history"] if h["epoch"] != record["epoch"]] + [record]
    meta["elapsed"] = time.time() - run.start_time
    run.ckpts.save(meta["step"], (params, opt_state), meta, best=is_best)
    _write_history(run.workdir, meta["history"])
    logging.info(
        "epoch %d step %d: %s",
        record["epoch"],
        meta["step"],
        {k: v for k, v in record.items() if k.endswith(("acc", "loss"))},
    )


def _consume(pending, meta: dict, tc, bar) -> None:
    """Fold one step's metrics into ``meta["sums"]``; stop on a non-finite loss."""
    metrics, step, epoch, batch = pending
    bar.update(1)
    if not bool(metrics["finite"]):
        if not tc.skip_nonfinite:
            raise NonFiniteLossError(
                f"Non-finite loss or gradient at step {step} (epoch {epoch + 1}); that update was "
                "not applied and the last good checkpoint is kept. Rerun with "
                "--config.train.skip_nonfinite=True to skip such batches, or lower "
                "--config.optimizer.learning_rate / set --config.optimizer.grad_clip."
            )
        meta["nonfinite_skipped"] += 1
        logging.warning(
            "Skipped a non-finite batch at step %d (%d so far).", step, meta["nonfinite_skipped"]
        )
        return
    loss, acc = float(metrics["loss"]), float(metrics["accuracy"])
    loss_sum, correct_sum, seen = meta["sums"]
    meta["sums"] = [loss_sum + loss * batch, correct_sum + acc * batch, seen + batch]
    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")  # the bar itself shows steps/s
