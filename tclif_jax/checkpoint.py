"""Orbax checkpoints of a training run: the last N, plus the best, with clear failures.

Layout under ``workdir``: ``checkpoints/last/<step>`` (kept: the newest
``keep``) and ``checkpoints/best/<step>`` (kept: one). Each checkpoint holds
``state`` (params, the model's ``nnx.Param`` state as a pure dict, and the optimizer state)
and ``meta`` (JSON: epoch, step, running sums, metric history, a fingerprint of the model
config, ``param_layout``).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "RunCheckpoints", "PARAM_LAYOUT"]

# Written into every checkpoint's meta: the parameter tree is the model's NNX state.
PARAM_LAYOUT = "nnx"


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used; it is never overwritten silently."""


class RunCheckpoints:
    """The last-N and best checkpoints of one run directory."""

    def __init__(self, workdir: str, keep: int = 3):
        root = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.root = root
        opts = dict(create=True, enable_async_checkpointing=False)
        self.last = ocp.CheckpointManager(
            os.path.join(root, "last"),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts),
        )
        self.best = ocp.CheckpointManager(
            os.path.join(root, "best"), options=ocp.CheckpointManagerOptions(max_to_keep=1, **opts)
        )

    def latest_step(self) -> int | None:
        return self.last.latest_step()

    def save(self, step: int, state: Any, meta: dict, *, best: bool = False) -> None:
        meta = dict(meta, param_layout=PARAM_LAYOUT)
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        managers = [self.last] + ([self.best] if best else [])
        for mngr in managers:
            if mngr.latest_step() == step:  # re-saving the same step (e.g. after max_steps)
                continue
            mngr.save(step, args=args, force=True)
            mngr.wait_until_finished()

    def restore(
        self, abstract_state: Any, fingerprint: str, step: int | None = None, which: str = "last"
    ) -> tuple[Any, dict]:
        """Restore ``(state, meta)`` from a step (default: latest) into ``abstract_state``'s
        structure and shardings. Raises CheckpointError naming the folder and the fix."""
        mngr = self.last if which == "last" else self.best
        step = mngr.latest_step() if step is None else step
        path = os.path.join(str(mngr.directory), str(step))
        try:
            meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as err:  # noqa: BLE001 - orbax raises many types for a bad file
            raise CheckpointError(
                f"The checkpoint at {path} cannot be read ({type(err).__name__}: {err}). It was "
                "left untouched. Move or delete it to start afresh, or point --workdir at a new "
                "folder."
            ) from err
        if meta.get("param_layout") != PARAM_LAYOUT:
            raise CheckpointError(
                f"The checkpoint at {path} was written by tclif_jax 0.1, whose parameter tree "
                "(w_in, b_in, w_rec, neuron, readout.w) this version no longer reads: parameters "
                "are now the model's NNX state (layers/<i>/dense/kernel, ...). It was left "
                "untouched; resume it with tclif_jax 0.1, or start afresh in a new --workdir."
            )
        if meta.get("fingerprint") != fingerprint:
            raise CheckpointError(
                f"The checkpoint at {path} was written by a different model/config "
                f"({meta.get('fingerprint')!r}, this run: {fingerprint!r}). It was left untouched; "
                "use a new --workdir, or rerun with the config that wrote it."
            )
        try:
            restored = mngr.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
            )["state"]
        except Exception as err:  # noqa: BLE001
            raise CheckpointError(
                f"The checkpoint at {path} does not fit this model or is corrupt "
                f"({type(err).__name__}: {err}). It was left untouched; use a new --workdir or "
                "delete the folder to start afresh."
            ) from err
        return restored, meta


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) describing ``tree``, for restoring into it."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
