"""Stopping cleanly: SIGTERM noticed between steps, and agreement across processes.

A preempted job (a cluster's SIGTERM) finishes its current step, checkpoints and stops;
with several processes, all stop after the same step (JAX's preemption sync point).
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np
from absl import logging

__all__ = ["Preemption", "all_processes"]


class Preemption:
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


def all_processes(ok: bool) -> bool:
    """Whether ``ok`` holds on process 0, told to every process."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))
