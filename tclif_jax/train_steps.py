"""The pure training and evaluation steps: jitted, data-parallel, on the model's state dict.

``params`` is the model's ``nnx.Param`` state as a pure dict (what the training loop's
optimizer and checkpoints hold) or ``NetworkParams``; the loss runs ``models.apply`` on it
under an ``Execution``. Batches are batch-major ``(B, T, F)`` arrays or
``EventBatch`` events with leading axes ``(B, T)`` (``tclif_jax.events``), sharded over a ``jax.sharding`` mesh (``tclif_jax.sharding``) when one is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tclif_jax.events import EventBatch
from tclif_jax.execution import Execution
from tclif_jax.models import SpikingNetwork, apply
from tclif_jax.sharding import Split, put_global

__all__ = [
    "NonFiniteLossError",
    "make_train_step",
    "make_eval_step",
    "evaluate",
    "nonfinite_message",
    "inputs_finite",
]


class NonFiniteLossError(FloatingPointError):
    """The loss, a gradient, an input or an updated parameter became NaN/inf and
    ``train.skip_nonfinite`` is off."""


def _loss_and_metrics(config, execution, params, x, y, key, weights):
    logits, aux = apply(config, params, x, execution, dropout_key=key)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    hits = jnp.argmax(logits, -1) == y
    if weights is None:
        loss, acc = losses.mean(), hits.mean()
    else:  # a padded last batch: the mean over its real rows
        loss = jnp.sum(losses * weights) / jnp.sum(weights)
        acc = jnp.sum(hits * weights) / jnp.sum(weights)
    return loss, {"accuracy": acc, "firing_rates": aux["firing_rates"]}


def _scaled_input(x, input_scale: float):
    """The network's float32 input: ``x * input_scale`` (an ``EventBatch``: its counts)."""
    if isinstance(x, EventBatch):
        return x.scaled(input_scale)
    return x.astype(jnp.float32) * input_scale


def inputs_finite(x) -> bool:
    """Whether a batch (an array or an ``EventBatch``) holds only finite values. The
    training loop asks only after a refused step, to name the cause: the step itself does
    not scan its input (a NaN input reaches the weight gradient ``x^T g`` and is refused
    there), and the loaders refuse non-finite data when they load it."""
    values = x.counts if isinstance(x, EventBatch) else x
    if not jnp.issubdtype(values.dtype, jnp.inexact):
        return True
    return bool(jnp.all(jnp.isfinite(values)))


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)]))


def make_train_step(
    model: SpikingNetwork,
    tx: optax.GradientTransformation,
    *,
    execution: Execution | None = None,
    input_scale: float = 1.0,
    mesh=None,
    shardings=None,
    jit: bool = True,
) -> Callable:
    """``step(params, opt_state, x, y, key, weights=None) -> (params, opt_state, metrics)``.

    ``params`` is ``parameters(model)`` (the ``nnx.Param`` state as a pure dict); the
    network is ``model.config``, run under ``execution`` (default: ``model.execution``).
    Pure: one forward/backward through the scan and one Adam update. If the loss, a
    gradient or an updated parameter is not finite, or a label is out of range, params
    and optimizer state stay unchanged and ``metrics["finite"]`` is False. A NaN input
    is refused through its weight gradient ``x^T g`` (a NaN membrane never spikes, so the
    loss alone would look fine); the step does not scan ``x`` itself, which would cost a
    pass over the whole batch (``inputs_finite`` names the cause after a refusal).
    ``x`` is ``(B, T, F)`` in any real dtype (cast to f32 and multiplied by
    ``input_scale`` inside) or an ``EventBatch``; ``y`` ``(B,)`` int; ``weights (B,)``
    (1 real, 0 padding) averages loss and accuracy over real rows.
    """
    config, execution = model.config, execution or model.execution

    def step(params, opt_state, x, y, key, weights=None):
        x = _scaled_input(x, input_scale)
        (loss, metrics), grads = jax.value_and_grad(_loss_and_metrics, argnums=2, has_aux=True)(
            config, execution, params, x, y, key, weights
        )
        updates, new_opt_state = tx.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        # What a non-finite step is checked for, so that its error can name the cause.
        checks = {
            "labels_in_range": jnp.all((y >= 0) & (y < config.num_classes)),
            "params_finite": _all_finite(params),
        }
        finite = (
            jnp.isfinite(loss)
            & checks["labels_in_range"]
            & _all_finite(grads)
            & _all_finite(new_params)
        )
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        new_params = jax.tree.map(keep, new_params, params)
        new_opt_state = jax.tree.map(keep, new_opt_state, opt_state)
        metrics = dict(
            metrics, **checks, loss=loss, finite=finite, grad_norm=optax.tree.norm(grads)
        )
        return new_params, new_opt_state, metrics

    if not jit:
        return step
    if mesh is None:
        return jax.jit(step, donate_argnums=(0, 1))
    p_sh, o_sh = shardings
    rep = NamedSharding(mesh, P())
    return jax.jit(step, donate_argnums=(0, 1), out_shardings=(p_sh, o_sh, rep))


def make_eval_step(
    model: SpikingNetwork, *, execution: Execution | None = None, input_scale: float = 1.0
) -> Callable:
    """``eval(params, x, y, mask) -> sums`` of loss, correct, count, non-finite input values
    and per-layer firing rates times count; padded rows have mask 0 (they repeat the last
    example, so the batch's rate stays an unbiased estimate up to that repeat)."""
    config, execution = model.config, execution or model.execution

    def step(params, x, y, mask):
        x = _scaled_input(x, input_scale)
        logits, aux = apply(config, params, x, execution)
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        count = jnp.sum(mask)
        values = x.counts if isinstance(x, EventBatch) else x
        bad = jnp.sum(jnp.where(jnp.isfinite(values), 0.0, 1.0), axis=(1, 2))
        return {
            "loss": jnp.sum(losses * mask),
            "correct": jnp.sum((jnp.argmax(logits, -1) == y) * mask),
            "count": count,
            "nonfinite": jnp.sum(bad * mask),
            "rates": aux["firing_rates"] * count,
        }

    return jax.jit(step)


def evaluate(eval_step, params, split: Split, batch_size: int, n_dev: int, name: str) -> dict:
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


def nonfinite_message(metrics, step: int, epoch: int, inputs_were_finite: bool) -> str:
    """Why a step's update was refused, from what the step checked (its metrics
    ``labels_in_range``, ``params_finite``) and ``inputs_finite`` of its batch; ``epoch``
    counts from 0."""
    where = f"at step {step} (epoch {epoch + 1})"
    skip = "or rerun with --config.train.skip_nonfinite=True to skip such batches."
    if not inputs_were_finite:
        return f"The batch {where} holds non-finite inputs (NaN/inf); the update was not applied. Clean the data, {skip}"
    if not bool(metrics["labels_in_range"]):
        return f"The batch {where} holds labels outside the model's classes; the update was not applied. Fix the dataset's labels or its class count."
    if not bool(metrics["params_finite"]):
        return f"The parameters {where} are not finite (NaN/inf); the last good checkpoint is kept. Resume from it in a new --workdir."
    return (
        f"Non-finite loss or gradient {where}, although the batch's inputs were finite, its "
        "labels in range and the parameters finite: training diverged. The update was not "
        "applied and the last good checkpoint is kept. Start a new --workdir with a lower "
        f"--config.optimizer.learning_rate or --config.optimizer.grad_clip set, {skip}"
    )
