"""Training: the resumable loop around the pure, jitted, data-parallel Optax steps.

``train_and_evaluate(config, workdir)`` is the loop, with what makes a run trustworthy: an
exclusive lock on the work directory, refusal to resume under settings that change the
result (a changed ``execution.*`` is accepted and logged), fallback over corrupt
checkpoints, no checkpoint of a non-finite state, atomic writes of ``metrics.jsonl``,
``config.json`` and the plot, and a checkpoint on SIGTERM (``Preempted``; the entry points
exit 143). Only process 0 writes files and logs results.

Checking and building what the config names (network, execution, optimizer) is
``tclif_jax.task_config``; the steps are ``tclif_jax.train_steps``: batches are sharded
over a mesh of every device (axis ``"data"``), parameters replicated (or sharded on their
first axis with ``mesh.shard_params``). Batches are batch-major ``(B, T, F)``. Small
datasets are placed on device once (``data.on_device``); larger ones are fed from the
host, prefetched in a thread. ``train.drop_last=False`` (the official loaders' behaviour)
trains on the last partial batch too, padded to the batch size with zero-weight rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from tclif_jax import data as data_lib
from tclif_jax.checkpoint import RunCheckpoints, abstract_like, check_layout, latest_meta
from tclif_jax.execution import EXECUTION_FIELDS
from tclif_jax.models import parameters
from tclif_jax.plotting import learning_curves_png
from tclif_jax.preemption import Preemption, all_processes
from tclif_jax.sharding import Split, init_opt_state, make_mesh, param_shardings, put_global
from tclif_jax.task_config import (
    ConfigError,
    build_model,
    make_optimizer,
    network_config,
    train_size,
    validate_config,
)
from tclif_jax.train_steps import (
    NonFiniteLossError,
    evaluate,
    inputs_finite,
    make_eval_step,
    make_train_step,
    nonfinite_message,
)
from tclif_jax.workdir import WorkdirLock, atomic_write, compare_settings, flatten, result_settings

__all__ = [
    "ConfigError",
    "NonFiniteLossError",
    "Preempted",
    "RunState",
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


class Preempted(RuntimeError):
    """SIGTERM arrived: the current step finished and was checkpointed (resume by rerunning)."""

    def __init__(self, step: int, workdir: str):
        super().__init__(
            f"Preempted (SIGTERM) after step {step}; checkpoint written in {workdir}. Rerun the "
            "same command to resume."
        )
        self.step = step


# ----------------------------------------------------------------------------- the loop


def _write_history(workdir: str, history: list[dict]) -> None:
    """metrics.jsonl and learning_curve.png, each replaced atomically."""
    with atomic_write(os.path.join(workdir, "metrics.jsonl")) as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")
    if history:
        png = learning_curves_png(history)
        with atomic_write(os.path.join(workdir, "learning_curve.png"), "wb") as f:
            f.write(png)


@dataclasses.dataclass
class RunState:
    """Where a run stands; checkpointed as the JSON ``meta`` beside params and optimizer.

    ``epoch``: finished epochs; ``step``: optimizer steps taken; ``epoch_step``: steps into
    the current epoch; ``loss_sum``/``correct_sum``/``seen``: the current epoch's running
    train sums (example-weighted); ``history``: the metrics records; ``best_acc``: best
    selection-split accuracy (-1 before any); ``elapsed``: wall seconds trained.
    """

    epoch: int = 0
    step: int = 0
    epoch_step: int = 0
    loss_sum: float = 0.0
    correct_sum: float = 0.0
    seen: int = 0
    history: list = dataclasses.field(default_factory=list)
    best_acc: float = -1.0
    best_test_acc: float = -1.0
    nonfinite_skipped: int = 0
    elapsed: float = 0.0

    def to_meta(self, settings: dict, config: dict) -> dict:
        """The checkpoint's JSON (the layout tclif_jax 0.2 wrote: ``sums`` as a list)."""
        meta = dataclasses.asdict(self)
        meta["sums"] = [meta.pop("loss_sum"), meta.pop("correct_sum"), meta.pop("seen")]
        return dict(meta, settings=settings, config=config)

    @classmethod
    def from_meta(cls, meta: dict) -> RunState:
        loss_sum, correct_sum, seen = meta.get("sums", (0.0, 0.0, 0))
        names = {f.name for f in dataclasses.fields(cls)} - {"loss_sum", "correct_sum", "seen"}
        fields = {k: meta[k] for k in names if k in meta}
        return cls(loss_sum=loss_sum, correct_sum=correct_sum, seen=seen, **fields)

    def start_epoch(self) -> None:
        self.epoch, self.epoch_step = self.epoch + 1, 0
        self.loss_sum, self.correct_sum, self.seen = 0.0, 0.0, 0


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
    preemption: Preemption
    settings: dict  # the result-changing settings, saved in every checkpoint
    config_record: dict  # the flattened config, saved in every checkpoint
    start_time: float = 0.0

    def save(self, state: RunState, params, opt_state, *, best: bool = False) -> None:
        state.elapsed = time.time() - self.start_time
        meta = state.to_meta(self.settings, self.config_record)
        self.ckpts.save(state.step, (params, opt_state), meta, best=best)


# Fields tclif_jax 0.2 saved among a run's result-changing settings that are execution
# settings since 0.3 (``execution.*``, which may change on resume).
_MOVED_TO_EXECUTION = tuple(f"model.{name}" for name in EXECUTION_FIELDS)
# Result-changing fields added since 0.2, with the behaviour a 0.2 run had.
_ADDED_SINCE_0_2 = {"train.drop_last": True}


def _saved_settings(meta: dict) -> dict:
    """A checkpoint's result-changing settings in today's names (0.2 runs migrated)."""
    saved = {k: v for k, v in meta.get("settings", {}).items() if k not in _MOVED_TO_EXECUTION}
    for key, value in _ADDED_SINCE_0_2.items():
        saved.setdefault(key, value)
    return saved


def _check_resumable(path: str, meta: dict, settings: dict) -> None:
    check_layout(path, meta)
    differ = compare_settings(_saved_settings(meta), settings)
    if differ:
        raise ConfigError(
            f"The run in {os.path.dirname(os.path.dirname(os.path.dirname(path)))} was written "
            f"with other settings ({len(differ)} differ):\n  "
            + "\n  ".join(differ[:20])
            + ("\n  ..." if len(differ) > 20 else "")
            + "\nNothing was changed. Rerun with the run's settings (config.json holds them) "
            "or use a new --workdir. Fields that only extend a run (train.num_epochs, "
            "train.max_steps, checkpoint cadence, progress) and execution.* may differ."
        )


def _log_extensions(meta: dict, config) -> None:
    before = dict(meta.get("config", {}))
    for key in _MOVED_TO_EXECUTION:  # 0.2 kept them under model.*
        if key in before:
            before.setdefault("execution." + key.split(".", 1)[1], before.pop(key))
    now = {k: v for k, v in flatten(config).items() if k not in meta.get("settings", {})}
    changed = [
        f"{k}: {before.get(k)!r} -> {v!r}"
        for k, v in sorted(now.items())
        if k in before and before[k] is not None and before[k] != json.loads(json.dumps(v))
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
    if not all_processes(error is None):
        raise error or RuntimeError(f"Process 0 could not lock {workdir}; see its log.")
    preemption = Preemption()
    try:
        return _train(config, workdir, writer, preemption)
    finally:
        preemption.close()
        lock.release()


def _placed(config, dataset) -> bool:
    on_device = config.data.get("on_device", "auto")
    if on_device != "auto":
        return bool(on_device)
    # Event batches are built on the host, in the prefetch thread; several processes
    # feed their own rows from the host rather than each holding all.
    events = any(isinstance(x, data_lib.spike_store.EventRows) for x, _ in dataset.splits.values())
    total_bytes = sum(int(a.nbytes) for xy in dataset.splits.values() for a in xy)
    return not events and total_bytes < 2**31 and jax.process_count() == 1


def _build_run(config, workdir, writer, preemption, settings):
    """Data, model, mesh, optimizer and compiled steps: ``(run, model, params, opt_state)``."""
    data_fields = {k: v for k, v in config.data.items() if k != "on_device"}
    dataset = data_lib.load_dataset(config.task, data_fields, workdir=workdir)
    if writer:
        for k, v in dataset.info.items():
            logging.info("data %s: %s", k, v)
    model = build_model(config, dataset.num_features, dataset.num_classes)
    tc = config.train
    mesh = make_mesh()
    num_train = len(dataset.splits["train"][1])
    if num_train < tc.batch_size:
        field = (train_size(config.task, config.data) or (0, "data.train_limit"))[1]
        raise ConfigError(
            f"The training split has {num_train} examples, fewer than "
            f"train.batch_size={tc.batch_size}; lower --config.train.batch_size or raise "
            f"--config.{field}."
        )
    place = _placed(config, dataset)
    splits = {name: Split(x, y, mesh, place) for name, (x, y) in dataset.splits.items()}
    divide = math.floor if tc.drop_last else math.ceil
    steps_per_epoch = divide(num_train / tc.batch_size)
    tx, schedule = make_optimizer(config.optimizer, steps_per_epoch, tc.num_epochs)
    # Copy: the step donates its params, which must not be the module's own buffers.
    params = jax.tree.map(np.array, parameters(model))
    p_sh = param_shardings(params, mesh, config.get("mesh", {}).get("shard_params", False))
    params = jax.device_put(params, p_sh)
    opt_state, o_sh = init_opt_state(tx, params, mesh)
    scale = dataset.input_scale
    run = _Run(
        config,
        workdir,
        splits,
        make_train_step(model, tx, input_scale=scale, mesh=mesh, shardings=(p_sh, o_sh)),
        make_eval_step(model, input_scale=scale),
        schedule,
        RunCheckpoints(workdir, keep=tc.keep_checkpoints),
        steps_per_epoch,
        mesh.devices.size,
        "valid" if "valid" in splits else "test",
        writer,
        preemption,
        settings,
        json.loads(json.dumps(flatten(config), default=str)),
    )
    return run, model, params, opt_state


def _train(config, workdir: str, writer: bool, preemption: Preemption) -> dict[str, Any]:
    not_result = [f"data.{f}" for f in data_lib.PLACEMENT_FIELDS] + ["execution."]
    settings = result_settings(config, not_result)
    found = latest_meta(workdir)
    checked = set()
    if found is not None:  # refused before anything in the folder is touched
        _check_resumable(found[0], found[1], settings)
        checked.add(found[0])
    run, model, params, opt_state = _build_run(config, workdir, writer, preemption, settings)
    state = RunState()
    restored = run.ckpts.restore_latest(
        abstract_like((params, opt_state)),
        lambda path, m: None if path in checked else _check_resumable(path, m, settings),
    )
    if restored is not None:
        (params, opt_state), meta = restored
        state = RunState.from_meta(meta)
        _log_extensions(meta, config)
        if writer:
            logging.info("Resumed from step %d (epoch %d) in %s", state.step, state.epoch, workdir)
            _write_history(workdir, state.history)  # whatever a kill left half-written
    if writer:
        with atomic_write(os.path.join(workdir, "config.json")) as f:
            json.dump(config.to_dict(), f, indent=1, default=str)

    tc = config.train
    run.start_time = time.time() - state.elapsed

    def finished():
        return state.epoch >= tc.num_epochs or bool(tc.max_steps and state.step >= tc.max_steps)

    while not finished():
        epoch_start = time.time()
        params, opt_state = _train_epoch(run, params, opt_state, state)
        _end_epoch(
            run, params, opt_state, state, state.epoch_step < run.steps_per_epoch, epoch_start
        )

    history = state.history
    nnx.update(model, jax.tree.map(np.asarray, params))
    best, best_test = history[-1]["best_acc"], history[-1]["best_test_acc"]
    val = f"best val accuracy {100 * best:.2f}%, " if run.select == "valid" else ""
    msg = (
        f"{config.task} {config.model.preset} ({config.model.neuron}): {val}best test accuracy "
        f"{100 * best_test:.2f}%, final test {100 * history[-1]['test_acc']:.2f}% after "
        f"{state.step} steps; metrics in {os.path.join(workdir, 'metrics.jsonl')}"
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


def _epoch_batches(run: _Run, state: RunState, last: int):
    """``(indices, weights)`` of the epoch's batches ``state.epoch_step .. last - 1``: a
    shuffle per (seed, epoch); a last partial batch (``drop_last=False``) is padded with
    its own rows, weighted 0 (None: every row counts)."""
    bs = run.config.train.batch_size
    order = np.random.default_rng([run.config.seed, state.epoch]).permutation(run.splits["train"].n)
    out = []
    for b in range(state.epoch_step, last):
        idx = order[b * bs : (b + 1) * bs]
        weights = None
        if len(idx) < bs:
            weights = (np.arange(bs) < len(idx)).astype(np.float32)
            idx = np.resize(idx, bs)
        out.append((idx, weights))
    return out


def _train_epoch(run: _Run, params, opt_state, state: RunState):
    """Train from ``state.epoch_step`` to the epoch's end or ``train.max_steps``,
    checkpointing every ``train.checkpoint_every_steps`` and on SIGTERM; updates ``state``."""
    from tqdm.auto import tqdm

    tc = run.config.train
    base_key = jax.random.key(run.config.seed)
    bar = tqdm(
        total=run.steps_per_epoch,
        initial=state.epoch_step,
        leave=False,
        desc=f"epoch {state.epoch + 1}/{tc.num_epochs}",
        disable=not (tc.progress and run.writer),
        dynamic_ncols=True,
    )
    last = run.steps_per_epoch
    if tc.max_steps:
        last = min(last, state.epoch_step + max(0, tc.max_steps - state.step))
    batches = _epoch_batches(run, state, last)
    split = run.splits["train"]
    pending = None
    for (idx, weights), (x, y) in zip(batches, split.batches([i for i, _ in batches])):
        key = jax.random.fold_in(base_key, state.step)
        if weights is None:
            params, opt_state, metrics = run.train_step(params, opt_state, x, y, key)
        else:
            w = put_global(weights, split.batch_sharding)
            params, opt_state, metrics = run.train_step(params, opt_state, x, y, key, w)
        # Read the previous step's metrics after dispatching this one (no pipeline stall).
        if pending is not None:
            _consume(pending, state, tc, bar)
        real = len(idx) if weights is None else int(weights.sum())
        # The batch stays referenced one step longer, so that a refused step can name a
        # non-finite input as its cause.
        pending = (metrics, state.step, state.epoch, real, x)
        state.step += 1
        state.epoch_step += 1
        preempted = run.preemption.reached(state.step)
        due = (
            tc.checkpoint_every_steps
            and state.step % tc.checkpoint_every_steps == 0
            and state.epoch_step < run.steps_per_epoch
        )
        if due or preempted:
            # The step's loss is seen finite before its state is saved.
            _consume(pending, state, tc, bar)
            pending = None
            run.save(state, params, opt_state)
        if preempted:
            bar.close()
            raise Preempted(state.step, run.workdir)
    if pending is not None:
        _consume(pending, state, tc, bar)
    bar.close()
    return params, opt_state


def _end_epoch(run: _Run, params, opt_state, state: RunState, stopped_early: bool, start: float):
    """Evaluate, log a metrics record, checkpoint (also as best), and advance ``state``."""
    tc = run.config.train
    record = {
        "epoch": state.epoch + 1,
        "step": state.step,
        "train_loss": state.loss_sum / max(state.seen, 1),
        "train_acc": state.correct_sum / max(state.seen, 1),
    }
    for name, split in run.splits.items():
        if name == "train":
            continue
        ev = evaluate(
            run.eval_step, params, split, tc.eval_batch_size or tc.batch_size, run.n_dev, name
        )
        prefix = "val" if name == "valid" else name
        record[f"{prefix}_acc"], record[f"{prefix}_loss"] = ev["acc"], ev["loss"]
        if name == run.select:
            record["firing_rates"] = ev["rates"]
    record["lr"] = float(run.schedule(state.step))
    record["epoch_time"] = round(time.time() - start, 3)
    record["wall_time"] = round(time.time() - run.start_time, 3)
    record["partial_epoch"] = stopped_early
    selected = record["val_acc" if run.select == "valid" else "test_acc"]
    is_best = selected > state.best_acc
    record["best_acc"] = max(state.best_acc, selected)
    record["best_test_acc"] = max(state.best_test_acc, record["test_acc"])
    if not stopped_early:
        # A max_steps stop reports its evaluation but does not move the run's state, so a
        # resumed run ends exactly as an uninterrupted one would.
        state.best_acc, state.best_test_acc = record["best_acc"], record["best_test_acc"]
        state.start_epoch()
    # A partial record logged earlier for this epoch is replaced by the new one.
    state.history = [h for h in state.history if h["epoch"] != record["epoch"]] + [record]
    run.save(state, params, opt_state, best=is_best)
    if run.writer:
        _write_history(run.workdir, state.history)
        logging.info(
            "epoch %d step %d: %s",
            record["epoch"],
            state.step,
            {k: v for k, v in record.items() if k.endswith(("acc", "loss"))},
        )


def _consume(pending, state: RunState, tc, bar) -> None:
    """Fold one step's metrics into the epoch's sums; stop on a non-finite step."""
    metrics, step, epoch, count, x = pending
    bar.update(1)
    if not bool(metrics["finite"]):
        if not tc.skip_nonfinite:
            raise NonFiniteLossError(nonfinite_message(metrics, step, epoch, inputs_finite(x)))
        state.nonfinite_skipped += 1
        logging.warning(
            "Skipped a non-finite batch at step %d (%d so far).", step, state.nonfinite_skipped
        )
        return
    loss, acc = float(metrics["loss"]), float(metrics["accuracy"])
    state.loss_sum += loss * count
    state.correct_sum += acc * count
    state.seen += count
    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}")  # the bar itself shows steps/s
