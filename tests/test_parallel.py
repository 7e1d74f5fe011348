"""Scale-out from the config's ``parallel:`` section (issue 17, item 3).

The same toy run, serial and on a 2-worker Dask cluster, through the CLI: the events, a 2-member
ensemble and the pseudo-experiments (coverage and a Neyman belt) are bit-identical at the same
seed. One module-scoped ``LocalCluster`` serves every parallel run: a config with
``scheduler: local`` gets it through a stand-in for :func:`assay.cluster.local_client` (so
``client_for`` and the CLI wiring run for real, without starting a cluster per test), and a config
with ``scheduler: tcp://...`` connects to its scheduler by address. The scheduler's task stream
shows that the work really ran on the workers.

SLURM and HTCondor are tested by building the dask-jobqueue cluster and its job script from the
example config, without submitting anything.
"""

from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import small_toy_run
from distributed import get_task_stream
from typer.testing import CliRunner

import assay.cluster
from assay.cli import app
from assay.cluster import client_for, job_script, local_client
from assay.cluster_jobqueue import jobqueue_cluster, walltime_seconds
from assay.config import ParallelConfig, load_config
from assay.estimators import load_estimator
from assay.exceptions import ConfigError
from assay.store import EventStore

torch.set_num_threads(1)  # 2 shared cores
# a scheduler's HTTP server takes another port when another process holds Dask's default
pytestmark = pytest.mark.filterwarnings("ignore:Port 8787 is already in use")

EXAMPLE = Path(assay.cluster.__file__).parent / "examples" / "cluster_slurm.yaml"
MODEL = {"method": "alices", "hidden": [16], "epochs": 2, "batch_size": 128, "threads": 1, "n_ensemble": 2}
CONFIG = {
    **small_toy_run(seed=5, n_events=6_000, n_theta0=100),
    "training": {"alices": MODEL},
    "inference": {
        "luminosity_ifb": 0.02,  # ≈ 126 expected events per pseudo-experiment
        "scans": [{"parameter": "c", "range": [-0.6, 0.6], "n_points": 13}],
        "histograms": [{"observables": ["x0"], "edges": [[float("-inf"), -1.0, 0.0, 1.0, float("inf")]]}],
    },
}
CONFIG["simulator"] = {**CONFIG["simulator"], "batch_size": 1_500}  # 4 generation batches


def invoke(*args) -> object:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result


def ok(*args) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def write(folder: Path, name: str, **sections) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({**CONFIG, **sections}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def client():
    """One 2-worker LocalCluster for the module (a cluster start costs seconds)."""
    with local_client(2) as c:
        yield c


@pytest.fixture
def shared_local(client, monkeypatch) -> list[int]:
    """``scheduler: local`` runs on the module's cluster; returns the worker counts asked for."""
    asked: list[int] = []

    @contextmanager
    def stand_in(n_workers: int, **options):
        asked.append(n_workers)
        yield client

    monkeypatch.setattr(assay.cluster, "local_client", stand_in)
    return asked


@contextmanager
def tasks_on(client, prefix: str):
    """Collects the names of the finished tasks starting with ``prefix`` (run by any client)."""
    names: list[str] = []
    with get_task_stream(client) as stream:
        yield names
    names += [t["key"][0] if isinstance(t["key"], tuple) else t["key"] for t in stream.data]
    names[:] = [n for n in names if str(n).startswith(prefix)]


# ---- generation ---------------------------------------------------------------------------
def test_generation_on_two_workers_equals_serial(tmp_path, client, shared_local):
    """`assay generate`: the config's parallel section (2 local workers) gives the same events and
    weights as --workers 1 (serial) and as a config without the section; --workers overrides."""
    parallel = write(tmp_path, "parallel.yaml", parallel={"scheduler": "local", "workers": 2})
    plain = write(tmp_path, "plain.yaml")
    ok("generate", plain, "-o", tmp_path / "plain", "-q")
    ok("generate", parallel, "-o", tmp_path / "serial", "-q", "--workers", "1")
    assert shared_local == []  # neither started a cluster
    with tasks_on(client, "_one_batch") as batches:
        ok("generate", parallel, "-o", tmp_path / "dask", "-q")
    assert shared_local == [2] and len(batches) == 4
    stores = [EventStore(tmp_path / run / "events.h5") for run in ("plain", "serial", "dask")]
    first = stores[0].read()
    for store in stores[1:]:
        other = store.read()
        np.testing.assert_array_equal(other.x, first.x)
        np.testing.assert_array_equal(other.weights, first.weights)
    ok("generate", plain, "-o", tmp_path / "override", "-q", "--workers", "3")
    assert shared_local == [2, 3]  # --workers alone starts a local cluster of that size


# ---- a run shared by the ensemble and pseudo-experiment tests -----------------------------
@pytest.fixture(scope="module")
def prepared(tmp_path_factory, client):
    """`assay run` (serial) once; returns (folder, the run folder, the address config)."""
    folder = tmp_path_factory.mktemp("parallel")
    plain = write(folder, "plain.yaml")
    ok("run", plain, "-o", folder / "run", "-q")
    remote = write(folder, "remote.yaml", parallel={"scheduler": client.scheduler.address})
    return folder, folder / "run", plain, remote


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def trained(prepared) -> Path:
    """The run trained serially (--workers 1: the members one after the other in this process)."""
    folder, run, plain, _ = prepared
    serial = _copy_run(run, folder / "train-serial")
    ok("train", plain, "-o", serial, "-q", "--workers", "1")
    return serial


def test_ensemble_on_a_scheduler_address_equals_serial(prepared, trained, client):
    """`assay train` of a 2-member ensemble: serial (--workers 1) and on the cluster given by the
    config's scheduler address (one member per task) save identical networks."""
    folder, run, _, remote = prepared
    serial = trained
    dask_run = _copy_run(run, folder / "train-dask")
    with tasks_on(client, "_fit_member") as members:
        ok("train", remote, "-o", dask_run, "-q")
    assert len(members) == 2
    a, b = (load_estimator(r / "models" / "alices") for r in (serial, dask_run))
    for left, right in zip(a.members_, b.members_, strict=True):
        for (name, p), (_, q) in zip(left.net_.state_dict().items(), right.net_.state_dict().items()):
            assert torch.equal(p, q), name
    x = np.random.default_rng(0).normal(size=(50, 2))
    theta = np.array([[0.3], [-0.2]])
    log_r = [e.log_ratio(x, theta, np.zeros(1)).mean for e in (a, b)]
    np.testing.assert_array_equal(*log_r)


def test_ensemble_on_local_workers_from_the_config(prepared, trained, shared_local, monkeypatch):
    """`assay train` with `parallel: {workers: 2}` trains the members as two stacked groups on two
    threads of its own process (issue 21's batched path; no local cluster is started): equal to the
    serial members up to float32 rounding (measured: 4e-8 in log r here), not bit for bit."""
    folder, run, _, _ = prepared
    local = write(folder, "local.yaml", parallel={"workers": 2})
    out = _copy_run(run, folder / "train-local")
    import assay.estimators.batched as batched

    groups, fit_estimators = [], batched.fit_estimators

    def recorded(*args, n_groups=1):
        groups.append(n_groups)
        return fit_estimators(*args, n_groups=n_groups)

    monkeypatch.setattr(batched, "fit_estimators", recorded)
    ok("train", local, "-o", out, "-q")
    assert shared_local == [] and groups == [2]
    x, theta = np.random.default_rng(1).normal(size=(200, 2)), np.array([[0.4]])
    models = (load_estimator(r / "models" / "alices") for r in (trained, out))
    a, b = (model.log_ratio(x, theta, np.zeros(1)).mean for model in models)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)


def _without_timings(node):
    if isinstance(node, dict):
        return {k: _without_timings(v) for k, v in node.items() if "timing" not in k and k != "created"}
    if isinstance(node, list):
        return [_without_timings(v) for v in node]
    return node


def test_pseudo_experiments_on_two_workers_equal_serial(prepared, trained, client, shared_local):
    """`assay limits --toys 100 --neyman 2 --neyman-method alices`: the coverage of the ensemble,
    truth, histogram and rate in 100 pseudo-experiments and the ensemble's Neyman critical values
    are the same serial and with the config's 2 local workers (toys are drawn here, fitted there)."""
    folder, _, plain, _ = prepared
    parallel = write(folder, "toys-parallel.yaml", parallel={"workers": 2})
    options = ("-q", "--no-report", "--toys", 100, "--neyman", 2, "--neyman-method", "alices")
    serial = _copy_run(trained, folder / "serial" / "toys")  # the same name: it titles the results
    ok("limits", plain, "-o", serial, *options)
    dask_run = _copy_run(trained, folder / "dask" / "toys")
    with tasks_on(client, "_apply") as fits:
        ok("limits", parallel, "-o", dask_run, *options)
    assert shared_local == [2] and len(fits) == 100 + 13 * 2  # toys + belt toys at the 13 scan points
    a, b = (json.loads((r / "limits" / "results.json").read_text()) for r in (serial, dask_run))
    assert _without_timings(a) == _without_timings(b)
    levels = a["levels"].values()
    assert all(level["coverage"] and level["neyman"] for level in levels)


# ---- SLURM and HTCondor: the job scripts, nothing submitted ---------------------------------
def _directives(script: str, prefix: str) -> list[str]:
    return [line.removeprefix(prefix).strip() for line in script.splitlines() if line.startswith(prefix)]


def test_slurm_job_script_of_the_example_config():
    """`assay cluster-script` of the documented example: one job = 8 single-threaded workers
    sharing 16 GiB for 2 h on partition `short`, charged to `my-project`, with the extra directive
    and the workers' malloc setting."""
    out = ok("cluster-script", EXAMPLE)
    sbatch = _directives(out, "#SBATCH")
    for expected in ("-p short", "-A my-project", "--cpus-per-task=8", "--mem=16G", "-t 02:00:00",
                     "--constraint=cpu"):  # fmt: skip
        assert expected in sbatch, (expected, sbatch)
    assert "export MALLOC_MMAP_THRESHOLD_=33554432" in out.splitlines()
    worker = next(line for line in out.splitlines() if "dask_worker" in line)
    assert "--nworkers 8" in worker and "--nthreads 1" in worker and "--memory-limit 2.00GiB" in worker
    parallel = load_config(EXAMPLE).parallel
    assert job_script(parallel.model_copy(update={"walltime": "90m"})).count("#SBATCH -t 01:30:00") == 1


def test_htcondor_submit_description():
    """HTCondor: request_cpus/request_memory through the job's ClassAd attributes, the walltime
    as +MaxRuntime seconds, submit-file lines from job_extra, the malloc export before the worker."""
    parallel = ParallelConfig(scheduler="htcondor", cores=2, memory="4GB", walltime="2h", account="grp",
                              job_extra=['+JobFlavour = "workday"'])  # fmt: skip
    script = job_script(parallel)
    lines = [line.strip() for line in script.splitlines()]
    expected_lines = (
        "RequestCpus = MY.DaskWorkerCores", "MY.DaskWorkerCores = 2", "MY.DaskWorkerMemory = 4000000000",
        "RequestMemory = floor(MY.DaskWorkerMemory / 1048576)", "+MaxRuntime = 7200",
        '+JobFlavour = "workday"', "accounting_group = grp",
    )  # fmt: skip
    for expected in expected_lines:
        assert expected in lines, (expected, script)
    arguments = next(line for line in lines if line.startswith("Arguments"))
    assert re.search(r"export MALLOC_MMAP_THRESHOLD_=33554432; .*dask_worker .*--nworkers 2", arguments)


def test_dask_jobqueue_configuration_is_kept():
    """Prologue lines, directives and the HTCondor disk of Dask's jobqueue configuration
    (~/.config/dask/jobqueue.yaml) stay, next to the config's."""
    import dask
    import dask_jobqueue  # noqa: F401  (loads the defaults that the settings below update)

    settings = {
        "jobqueue.slurm.job-script-prologue": ["module load python"],
        "jobqueue.slurm.job-extra-directives": ["--qos=normal"],
        "jobqueue.htcondor.job-extra-directives": {"+Site": '"here"'},
        "jobqueue.htcondor.disk": "20GB",
    }
    with dask.config.set(settings):
        script = job_script(load_config(EXAMPLE).parallel)
        submit = job_script(ParallelConfig(scheduler="htcondor", job_extra=["+JobFlavour = workday"]))
    assert {"--qos=normal", "--constraint=cpu"} <= set(_directives(script, "#SBATCH"))
    lines = script.splitlines()
    assert lines.index("module load python") < lines.index("export MALLOC_MMAP_THRESHOLD_=33554432")
    lines = [line.strip() for line in submit.splitlines()]
    assert {'+Site = "here"', "+JobFlavour = workday", "MY.DaskWorkerDisk = 20000000000"} <= set(lines)


def test_jobqueue_client_waits_for_the_first_job_and_closes(monkeypatch):
    """client_for(slurm) asks for `workers` jobs, yields once the first job's worker has joined
    (here a `dask worker` process started by the intercepted scale stands in for the job: nothing
    is submitted), runs work on it, and closes the cluster on exit, also when interrupted (Ctrl-C)."""
    import subprocess

    import dask_jobqueue

    calls, jobs_started = [], []

    def scale(self, n=None, jobs=0, memory=None, cores=None):
        if not jobs:  # closing scales to 0
            return
        calls.append((self, jobs))
        command = [sys.executable, "-m", "distributed.cli.dask_worker", self.scheduler_address,
                   "--nthreads", "1", "--no-nanny", "--no-dashboard"]  # fmt: skip
        jobs_started.append(subprocess.Popen(command, stderr=subprocess.DEVNULL))

    monkeypatch.setattr(dask_jobqueue.SLURMCluster, "scale", scale)
    parallel = load_config(EXAMPLE).parallel
    try:
        with pytest.raises(KeyboardInterrupt), client_for(parallel, workers=3) as c:
            ((cluster, jobs),) = calls
            assert jobs == 3 and c.scheduler.address == cluster.scheduler_address
            assert len(c.ncores()) == 1  # it waited for the worker
            assert c.submit(sum, [1, 2]).result() == 3
            raise KeyboardInterrupt
        assert cluster.status.name == "closed" and c.status == "closed"
    finally:
        for job in jobs_started:  # the stand-in job, whatever the closed scheduler told it
            job.kill()
            job.wait(timeout=30)


def test_no_worker_at_the_address():
    """A scheduler without workers: one error after the timeout, naming the address."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, dashboard_address=None) as empty:
        parallel = ParallelConfig(scheduler=empty.scheduler_address)
        with pytest.raises(
            ConfigError, match=rf"no worker connected to the scheduler at {empty.scheduler_address}"
        ):
            with client_for(parallel, timeout=1):
                pass


def test_walltimes():
    """SLURM's clock formats (MM:SS, HH:MM:SS, D-HH[:MM[:SS]]) and durations with a unit."""
    cases = {"02:00:00": 7200, "90:00": 5400, "1-12:00:00": 129600, "1-2": 93600, "2h": 7200}
    cases["30 minutes"] = 1800
    assert {text: walltime_seconds(text) for text in cases} == cases


# ---- bad input: one clear error each --------------------------------------------------------
def test_serial_needs_no_cluster(monkeypatch):
    monkeypatch.setattr(assay.cluster, "local_client", None)  # would fail if called
    with client_for(ParallelConfig(workers=1)) as c:
        assert c is None
    with client_for(ParallelConfig(workers=4), workers=1) as c:
        assert c is None


def test_unknown_scheduler_names_the_field(tmp_path):
    path = write(tmp_path, "bad.yaml", parallel={"scheduler": "pbs"})
    with pytest.raises(ConfigError, match=r"parallel\.scheduler.*local, slurm, htcondor"):
        load_config(path)
    result = invoke("cluster-script", path)
    assert result.exit_code == 2 and "parallel.scheduler" in result.output


def test_cluster_script_of_a_local_config_is_refused(tmp_path):
    result = invoke("cluster-script", write(tmp_path, "local.yaml", parallel={"workers": 2}))
    assert result.exit_code == 2
    assert "local.yaml: parallel.scheduler: 'local' submits no jobs" in " ".join(result.output.split())


def test_missing_dask_jobqueue_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'assay\[cluster\]'"):
        job_script(ParallelConfig(scheduler="slurm"))


@pytest.mark.parametrize(
    ("update", "match"),
    [
        ({"walltime": "two hours"}, r"parallel\.walltime: expected HH:MM:SS"),
        ({"walltime": "120"}, r"parallel\.walltime: .*got '120'"),
        ({"scheduler": "htcondor", "job_extra": ["+JobFlavour"]}, r"parallel\.job_extra\[0\]: .*key = value"),
    ],
)
def test_malformed_job_settings(update, match):
    with pytest.raises(ConfigError, match=match):
        jobqueue_cluster(ParallelConfig(scheduler="slurm").model_copy(update=update))


def test_no_scheduler_at_the_address():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"no Dask scheduler answered at tcp://127.0.0.1:{port}"):
        with client_for(ParallelConfig(scheduler=f"tcp://127.0.0.1:{port}"), timeout=1):
            pass


# ---- grid evaluation --------------------------------------------------------------------------
def test_grids_on_two_workers_equal_serial(tmp_path, client):
    """`assay limits` with a client evaluates each (grid, method) as one task on a worker: the q
    surfaces of a trained ALICES, the truth, a histogram and the rate equal the serial ones exactly."""
    from assay.analysis.limits import run_limits
    from assay.config import config_from_dict
    from assay.pipeline import run_pipeline
    from assay.training import train_model

    data = {
        **CONFIG, "output": str(tmp_path / "grid"),
        "parameters": [{"name": "a", "range": [-1.0, 1.0]}, {"name": "b", "range": [-1.0, 1.0]}],
        "training": {"alices": {**MODEL, "n_ensemble": 1}},
        "inference": {
            **CONFIG["inference"],
            "scans": [{"parameter": "a", "range": [-0.6, 0.6], "n_points": 7}],
            "grids": [{"parameters": ["a", "b"], "ranges": [[-0.6, 0.6], [-0.6, 0.6]], "n_points": 9}],
        },
    }  # fmt: skip
    cfg = config_from_dict(data)
    run_pipeline(cfg, progress=False)
    train_model(cfg, "alices", progress=False)
    serial = run_limits(cfg, progress=False)
    with tasks_on(client, "_grid_q") as tasks:
        parallel = run_limits(cfg, progress=False, client=client)
    (grid_a,), (grid_b,) = (next(iter(r.levels.values())).scans_2d for r in (serial, parallel))
    assert set(grid_a.q) == {"truth", "alices", "hist_x0", "rate"} and len(tasks) == 4
    for name, q in grid_a.q.items():
        np.testing.assert_array_equal(grid_b.q[name], q, err_msg=name)


def test_importing_dask_jobqueue_keeps_ctrl_c(monkeypatch):
    """dask_jobqueue.runner sets SIGINT to sys.exit() on import: a Ctrl-C would become a SystemExit that
    skips the CLI's "interrupted; rerun" line. assay keeps the handler it had."""
    import signal
    import sys

    from assay.cluster_jobqueue import _cluster_class

    for name in [m for m in sys.modules if m == "dask_jobqueue" or m.startswith("dask_jobqueue.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh: the runner sets its handler again
    before = signal.getsignal(signal.SIGINT)
    _cluster_class("slurm")
    assert "dask_jobqueue.runner" in sys.modules  # the import did run (and set its handler)
    assert signal.getsignal(signal.SIGINT) is before
