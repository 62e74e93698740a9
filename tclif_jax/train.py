"""Training: pure, jitted, data-parallel Optax steps and the resumable loop around them.

* ``validate_config``: every field of a task config checked before any work, one line per
  bad value naming the field, the value and what is valid.
* ``make_optimizer``: Adam with the paper's (or the official code's) schedule.
* ``make_train_step`` / ``make_eval_step``: pure functions of
  ``(params, opt_state, x, y, key)``, jitted with donated state; batches are sharded over a
  ``jax.sharding`` mesh of every device (axis ``"data"``, ``tclif_jax.sharding``),
  parameters replicated (or sharded on their first axis with ``mesh.shard_params``).
* ``train_and_evaluate(config, workdir)``: the loop, with what makes a run trustworthy:
  an exclusive lock on the work directory, refusal to resume under settings that change
  the result, fallback over corrupt checkpoints, no checkpoint of a non-finite state,
  atomic writes of ``metrics.jsonl``/``config.json``/the plot, and a checkpoint on SIGTERM
  (``Preempted``; the entry points exit 143). Only process 0 writes files and logs results.

Batches are batch-major ``(B, T, F)``. Small datasets are placed on device once
(``data.on_device``); larger ones are fed from the host, prefetched in a thread.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import signal
import threading
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
from tclif_jax.checkpoint import (
    RunCheckpoints,
    abstract_like,
    check_layout,
    latest_meta,
)
from tclif_jax.config import NetworkConfig
from tclif_jax.models import SpikingNetwork, from_config, parameters
from tclif_jax.sharding import Split, init_opt_state, make_mesh, param_shardings, put_global
from tclif_jax.workdir import WorkdirLock, atomic_write, compare_settings, flatten, result_settings

__all__ = [
    "ConfigError",
    "NonFiniteLossError",
    "Preempted",
    "validate_config",
    "network_config",
    "build_model",
    "make_optimizer",
    "make_train_step",
    "init_opt_state",
    "make_eval_step",
    "make_mesh",
    "param_shardings",
    "train_and_evaluate",
]


class ConfigError(ValueError):
    """A config field holds a value that cannot run; the message names field, value, fix."""


class NonFiniteLossError(FloatingPointError):
    """The loss, a gradient, an input or an updated parameter became NaN/inf and
    ``train.skip_nonfinite`` is off."""


class Preempted(RuntimeError):
    """SIGTERM arrived: the current step finished and was checkpointed (resume by rerunning)."""

    def __init__(self, step: int, workdir: str):
        super().__init__(
            f"Preempted (SIGTERM) after step {step}; checkpoint written in {workdir}. Rerun the "
            "same command to resume."
        )
        self.step = step


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
            raise ConfigError("model.preset='custom' needs model.hidden, e.g. (64, 64).")
        base = NetworkConfig(in_features, overrides.pop("hidden"), num_classes)
        return base.replace(neuron=mc.neuron, neuron_settings={}, **overrides)
    net = NetworkConfig.from_preset(mc.preset, neuron=mc.neuron, **overrides)
    if net.in_features != in_features or net.num_classes != num_classes:
        raise ConfigError(
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


def _bad(field: str, value, valid: str) -> ConfigError:
    return ConfigError(f"config field {field}={value!r} is not valid: {valid}.")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Check every field before any work; raise ``ConfigError`` naming the first bad one."""
    if config.task not in data_lib.DATASETS:
        raise _bad("task", config.task, f"one of {', '.join(data_lib.DATASETS)}")
    if not _is_int(config.seed) or config.seed < 0:
        raise _bad("seed", config.seed, "an integer >= 0")
    n_dev = jax.device_count()
    tc = config.train
    for name, low in (
        ("batch_size", 1),
        ("num_epochs", 1),
        ("keep_checkpoints", 1),
        ("eval_batch_size", 0),
        ("max_steps", 0),
        ("checkpoint_every_steps", 0),
    ):
        value = tc[name]
        if not _is_int(value) or value < low:
            hint = {
                "keep_checkpoints": " (at least 1: resuming needs a checkpoint)",
                "max_steps": " (0 = no limit)",
                "eval_batch_size": " (0 = batch_size)",
                "checkpoint_every_steps": " (0 = at epoch ends only)",
            }.get(name, "")
            raise _bad(f"train.{name}", value, f"an integer >= {low}{hint}")
    for name in ("batch_size", "eval_batch_size"):
        if tc[name] % n_dev:
            fix = max(n_dev, tc[name] - tc[name] % n_dev)
            raise _bad(
                f"train.{name}",
                tc[name],
                f"a multiple of the {n_dev} devices (data-parallel), e.g. {fix}",
            )
    opt = config.optimizer
    if opt.name != "adam":
        raise _bad("optimizer.name", opt.name, "adam")
    finite = lambda v: isinstance(v, (int, float)) and math.isfinite(v)  # noqa: E731
    if not finite(opt.learning_rate) or opt.learning_rate <= 0:
        raise _bad("optimizer.learning_rate", opt.learning_rate, "a finite number > 0")
    if opt.schedule not in ("multistep", "step", "constant"):
        raise _bad("optimizer.schedule", opt.schedule, "multistep, step or constant")
    if opt.schedule == "step" and (not _is_int(opt.decay_every) or opt.decay_every < 1):
        raise _bad("optimizer.decay_every", opt.decay_every, "an integer >= 1 with schedule=step")
    if any(not _is_int(e) or e < 0 for e in opt.decay_epochs):
        raise _bad("optimizer.decay_epochs", tuple(opt.decay_epochs), "epochs (integers >= 0)")
    if not finite(opt.decay_factor) or opt.decay_factor <= 0:
        raise _bad("optimizer.decay_factor", opt.decay_factor, "a finite number > 0")
    for name in ("b1", "b2"):
        if not finite(opt[name]) or not 0 <= opt[name] < 1:
            raise _bad(f"optimizer.{name}", opt[name], "a number in [0, 1)")
    if not finite(opt.eps) or opt.eps <= 0:
        raise _bad("optimizer.eps", opt.eps, "a finite number > 0")
    if not finite(opt.grad_clip) or opt.grad_clip < 0:
        raise _bad("optimizer.grad_clip", opt.grad_clip, "a finite number >= 0 (0 = off)")
    for name in ("train_limit", "test_limit"):
        value = config.data.get(name, 0)
        if not _is_int(value) or value < 0:
            raise _bad(f"data.{name}", value, "an integer >= 0 (0 = all)")
    if config.model.preset != "custom" and config.model.preset not in _presets():
        raise _bad("model.preset", config.model.preset, f"custom or one of {', '.join(_presets())}")
    try:  # the network fields, against the preset's sizes (the data's come later)
        preset = _presets().get(config.model.preset)
        network_config(
            config, preset.in_features if preset else 1, preset.num_classes if preset else 1
        )
    except ValueError as err:
        raise ConfigError(f"config field model.*: {err}") from None


def _presets():
    from tclif_jax.config import PRESETS

    return PRESETS


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


def _loss_and_metrics(graphdef, params, x, y, key):
    model = nnx.merge(graphdef, params)
    logits, aux = model(x, dropout_key=key, return_aux=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    acc = jnp.mean(jnp.argmax(logits, -1) == y)
    return loss, {"accuracy": acc, "firing_rates": aux["firing_rates"]}


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


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
    call. Pure: one forward/backward through the scan and one Adam update. If the batch,
    the loss, a gradient or an updated parameter is not finite, params and optimizer state
    stay unchanged and ``metrics["finite"]`` is False (a NaN input would otherwise pass:
    a NaN membrane never spikes, so the loss looks fine). ``x`` is ``(B, T, F)`` in any
    real dtype (cast to f32 and multiplied by ``input_scale`` inside), ``y`` ``(B,)`` int.
    """
    graphdef = nnx.graphdef(model)

    def step(params, opt_state, x, y, key):
        x = x.astype(jnp.float32) * input_scale
        (loss, metrics), grads = jax.value_and_grad(_loss_and_metrics, argnums=1, has_aux=True)(
            graphdef, params, x, y, key
        )
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        finite = (
            jnp.isfinite(loss)
            & jnp.all(jnp.isfinite(x))
            & _all_finite(grads)
            & _all_finite(new_params)
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
    """``eval(params, x, y, mask) -> sums`` of loss, correct, count, non-finite input values
    and per-layer firing rates times count; padded rows have mask 0 (they repeat the last
    example, so the batch's rate stays an unbiased estimate up to that repeat)."""
    graphdef = nnx.graphdef(model)

    def step(params, x, y, mask):
        x = x.astype(jnp.float32) * input_scale
        logits, aux = nnx.merge(graphdef, params)(x, return_aux=True)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        count = jnp.sum(mask)
        bad = jnp.sum(jnp.where(jnp.isfinite(x), 0.0, 1.0), axis=(1, 2))
        return {
            "loss": jnp.sum(losses * mask),
            "correct": jnp.sum((jnp.argmax(logits, -1) == y) * mask),
            "count": count,
            "nonfinite": jnp.sum(bad * mask),
            "rates": aux["firing_rates"] * count,
        }

    return jax.jit(step)


# ----------------------------------------------------------------------------- the loop


def _evaluate(eval_step, params, split: Split, batch_size: int, n_dev: int, name: str) -> dict:
    """Loss, accuracy and per-layer firing rates over every example of a split: the last
    partial batch is padded (repeating the last example) and its padding masked out."""
    sums = {"loss": 0.0, "correct": 0.0, "count": 0.0, "nonfinite": 0.0, "rates": 0.0}
    bs = max(n_dev, min(batch_size, math.ceil(split.n / n_dev) * n_dev))
    batches = [np.arange(start, start + bs) for start in range(0, split.n, bs)]
    for idx, (x, y) in zip(batches, split.batches([np.minimum(i, split.n - 1) for i in batches])):
        mask = (idx < split.n).astype(np.float32)
        out = eval_step(params, x, y, put_global(mask, split.batch_sharding))
        for k in sums:
            sums[k] = sums[k] + np.asarray(out[k], np.float64)
    if sums["nonfinite"]:
        raise NonFiniteLossError(
            f"The {name} split holds {int(sums['nonfinite'])} non-finite input values; clean the "
            "data (a NaN membrane never spikes, so its accuracy would be meaningless)."
        )
    return {
        "loss": float(sums["loss"] / sums["count"]),
        "acc": float(sums["correct"] / sums["count"]),
        "count": int(sums["count"]),
        "rates": [round(float(r), 6) for r in sums["rates"] / sums["count"]],
    }


def _plot_curves(history: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("train_loss", "val_loss", "test_loss"):
        if key in history[0]:
            ax1.plot(ep, [h[key] for h in history], "o-", label=key.replace("_loss", ""))
    ax1.set_xlabel("epoch"), ax1.set_ylabel("cross-entropy"), ax1.legend()
    for key in ("train_acc", "val_acc", "test_acc"):
        if key in history[0]:
            ax2.plot(ep, [100 * h[key] for h in history], "o-", label=key.replace("_acc", ""))
    ax2.set_xlabel("epoch"), ax2.set_ylabel("accuracy (%)"), ax2.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _write_history(workdir: str, history: list[dict]) -> None:
    """metrics.jsonl and learning_curve.png, each replaced atomically."""
    with atomic_write(os.path.join(workdir, "metrics.jsonl")) as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")
    if history:
        png = _plot_curves(history)
        with atomic_write(os.path.join(workdir, "learning_curve.png"), "wb") as f:
            f.write(png)


class _Preemption:
    """Notices SIGTERM: a flag set by a signal handler (one process), or JAX's preemption
    sync point (several processes, so that all stop after the same step)."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning("SIGTERM: finishing the current step, then checkpointing and stopping.")
        self.requested = True

    def reached(self, step: int) -> bool:
        if jax.process_count() == 1:
            return self.requested
        from jax.experimental import multihost_utils

        try:
            return bool(multihost_utils.reached_preemption_sync_point(step))
        except RuntimeError:  # no preemption service in this runtime
            return False

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None


@dataclasses.dataclass
class _Run:
    """What stays fixed during one run: compiled steps, data, checkpoints, settings."""

    config: ml_collections.ConfigDict
    workdir: str
    splits: dict[str, Split]
    train_step: Callable
    eval_step: Callable
    schedule: Callable
    ckpts: RunCheckpoints
    steps_per_epoch: int
    n_dev: int
    select: str  # the split that picks the best checkpoint: "valid" if there is one, else "test"
    writer: bool  # process 0: writes files and logs results
    preemption: _Preemption
    start_time: float = 0.0


def _all_processes(ok: bool) -> bool:
    """Whether ``ok`` holds on process 0, told to every process."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


def _check_resumable(path: str, meta: dict, settings: dict) -> None:
    check_layout(path, meta)
    differ = compare_settings(meta.get("settings", {}), settings)
    if differ:
        raise ConfigError(
            f"The run in {os.path.dirname(os.path.dirname(os.path.dirname(path)))} was written "
            f"with other settings ({len(differ)} differ):\n  "
            + "\n  ".join(differ[:20])
            + ("\n  ..." if len(differ) > 20 else "")
            + "\nNothing was changed. Rerun with the run's settings (config.json holds them) "
            "or use a new --workdir. Fields that only extend a run (train.num_epochs, "
            "train.max_steps, checkpoint cadence, progress) may differ."
        )


def _log_extensions(meta: dict, config) -> None:
    before = meta.get("config", {})
    now = {k: v for k, v in flatten(config).items() if k not in meta.get("settings", {})}
    changed = [
        f"{k}: {before.get(k)!r} -> {v!r}"
        for k, v in sorted(now.items())
        if k in before and before[k] != json.loads(json.dumps(v, default=str))
    ]
    if changed:
        logging.info(
            "Resuming with changed settings that do not change the result: %s", "; ".join(changed)
        )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train ``config`` in ``workdir``, resuming from its last intact checkpoint if any.

    Returns a summary: ``best_acc`` (best validation accuracy where the task has a
    validation split, else best test accuracy), ``best_test_acc``, ``final_test_acc``,
    ``history`` (the metrics.jsonl records), ``params`` and ``model`` (holding them).
    Raises ``ConfigError`` for a bad config or one that differs from the checkpointed
    run's, ``RunLockedError`` when another run holds ``workdir``, ``Preempted`` after a
    SIGTERM (a checkpoint was written), ``NonFiniteLossError``.
    """
    validate_config(config)
    writer = jax.process_index() == 0
    lock = WorkdirLock(workdir)
    error = None
    if writer:
        try:
            lock.acquire()
        except Exception as err:  # noqa: BLE001 - told to every process below
            error = err
    if not _all_processes(error is None):
        raise error or RuntimeError(f"Process 0 could not lock {workdir}; see its log.")
    preemption = _Preemption()
    try:
        return _train(config, workdir, writer, preemption)
    finally:
        preemption.close()
        lock.release()


def _train(config, workdir: str, writer: bool, preemption: _Preemption) -> dict[str, Any]:
    settings = result_settings(config, [f"data.{f}" for f in data_lib.PLACEMENT_FIELDS])
    found = latest_meta(workdir)
    if found is not None:  # refused before anything in the folder is touched
        _check_resumable(found[0], found[1], settings)
    data_fields = {k: v for k, v in config.data.items() if k != "on_device"}
    dataset = data_lib.load_dataset(config.task, data_fields, workdir=workdir)
    if writer:
        for k, v in dataset.info.items():
            logging.info("data %s: %s", k, v)
    model = build_model(config, dataset.num_features, dataset.num_classes)
    tc = config.train

    mesh = make_mesh()
    n_dev = mesh.devices.size
    num_train = len(dataset.splits["train"][1])
    if num_train < tc.batch_size:
        raise ConfigError(
            f"The training split has {num_train} examples, fewer than "
            f"train.batch_size={tc.batch_size}; lower the batch size or raise data.train_limit."
        )
    on_device = config.data.get("on_device", "auto")
    total_bytes = sum(int(a.nbytes) for xy in dataset.splits.values() for a in xy)
    if on_device == "auto":
        # Several processes feed their own rows from the host rather than each holding all.
        place = total_bytes < 2**31 and jax.process_count() == 1
    else:
        place = bool(on_device)
    splits = {name: Split(x, y, mesh, place) for name, (x, y) in dataset.splits.items()}
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
        writer,
        preemption,
    )
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
    }
    restored = run.ckpts.restore_latest(
        abstract_like((params, opt_state)),
        lambda path, m: _check_resumable(path, m, settings),
    )
    if restored is not None:
        (params, opt_state), meta = restored
        _log_extensions(meta, config)
        if writer:
            logging.info(
                "Resumed from step %d (epoch %d) in %s", meta["step"], meta["epoch"], workdir
            )
            _write_history(workdir, meta["history"])  # whatever a kill left half-written
    meta["settings"] = settings
    meta["config"] = json.loads(json.dumps(flatten(config), default=str))
    if writer:
        with atomic_write(os.path.join(workdir, "config.json")) as f:
            json.dump(config.to_dict(), f, indent=1, default=str)

    run.start_time = time.time() - meta["elapsed"]

    def finished():
        return meta["epoch"] >= tc.num_epochs or bool(tc.max_steps and meta["step"] >= tc.max_steps)

    while not finished():
        epoch_start = time.time()
        params, opt_state = _train_epoch(run, params, opt_state, meta)
        _end_epoch(run, params, opt_state, meta, meta["epoch_step"] < steps_per_epoch, epoch_start)

    history = meta["history"]
    nnx.update(model, jax.tree.map(np.asarray, params))
    best, best_test = history[-1]["best_acc"], history[-1]["best_test_acc"]
    val = f"best val accuracy {100 * best:.2f}%, " if run.select == "valid" else ""
    msg = (
        f"{config.task} {config.model.preset} ({config.model.neuron}): {val}best test accuracy "
        f"{100 * best_test:.2f}%, final test {100 * history[-1]['test_acc']:.2f}% after "
        f"{meta['step']} steps; metrics in {os.path.join(workdir, 'metrics.jsonl')}"
    )
    if writer:
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
    checkpointing every ``train.checkpoint_every_steps`` and on SIGTERM; updates ``meta``."""
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
        disable=not (tc.progress and run.writer),
        dynamic_ncols=True,
    )
    last = run.steps_per_epoch
    if tc.max_steps:
        last = min(last, meta["epoch_step"] + max(0, tc.max_steps - meta["step"]))
    indices = [
        order[b * tc.batch_size : (b + 1) * tc.batch_size] for b in range(meta["epoch_step"], last)
    ]
    pending = None
    for b, (x, y) in zip(range(meta["epoch_step"], last), run.splits["train"].batches(indices)):
        key = jax.random.fold_in(base_key, meta["step"])
        params, opt_state, metrics = run.train_step(params, opt_state, x, y, key)
        # Read the previous step's metrics after dispatching this one (no pipeline stall).
        if pending is not None:
            _consume(pending, meta, tc, bar)
        pending = (metrics, meta["step"], epoch, tc.batch_size)
        meta["step"] += 1
        meta["epoch_step"] = b + 1
        preempted = run.preemption.reached(meta["step"])
        due = (
            tc.checkpoint_every_steps
            and meta["step"] % tc.checkpoint_every_steps == 0
            and meta["epoch_step"] < run.steps_per_epoch
        )
        if due or preempted:
            # The step's loss is seen finite before its state is saved.
            _consume(pending, meta, tc, bar)
            pending = None
            meta["elapsed"] = time.time() - run.start_time
            run.ckpts.save(meta["step"], (params, opt_state), meta)
        if preempted:
            bar.close()
            raise Preempted(meta["step"], run.workdir)
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
        ev = _evaluate(
            run.eval_step, params, split, tc.eval_batch_size or tc.batch_size, run.n_dev, name
        )
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
    if run.writer:
        _write_history(run.workdir, meta["history"])
        logging.info(
            "epoch %d step %d: %s",
            record["epoch"],
            meta["step"],
            {k: v for k, v in record.items() if k.endswith(("acc", "loss"))},
        )


def _consume(pending, meta: dict, tc, bar) -> None:
    """Fold one step's metrics into ``meta["sums"]``; stop on a non-finite step."""
    metrics, step, epoch, batch = pending
    bar.update(1)
    if not bool(metrics["finite"]):
        if not tc.skip_nonfinite:
            raise NonFiniteLossError(
                f"Non-finite input, loss, gradient or update at step {step} (epoch {epoch + 1}); "
                "that update was not applied and the last good checkpoint is kept. Rerun with "
                "--config.train.skip_nonfinite=True to skip such batches, or start a new "
                "--workdir with a lower --config.optimizer.learning_rate or "
                "--config.optimizer.grad_clip set."
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
