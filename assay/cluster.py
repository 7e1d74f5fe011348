"""The Dask clusters assay works on: a ``LocalCluster`` of single-threaded worker processes, a running
scheduler, or SLURM / HTCondor jobs (:mod:`assay.cluster_jobqueue`), as a config's ``parallel:``
section asks (:func:`client_for`).

Ensembles (:meth:`assay.estimators.Ensemble.fit`) and ``assay demo`` start a local one when no
``dask.distributed.Client`` is passed in; a client from :func:`client_for` is used as given.

Dask spawns its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``,
to hand memory back to the system). Setting any malloc tunable switches off glibc's adaptive
``mmap`` threshold, which then stays at 128 kB: every activation tensor of a training step (a few
hundred kB at batch 512) is mapped, page-faulted in and unmapped again, and an ALICES member
trained 2× slower on a worker than in the main process (benchmarks/training.py). The workers
started here also get :data:`WORKER_ENVIRON`, which keeps blocks up to 32 MiB on the heap (local
workers through ``pre-spawn-environ``, SLURM / HTCondor jobs through an ``export`` in the job script).
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
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from assay.exceptions import ConfigError

if TYPE_CHECKING:
    from assay.config import ParallelConfig

__all__ = ["WORKER_ENVIRON", "client_for", "dask_setup", "job_script", "local_client", "quiet_distributed"]

logger = logging.getLogger(__name__)

WORKER_ENVIRON = {"MALLOC_MMAP_THRESHOLD_": 32 * 1024 * 1024}
"""Added to Dask's ``pre-spawn-environ`` of the workers (32 MiB: glibc's largest mmap threshold)."""


@contextmanager
def local_client(n_workers: int, *, quiet: bool = True, local_directory: str | None = None) -> Iterator[Any]:
    """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes and its ``Client``.

    Args:
        n_workers: worker processes (one per member or per core).
        quiet: keep the scheduler's and workers' INFO logging out of the caller's handlers.
        local_directory: the workers' scratch folder (None: Dask's default, the system's temp).

    Yields:
        The connected ``dask.distributed.Client``; cluster and client close on exit.
    """
    import dask
    from dask.distributed import Client, LocalCluster

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENVIRON}
    # preload: the workers run dask_setup below and leave Ctrl-C to this process
    options: dict[str, Any] = dict(threads_per_worker=1, dashboard_address=None, preload=[__name__])
    if quiet:
        options["silence_logs"] = logging.ERROR
    if local_directory is not None:
        options["local_directory"] = local_directory
    with quiet_distributed(quiet), dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        with LocalCluster(n_workers=n_workers, **options) as cluster, Client(cluster) as client:
            _quiet_cancelled_gathers(client)
            yield client


@contextmanager
def quiet_distributed(quiet: bool = True) -> Iterator[None]:
    """Keep the INFO logging of a scheduler started in this process (logger ``distributed``) out of
    the caller's handlers for the duration; errors still show."""
    import distributed  # noqa: F401  (importing it sets up the logger silenced here)

    scheduler_log = logging.getLogger("distributed")
    level = scheduler_log.level
    if quiet:
        scheduler_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        scheduler_log.setLevel(level)


@contextmanager
def client_for(
    parallel: ParallelConfig, *, workers: int | None = None, timeout: float = 30.0
) -> Iterator[Any]:
    """The Dask client a config's ``parallel:`` section asks for, or None to run serially here.

    ``scheduler: local`` starts a :func:`local_client` of ``workers`` processes (default: the
    CPU count; 1: None, serial); an address (``tcp://host:8786``) connects to that scheduler and
    uses the workers it has; ``slurm`` / ``htcondor`` start a scheduler here and submit ``workers``
    jobs of ``cores`` single-threaded workers each (:func:`assay.cluster_jobqueue.jobqueue_cluster`)
    and wait, as long as the queue takes, for the first job's workers (Dask's ``scatter`` gives up
    on a cluster without workers after 30 s). On exit (Ctrl-C included) the client closes, and with
    it any cluster started here: its jobs are cancelled; a scheduler given by address keeps running.

    Args:
        parallel: the config's ``parallel:`` section.
        workers: overrides ``parallel.workers`` (``--workers``).
        timeout: seconds to wait for a scheduler given by address, and for its first worker.

    Yields:
        A connected ``dask.distributed.Client``, or None (serial).

    Raises:
        ConfigError: an unknown scheduler, dask-jobqueue not installed (slurm/htcondor), no scheduler
            answering at the address or no worker connected to it.
    """
    n = workers or parallel.workers
    scheduler = parallel.scheduler
    if scheduler == "local":
        n = n or os.cpu_count() or 1
        if n == 1:
            yield None
            return
        with local_client(n, local_directory=parallel.local_directory) as client:
            yield client
        return
    if "://" in scheduler:
        if n:
            logger.info("%s: using the workers it has; workers=%d starts none", scheduler, n)
        with _connect(scheduler, timeout) as client:
            _first_worker(client, f"the scheduler at {scheduler}", timeout)
            yield client
        return
    from dask.distributed import Client

    from assay.cluster_jobqueue import jobqueue_cluster

    with quiet_distributed(), jobqueue_cluster(parallel) as cluster, Client(cluster) as client:
        cluster.scale(jobs=n or 1)
        logger.info("submitted %d %s jobs of %d workers: %s", n or 1, scheduler, parallel.cores, cluster)
        _quiet_cancelled_gathers(client)
        _first_worker(client, f"{n or 1} {scheduler} jobs (Ctrl-C cancels them)", None)
        yield client


def _first_worker(client: Any, where: str, timeout: float | None) -> None:
    """Return once ``client``'s scheduler has a worker; None: wait as long as it takes.

    Raises:
        ConfigError: none within ``timeout`` seconds.
    """
    if client.scheduler_info()["workers"]:
        return
    logger.warning("waiting for the first worker of %s", where)
    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError as exc:
        raise ConfigError(
            f"parallel.scheduler: no worker connected to {where} within {timeout:g} s; "
            "start some (`dask worker ADDRESS --nthreads 1`)"
        ) from exc


@contextmanager
def _connect(address: str, timeout: float) -> Iterator[Any]:
    """A client of the running scheduler at ``address`` (closed on exit; the scheduler keeps running)."""
    from dask.distributed import Client

    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"parallel.scheduler: no Dask scheduler answered at {address} within {timeout:g} s ({exc}); "
            "start one (`dask scheduler`, then `dask worker ADDRESS`) or correct the address"
        ) from exc
    with client:
        _quiet_cancelled_gathers(client)
        yield client


def job_script(parallel: ParallelConfig) -> str:
    """The SLURM batch script or HTCondor submit description of one worker job; nothing is submitted.

    See :func:`assay.cluster_jobqueue.job_script`.

    Raises:
        ConfigError: ``parallel.scheduler`` is not slurm or htcondor, or dask-jobqueue is missing.
    """
    from assay.cluster_jobqueue import job_script as script

    return script(parallel)


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
