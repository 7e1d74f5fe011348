"""The local Dask cluster assay starts for ensembles and the demo."""

from __future__ import annotations

import os

import dask
import dask.distributed  # registers the "distributed" configuration

from assay.cluster import WORKER_ENVIRON, local_client


def _environ() -> dict[str, str | None]:
    return {key: os.environ.get(key) for key in (*WORKER_ENVIRON, "OMP_NUM_THREADS")}


def test_workers_keep_blocks_on_the_heap_and_one_thread():
    """Workers get the mmap threshold (else Dask's trim setting slows training 2×) on top of Dask's
    own pre-spawn settings, and the caller's Dask configuration is left as it was."""
    before = dask.config.get("distributed.nanny.pre-spawn-environ")
    with local_client(1) as client:
        (environ,) = client.run(_environ).values()
    assert environ == {**{k: str(v) for k, v in WORKER_ENVIRON.items()}, "OMP_NUM_THREADS": "1"}
    assert dask.config.get("distributed.nanny.pre-spawn-environ") == before
