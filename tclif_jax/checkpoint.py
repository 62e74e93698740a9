"""Orbax checkpoints of a training run: the last N, plus the best, surviving corruption.

Layout under ``workdir``: ``checkpoints/last/<step>`` (kept: the newest ``keep``) and
``checkpoints/best/<step>`` (kept: one). Each checkpoint holds ``state`` (params, the
model's ``nnx.Param`` state as a pure dict, and the optimizer state) and ``meta`` (JSON:
epoch, step, running sums, metric history, the run's result-changing settings,
``param_layout``).

A checkpoint that cannot be read is moved aside to ``checkpoints/corrupt/`` (never
deleted) with a one-line warning, and the run resumes from the newest intact one; only
when none is intact does the run stop, with a short ``CheckpointError``. The temporary
folders of a save that never finished (a full disk, a kill) are removed, with a warning,
when the run is next opened. A failed save raises its error without orbax's own logs of
it. Every process of
a multi-process run calls ``save`` and ``restore`` (orbax coordinates them).
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging as std_logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

__all__ = [
    "CheckpointError",
    "RunCheckpoints",
    "PARAM_LAYOUT",
    "check_layout",
    "remove_unfinished",
    "latest_meta",
    "abstract_like",
]

# Written into every checkpoint's meta: the parameter tree is the model's NNX state.
PARAM_LAYOUT = "nnx"


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used; it is never overwritten silently."""


@contextlib.contextmanager
def _quiet_orbax():
    # A failed restore makes orbax log hundreds of lines of asyncio tracebacks; the
    # CheckpointError says what matters.
    loggers = [std_logging.getLogger(n) for n in ("absl", "orbax", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(std_logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _manager(path: str, keep: int | None, *, create: bool) -> ocp.CheckpointManager:
    # Reading only (create=False) still opens a writable manager: orbax warns "Given
    # directory is read only" for every read_only one, a false alarm on each resume. Nothing
    # is written unless save() is called (no root metadata, no cleanup, no deletion).
    return ocp.CheckpointManager(
        path,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=create, enable_async_checkpointing=False
        ),
    )


class _HeldOrbaxLogs(std_logging.Filter):
    """Collects orbax's (and asyncio's) log records instead of letting them through."""

    def __init__(self):
        super().__init__()
        self.records: list[std_logging.LogRecord] = []

    def filter(self, record):
        if "orbax" in record.pathname or record.name == "asyncio":
            self.records.append(record)
            return False
        return True


# A failed save waits for orbax's threads to stop printing about it: until nothing new
# has come for _QUIET_S seconds, at most _STRAGGLERS_S.
_QUIET_S, _STRAGGLERS_S = 0.5, 5.0


@contextlib.contextmanager
def _save_output_held():
    """Holds what a save prints: orbax's log records and text written to ``sys.stderr``
    (tensorstore callbacks print "Event loop is closed" tracebacks there). Replayed if the
    save succeeds, dropped if it fails: the raised error says what happened, where on a
    full disk each of orbax's worker threads would print it again with a traceback
    (50-500 lines). A failed save first waits until those threads fall silent, so that
    what they print late is dropped too."""
    loggers = [std_logging.getLogger(n) for n in ("absl", "asyncio")]
    held, text = _HeldOrbaxLogs(), io.StringIO()
    stderr, sys.stderr = sys.stderr, text
    for lg in loggers:
        lg.addFilter(held)
    try:
        yield
    except BaseException:
        deadline, seen = time.monotonic() + _STRAGGLERS_S, None
        while time.monotonic() < deadline and seen != (len(held.records), text.tell()):
            seen = (len(held.records), text.tell())
            time.sleep(_QUIET_S)
        gc.collect()  # asyncio logs "Task exception was never retrieved" when it collects
        held.records.clear()
        text = io.StringIO()
        raise
    finally:
        sys.stderr = stderr
        for lg in loggers:
            lg.removeFilter(held)
        sys.stderr.write(text.getvalue())
        for record in held.records:
            std_logging.getLogger(record.name).handle(record)


TMP_MARK = ".orbax-checkpoint-tmp"


def remove_unfinished(root: str) -> list[str]:
    """Delete the temporary folders of saves that never finished under ``root`` (a
    ``checkpoints`` folder): orbax writes a step as ``<step>.orbax-checkpoint-tmp...`` and
    renames it when complete, so such a folder is only ever the remains of a failed save
    (a full disk, a kill). Call while holding the work directory's lock. Returns the
    paths removed, each logged."""
    removed = []
    for sub in ("last", "best"):
        folder = os.path.join(root, sub)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if TMP_MARK in name:
                path = os.path.join(folder, name)
                shutil.rmtree(path, ignore_errors=True)
                logging.warning(
                    "Removed %s, the remains of a checkpoint save that did not finish.", path
                )
                removed.append(path)
    return removed


def check_layout(path: str, meta: dict) -> None:
    """Refuse a checkpoint written with the previous parameter layout (tclif_jax 0.1)."""
    if meta.get("param_layout") != PARAM_LAYOUT:
        raise CheckpointError(
            f"The checkpoint at {path} was written by tclif_jax 0.1, whose parameter tree "
            "(w_in, b_in, w_rec, neuron, readout.w) this version no longer reads: parameters "
            "are now the model's NNX state (layers/<i>/dense/kernel, ...). It was left "
            "untouched; resume it with tclif_jax 0.1, or start afresh in a new --workdir."
        )


def _meta_args():
    return ocp.args.Composite(meta=ocp.args.JsonRestore())


def latest_meta(workdir: str) -> tuple[str, dict] | None:
    """``(path, meta)`` of the newest last-N checkpoint whose meta reads, without writing
    anything (None when there is none): what a resumed run is compared against."""
    path = os.path.join(os.path.abspath(workdir), "checkpoints", "last")
    if not os.path.isdir(path):
        return None
    mngr = _manager(path, None, create=False)
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            with _quiet_orbax():
                meta = mngr.restore(step, args=_meta_args())["meta"]
            return os.path.join(path, str(step)), meta
        except Exception:  # noqa: BLE001 - a corrupt meta: look at the previous one
            continue
    return None


class RunCheckpoints:
    """The last-N and best checkpoints of one run directory."""

    def __init__(self, workdir: str, keep: int = 3):
        self.root = os.path.join(os.path.abspath(workdir), "checkpoints")
        self.keep = keep
        if jax.process_index() == 0:
            remove_unfinished(self.root)
        self.last = _manager(os.path.join(self.root, "last"), keep, create=True)
        self.best = _manager(os.path.join(self.root, "best"), 1, create=True)

    def latest_step(self) -> int | None:
        return self.last.latest_step()

    def save(self, step: int, state: Any, meta: dict, *, best: bool = False) -> None:
        meta = dict(meta, param_layout=PARAM_LAYOUT)
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        managers = [self.last] + ([self.best] if best else [])
        for mngr in managers:
            if mngr.latest_step() == step:  # re-saving the same step (e.g. after max_steps)
                continue
            with _save_output_held():
                mngr.save(step, args=args, force=True)
                mngr.wait_until_finished()

    def _move_aside(self, step: int, why: str) -> str:
        src = os.path.join(str(self.last.directory), str(step))
        dst = os.path.join(self.root, "corrupt", f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.move(src, dst)
        logging.warning(
            "Checkpoint %s cannot be read (%s); moved aside to %s, resuming from an earlier one.",
            src,
            why,
            dst,
        )
        self.last.reload()
        return dst

    def restore_latest(
        self, abstract_state: Any, check_meta: Callable[[str, dict], None]
    ) -> tuple[Any, dict] | None:
        """``(state, meta)`` from the newest intact last-N checkpoint, restored into
        ``abstract_state``'s structure and shardings; None when there is no checkpoint.

        ``check_meta(path, meta)`` may raise (a checkpoint of other settings is refused,
        not skipped). Unreadable checkpoints are moved aside; when none is left, a short
        CheckpointError.
        """
        steps = sorted(self.last.all_steps(), reverse=True)
        if not steps:
            return None
        moved = []
        for step in steps:
            path = os.path.join(str(self.last.directory), str(step))
            try:
                with _quiet_orbax():
                    meta = self.last.restore(step, args=_meta_args())["meta"]
            except Exception as err:  # noqa: BLE001 - orbax raises many types for a bad file
                moved.append(self._move_aside(step, f"meta: {type(err).__name__}"))
                continue
            check_meta(path, meta)
            try:
                with _quiet_orbax():
                    state = self.last.restore(
                        step,
                        args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)),
                    )["state"]
            except Exception as err:  # noqa: BLE001
                moved.append(self._move_aside(step, f"{type(err).__name__}: {str(err)[:200]}"))
                continue
            return state, meta
        raise CheckpointError(
            f"No intact checkpoint is left in {self.last.directory}: every one failed to read "
            f"and was moved aside ({', '.join(moved)}). Nothing was deleted; to start afresh, "
            "use a new --workdir (or remove the checkpoints folder)."
        )


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) describing ``tree``, for restoring into it."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
