"""SLURM and HTCondor clusters from a config's ``parallel:`` section, through dask-jobqueue.

Each job runs ``cores`` single-threaded Dask worker processes that share the job's ``memory``; the
job script exports :data:`assay.cluster.WORKER_ENVIRON` (the malloc setting that keeps training on
a worker as fast as in the main process). What the config does not set (the network
``interface``, the ``python`` of the workers, a ``log_directory``, ...) comes from Dask's own
``jobqueue.slurm`` / ``jobqueue.htcondor`` configuration, e.g. ``~/.config/dask/jobqueue.yaml``.

dask-jobqueue is the ``cluster`` extra (``pip install 'assay[cluster]'``), imported only here.
"""

from __future__ import annotations

import re
import signal
import threading
from typing import Any

from assay.config import ParallelConfig
from assay.exceptions import ConfigError

__all__ = ["JOBQUEUE_SCHEDULERS", "job_script", "jobqueue_cluster", "walltime_seconds"]

JOBQUEUE_SCHEDULERS = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster"}
"""``parallel.scheduler`` → the dask-jobqueue cluster class that submits its jobs."""

_CLOCK = re.compile(r"(?:(\d+)-)?(\d+(?::\d+){0,2})")  # SLURM's [D-]... clock times


def _cluster_class(scheduler: str) -> type:
    if scheduler not in JOBQUEUE_SCHEDULERS:
        raise ConfigError(
            f"parallel.scheduler: {scheduler!r} submits no jobs; expected {' or '.join(JOBQUEUE_SCHEDULERS)}"
        )
    # dask_jobqueue.runner sets SIGINT to `sys.exit()` when imported (0.9): Ctrl-C would then be a
    # SystemExit that skips assay's "interrupted; rerun" handling. Keep the handler as it was.
    main = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGINT) if main else None
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ConfigError(
            f"parallel.scheduler: {scheduler} submits its workers through dask-jobqueue, which is not "
            "installed: pip install 'assay[cluster]'"
        ) from exc
    finally:
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
    return getattr(dask_jobqueue, JOBQUEUE_SCHEDULERS[scheduler])


def walltime_seconds(walltime: str) -> int:
    """A walltime in seconds, written as SLURM does (``"02:00:00"``, ``"1-12:00:00"``, ``"90:00"`` =
    90 min) or as a duration with a unit (``"2h"``, ``"30 minutes"``).

    Raises:
        ConfigError: anything else, a bare number included (the message names ``parallel.walltime``).
    """
    from dask.utils import parse_timedelta

    text = walltime.strip()
    clock = _CLOCK.fullmatch(text)
    if clock and (clock[1] or ":" in clock[2]):
        fields = [int(f) for f in clock[2].split(":")]
        # SLURM: D-HH[:MM[:SS]] counts from hours, MM:SS and HH:MM:SS from the right
        hms = fields + [0] * (3 - len(fields)) if clock[1] else [0] * (3 - len(fields)) + fields
        return ((int(clock[1] or 0) * 24 + hms[0]) * 60 + hms[1]) * 60 + hms[2]
    if not clock:
        try:
            return int(parse_timedelta(text))
        except (ValueError, KeyError, TypeError):
            pass
    raise ConfigError(
        f"parallel.walltime: expected HH:MM:SS, D-HH:MM:SS or a duration like 2h, got {walltime!r}"
    )


def _clock(seconds: int) -> str:
    """7200 → ``"02:00:00"`` (SLURM's HH:MM:SS; hours may exceed 24)."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _htcondor_directives(lines: list[str]) -> dict[str, str]:
    """``["+JobFlavour = \\"tomorrow\\"", ...]`` → {"+JobFlavour": '"tomorrow"'} (submit-file lines)."""
    directives = {}
    for i, line in enumerate(lines):
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"parallel.job_extra[{i}]: HTCondor needs submit-file lines 'key = value', got {line!r}"
            )
        directives[key.strip()] = value.strip()
    return directives


def _job_options(parallel: ParallelConfig) -> dict[str, Any]:
    """The keyword arguments of the dask-jobqueue cluster (dask-jobqueue ≥ 0.8 names). Prologue lines
    and directives add to those of Dask's ``jobqueue.<scheduler>`` configuration."""
    import dask

    from assay.cluster import WORKER_ENVIRON

    def configured(key: str, default: Any) -> Any:
        return dask.config.get(f"jobqueue.{parallel.scheduler}.{key}", None) or default

    exports = [f"export {key}={value}" for key, value in WORKER_ENVIRON.items()]
    options: dict[str, Any] = {
        "cores": parallel.cores,
        "processes": parallel.cores,  # single-threaded workers, as on the local cluster
        "memory": parallel.memory,
        "job_script_prologue": [*configured("job-script-prologue", []), *exports],
    }
    if parallel.local_directory is not None:
        options["local_directory"] = parallel.local_directory
    if parallel.scheduler == "slurm":
        walltime = None if parallel.walltime is None else _clock(walltime_seconds(parallel.walltime))
        options |= {"queue": parallel.queue, "account": parallel.account, "walltime": walltime}
        options["job_extra_directives"] = [*configured("job-extra-directives", []), *parallel.job_extra]
        return {key: value for key, value in options.items() if value is not None}
    directives = {**configured("job-extra-directives", {}), **_htcondor_directives(parallel.job_extra)}
    if parallel.walltime is not None:  # honoured by many pools (CERN, DESY); others set their own key
        directives.setdefault("+MaxRuntime", str(walltime_seconds(parallel.walltime)))
    if parallel.account is not None:
        directives.setdefault("accounting_group", parallel.account)
    options["job_extra_directives"] = directives
    # HTCondor requires a disk request: Dask's jobqueue.htcondor.disk, else the memory (what the
    # workers can spill at most)
    options["disk"] = configured("disk", parallel.memory)
    return options


def jobqueue_cluster(parallel: ParallelConfig, **cluster_options: Any) -> Any:
    """The dask-jobqueue cluster of ``parallel`` (a scheduler in this process, no job submitted yet).

    Args:
        parallel: a config's ``parallel:`` section with ``scheduler: slurm`` or ``htcondor``.
        cluster_options: further keyword arguments of the cluster (e.g. ``scheduler_options``).

    Returns:
        A ``dask_jobqueue.SLURMCluster`` or ``HTCondorCluster``; ``cluster.scale(jobs=n)`` submits.
        The caller closes it (it is a context manager).

    Raises:
        ConfigError: another scheduler, dask-jobqueue missing, a malformed walltime or HTCondor line.
    """
    cls = _cluster_class(parallel.scheduler)
    options = _job_options(parallel)
    return cls(**options, silence_logs="error", **cluster_options)


def job_script(parallel: ParallelConfig) -> str:
    """The job script one worker job would be submitted with (nothing is submitted).

    Args:
        parallel: a config's ``parallel:`` section with ``scheduler: slurm`` or ``htcondor``.

    Returns:
        The text of the SLURM batch script (``#SBATCH`` lines, then the worker command) or the
        HTCondor submit description. The scheduler address in it is a placeholder of this process.

    Raises:
        ConfigError: as :func:`jobqueue_cluster`.
    """
    import dask

    from assay.cluster import quiet_distributed

    name = parallel.scheduler
    options = dask.config.get(f"jobqueue.{name}.scheduler-options", None) or {}
    scheduler = {**options, "dashboard": False, "dashboard_address": ":0"}  # no fixed port taken
    with quiet_distributed(), jobqueue_cluster(parallel, scheduler_options=scheduler) as cluster:
        return cluster.job_script()
