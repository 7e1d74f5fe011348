"""The Dask clusters assay starts itself: a ``LocalCluster`` of single-threaded worker processes.

Ensembles (:meth:`assay.estimators.Ensemble.fit`) and ``assay demo`` start one when no
``dask.distributed.Client`` is passed in; anything else (dask-jobqueue on SLURM or HTCondor, a
scheduler of your own) is used as given.

Dask spawns its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``,
to hand memory back to the system). Setting any malloc tunable switches off glibc's adaptive
``mmap`` threshold, which then stays at 128 kB: every activation tensor of a training step (a few
hundred kB at batch 512) is mapped, page-faulted in and unmapped again, and an ALICES member
trained 2× slower on a worker than in the main process (benchmarks/training.py). The workers
started here also get :data:`WORKER_ENVIRON`, which keeps blocks up to 32 MiB on the heap.
For workers you start yourself, put the same in Dask's configuration, e.g.
``~/.config/dask/distributed.yaml``::

    distributed:
      nanny:
        pre-spawn-environ:
          MALLOC_MMAP_THRESHOLD_: 33554432
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["WORKER_ENVIRON", "dask_setup", "local_client"]

WORKER_ENVIRON = {"MALLOC_MMAP_THRESHOLD_": 32 * 1024 * 1024}
"""Added to Dask's ``pre-spawn-environ`` of the workers (32 MiB: glibc's largest mmap threshold)."""


@contextmanager
def local_client(n_workers: int, *, quiet: bool = True) -> Iterator[Any]:
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes and its ``Client``.

    Args:
        n_workers: worker processes (one per member or per core).
        quiet: keep the scheduler's and workers' INFO logging out of the caller's handlers.

    Yields:
        The connected ``dask.distributed.Client``; cluster and client close on exit.
    """
    import dask
    from dask.distributed import Client, LocalCluster

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENVIRON}
    scheduler_log = logging.getLogger("distributed")
    level = scheduler_log.level
    if quiet:
        scheduler_log.setLevel(logging.ERROR)
    # preload: the workers run dask_setup below and leave Ctrl-C to this process
    options: dict[str, Any] = dict(threads_per_worker=1, dashboard_address=None, preload=[__name__])
    if quiet:
        options["silence_logs"] = logging.ERROR
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            with LocalCluster(n_workers=n_workers, **options) as cluster, Client(cluster) as client:
                _quiet_cancelled_gathers(client)
                yield client
    finally:
        scheduler_log.setLevel(level)


def _quiet_cancelled_gathers(client: Any) -> None:
    """Keep the client's event loop from printing "Task exception was never retrieved ... AllExit"
    tracebacks: ``Client.gather`` cancels its waits with ``AllExit`` when it is interrupted (Ctrl-C)
    and never retrieves them. Other exceptions still reach the loop's default handler."""
    loop = getattr(client.loop, "asyncio_loop", None)
    if loop is None:
        return
    from distributed.client import AllExit

    def handler(loop, context: dict) -> None:
        if not isinstance(context.get("exception"), AllExit):
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, run in each worker process that :func:`local_client` starts: ignore SIGINT.

    A terminal's Ctrl-C reaches the whole process group; the workers used to print their own
    ``KeyboardInterrupt`` tracebacks. The client process takes the interrupt and closes the
    cluster, which ends the workers. Nothing changes in the process that made the cluster.
    """
    if multiprocessing.parent_process() is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
