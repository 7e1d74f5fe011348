"""The one trainer of every torch estimator (seed 000 "Training settings").

:class:`Trainer` minimises ``loss_fn(model, batch) -> (total, terms)`` over mini-batches
of a dict of tensors with AMSGrad (or Adam / NAdam), an exponentially decaying learning
rate from ``lr[0]`` to ``lr[1]`` (seed 000: 10⁻³ → 10⁻⁴), early stopping on the
validation loss with the best epoch's weights restored, a tqdm progress bar, and seeded
shuffling. It knows nothing about physics: estimators bring the model and the loss.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from assay.estimators.checkpoint import fingerprint, read_checkpoint, write_checkpoint
from assay.exceptions import ConfigError, TrainingError
from assay.saving import disk_full
from assay.streaming import ChunkedDataset

__all__ = [
    "OPTIMIZERS",
    "History",
    "LossFn",
    "Trainer",
    "describe_non_finite",
    "keep_freed_memory",
    "lr_schedule",
    "seeded",
]

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, torch.Tensor]]]
Data = dict[str, torch.Tensor] | ChunkedDataset  # arrays in memory, or streamed from a file

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    # fused: one kernel for all parameters (≈10% faster per step at seed 000's sizes on a CPU)
    "amsgrad": lambda params, lr: torch.optim.Adam(params, lr=lr, amsgrad=True, fused=True),
    "adam": lambda params, lr: torch.optim.Adam(params, lr=lr, fused=True),
    "nadam": lambda params, lr: torch.optim.NAdam(params, lr=lr),
}
DEVICES = ("auto", "cpu", "cuda")
_EVAL_BATCH = 8192


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run a block (e.g. weight initialisation) with torch's CPU RNG seeded, restoring it afterwards."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # bytes: blocks below this come from the heap, not a fresh mmap
TRIM_THRESHOLD = 128 << 20  # bytes of free heap kept before memory is returned to the system


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep freed memory in the process for reuse (once per process; Linux only).

    A training step allocates and frees a few dozen temporaries of 0.1-1 MB. With glibc's
    defaults each one is either a fresh ``mmap`` or carved from a heap top that ``free`` has just
    returned to the system, so every step page-faults its temporaries in again: measured on a
    2-core CPU, a stacked step of 5 [100, 100] members took 1,295 minor page faults and 4.9 ms of
    CPU, and 1 fault and 3.1 ms with these settings. This sets ``M_MMAP_THRESHOLD`` to 32 MiB (the
    value assay's Dask workers get through ``MALLOC_MMAP_THRESHOLD_``) and ``M_TRIM_THRESHOLD`` to
    128 MiB: the process keeps up to 128 MiB of freed heap. Called by :meth:`Trainer.fit` and the
    stacked trainer (:mod:`assay.estimators.batched`).

    Returns:
        Whether the settings were applied (False without glibc).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, Windows, musl without mallopt)
        applied = False
    logger.debug("malloc thresholds for training %s", "set" if applied else "not available")
    return applied


def lr_schedule(lr: tuple[float, float], epochs: int) -> np.ndarray:
    """Learning rate of each epoch, lr0 · (lr1/lr0)^(e/(epochs−1)), shape ``(epochs,)``.

    Example:
        >>> lr_schedule((1e-3, 1e-4), 3).round(8).tolist()
        [0.001, 0.00031623, 0.0001]
    """
    if epochs == 1:
        return np.array([lr[0]])
    return lr[0] * (lr[1] / lr[0]) ** (np.arange(epochs) / (epochs - 1))


@dataclass(frozen=True)
class History:
    """Per-epoch record of a fit.

    Attributes:
        train_loss: mean training loss per epoch.
        val_loss: mean validation loss per epoch (empty without validation data).
        train_terms: per named loss term (unweighted by its coefficient), one value per epoch.
        val_terms: the same on the validation data.
        lr: learning rate the optimizer used in each epoch.
        best_epoch: index of the epoch whose weights were kept.
    """

    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    train_terms: Mapping[str, tuple[float, ...]]
    val_terms: Mapping[str, tuple[float, ...]]
    lr: tuple[float, ...]
    best_epoch: int

    @property
    def n_epochs(self) -> int:
        return len(self.train_loss)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> History:
        def curves(d: Mapping) -> dict[str, tuple[float, ...]]:
            return {k: tuple(map(float, v)) for k, v in d.items()}

        return cls(
            train_loss=tuple(map(float, data["train_loss"])),
            val_loss=tuple(map(float, data["val_loss"])),
            train_terms=curves(data["train_terms"]),
            val_terms=curves(data["val_terms"]),
            lr=tuple(map(float, data["lr"])),
            best_epoch=int(data["best_epoch"]),
        )


@dataclass
class _Curves:
    """Mutable accumulator behind :class:`History`."""

    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    train_terms: dict[str, list[float]] = field(default_factory=dict)
    val_terms: dict[str, list[float]] = field(default_factory=dict)
    lr: list[float] = field(default_factory=list)

    def add(self, train: tuple[float, dict], val: tuple[float, dict] | None, lr: float) -> None:
        self.train.append(train[0])
        self.lr.append(lr)
        for k, v in train[1].items():
            self.train_terms.setdefault(k, []).append(v)
        if val is not None:
            self.val.append(val[0])
            for k, v in val[1].items():
                self.val_terms.setdefault(k, []).append(v)

    def history(self, best_epoch: int) -> History:
        return History(
            tuple(self.train),
            tuple(self.val),
            {k: tuple(v) for k, v in self.train_terms.items()},
            {k: tuple(v) for k, v in self.val_terms.items()},
            tuple(self.lr),
            best_epoch,
        )


@dataclass
class _Best:
    """The epoch with the lowest monitored loss so far, and (for early stopping) its weights."""

    loss: float = math.inf
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(self, loss: float, epoch: int, model: nn.Module | None) -> None:
        self.loss, self.epoch = loss, epoch
        if model is not None:
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass(frozen=True)
class Trainer:
    """Mini-batch training loop shared by all estimators (seed 000 "Training settings").

    Args:
        epochs: maximal number of passes over the training data.
        batch_size: samples per gradient step.
        lr: (initial, final) learning rate; decays geometrically between them over ``epochs``.
        optimizer: name in :data:`OPTIMIZERS` ("amsgrad", "adam", "nadam").
        validation_split: fraction of the samples held out for validation when no
            validation data is passed to :meth:`fit` (0: none).
        early_stopping: keep the weights of the epoch with the lowest validation loss (the
            training loss without validation data) and stop after ``patience`` epochs without
            improvement.
        patience: epochs without improvement before stopping.
        clip_grad_norm: clip the global gradient norm to this value (None: no clipping).
        device: "auto" (cuda if available, else cpu), "cpu" or "cuda".
        seed: seeds the shuffling, the validation split and (through :func:`seeded`) the
            estimators' weight initialisation; None: fresh randomness.
        progress: show a tqdm progress bar with the train / validation loss.

    Raises:
        ConfigError: an invalid setting (unknown names list the valid ones).
    """

    epochs: int = 50
    batch_size: int = 128
    lr: tuple[float, float] = (1e-3, 1e-4)
    optimizer: str = "amsgrad"
    validation_split: float = 0.25
    early_stopping: bool = True
    patience: int = 10
    clip_grad_norm: float | None = None
    device: str = "auto"
    seed: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        lr = tuple(float(v) for v in np.ravel(self.lr))
        object.__setattr__(self, "lr", lr)
        checks = {
            "epochs": (self.epochs >= 1, "an integer >= 1"),
            "batch_size": (self.batch_size >= 1, "an integer >= 1"),
            "lr": (len(lr) == 2 and all(math.isfinite(v) and v > 0 for v in lr), "two positive numbers"),
            "validation_split": (0 <= self.validation_split < 1, "a fraction in [0, 1)"),
            "patience": (self.patience >= 1, "an integer >= 1"),
            "clip_grad_norm": (self.clip_grad_norm is None or self.clip_grad_norm > 0, "None or > 0"),
        }
        for name, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"Trainer.{name}: expected {expected}, got {getattr(self, name)!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"Trainer.optimizer: unknown name {self.optimizer!r}; valid names are {sorted(OPTIMIZERS)}"
            )
        if self.device not in DEVICES:
            raise ConfigError(
                f"Trainer.device: unknown name {self.device!r}; valid names are {list(DEVICES)}"
            )

    def to_dict(self) -> dict:
        """JSON-able settings (the constructor's keyword arguments)."""
        return {**asdict(self), "lr": list(self.lr)}

    @property
    def torch_device(self) -> torch.device:
        """The device training runs on ("auto" resolved)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def fit(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        tensors: Mapping[str, torch.Tensor | np.ndarray] | ChunkedDataset,
        *,
        validation: Mapping[str, torch.Tensor | np.ndarray] | ChunkedDataset | None = None,
        checkpoint: str | os.PathLike | None = None,
    ) -> History:
        """Train ``model`` in place.

        Args:
            model: the module to train (moved to :attr:`torch_device`).
            loss_fn: ``loss_fn(model, batch) -> (total, terms)``; ``batch`` holds the rows of
                every tensor for one mini-batch, on the device; ``total`` is the scalar to
                minimise, ``terms`` named scalars to record.
            tensors: training arrays, all with the same first dimension ``n_samples``
                (floating arrays are cast to float32), or a :class:`~assay.streaming.ChunkedDataset`
                streamed from its file: each epoch visits its chunks in an order drawn from the
                seeded generator and shuffles the rows within a buffer of chunks; the validation
                split holds out whole chunks. A dataset of one chunk is read whole and trains
                exactly like the same arrays passed in memory.
            validation: validation arrays with the same keys, or a dataset; None: hold out
                ``validation_split`` of ``tensors``.
            checkpoint: a file for the state after every epoch (:mod:`assay.estimators.checkpoint`),
                for a stream also after every buffer of chunks; if it holds an unfinished run of
                this same fit, training resumes where it stopped. Deleted when the fit ends. None:
                no checkpoints.

        Returns:
            :class:`History`; the model ends with the best epoch's weights if
            ``early_stopping``, else with the last epoch's.

        Raises:
            TrainingError: the loss or the weights became NaN or infinite; the message names the
                likely cause: non-finite ``tensors`` / ``validation`` (which array, how many values,
                the first bad row), else a diverging optimisation (lower ``lr`` or set
                ``clip_grad_norm``). The checkpoint keeps the last epoch that was finite.
            StoreError: ``checkpoint`` exists but is not a readable training checkpoint.
        """
        keep_freed_memory()
        generator, train, val, saver = self._prepare(model, tensors, validation, checkpoint)
        inputs = {"training arrays": train, "validation arrays": val}  # rows as passed in, for errors
        if val is None and self.validation_split > 0:
            train, val = _split(train, self.validation_split, generator)
        try:
            curves, best = self._run(model, loss_fn, train, val, generator, saver)
        except _NonFinite as exc:
            raise self._non_finite_error(exc, inputs, saver) from None
        if saver is not None and saver.path.is_file():
            saver.path.unlink()
        if self.early_stopping and best.state is not None:
            model.load_state_dict(best.state)
        best_epoch = best.epoch if self.early_stopping else len(curves.train) - 1
        model.eval()
        logger.info(
            "trained %d epochs; kept epoch %d (train loss %.4g, validation loss %s)",
            len(curves.train),
            best_epoch,
            curves.train[best_epoch],
            f"{curves.val[best_epoch]:.4g}" if curves.val else "n/a",
        )
        return curves.history(best_epoch)

    def _run(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train: Data,
        val: Data | None,
        generator: torch.Generator,
        saver: _Checkpoint | None = None,
    ) -> tuple[_Curves, _Best]:
        """The epoch loop: lr schedule, one pass, validation, progress bar, early stopping, checkpoints."""
        optimizer = OPTIMIZERS[self.optimizer](model.parameters(), self.lr[0])
        curves, best, start, stopped = _Curves(), _Best(), 0, False
        partial = None
        if saver is not None and saver.resume is not None:
            curves, best, start, stopped = saver.restore(model, optimizer, generator)
            partial = saver.resume.get("partial")
        schedule = lr_schedule(self.lr, self.epochs)
        bar = tqdm(total=self.epochs, initial=start, disable=not self.progress, unit="epoch", leave=False)
        for epoch in range(start, self.epochs if not stopped else start):
            for group in optimizer.param_groups:
                group["lr"] = float(schedule[epoch])
            model.train()
            on_buffer = None
            if saver is not None and isinstance(train, ChunkedDataset):  # a checkpoint per buffer

                def on_buffer(progress: dict, epoch: int = epoch) -> None:
                    if _finite(model, progress["sums"]["values"]):  # else keep the last finite state
                        state = (model, optimizer, generator, curves, best)
                        saver.save(epoch - 1, False, *state, partial=progress)

            train_loss = self._epoch(model, loss_fn, train, optimizer, generator, partial, on_buffer)
            partial = None
            val_loss = _evaluate(model, loss_fn, val, self.torch_device) if val is not None else None
            _check_finite(model, train_loss, val_loss, epoch)  # before the checkpoint: keep the good one
            curves.add(train_loss, val_loss, optimizer.param_groups[0]["lr"])
            bar.update()
            bar.set_postfix(train=f"{train_loss[0]:.4g}", val=f"{val_loss[0]:.4g}" if val_loss else "-")
            monitored = (val_loss or train_loss)[0]
            stop = False
            if monitored < best.loss:
                best.update(monitored, epoch, model if self.early_stopping else None)
            else:
                stop = self.early_stopping and epoch - best.epoch >= self.patience
            if saver is not None:
                saver.save(epoch, stop, model, optimizer, generator, curves, best)
            if stop:
                break
        bar.close()
        return curves, best

    def _epoch(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Data,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        partial: dict | None = None,
        on_buffer: Callable[[dict], None] | None = None,
    ) -> tuple[float, dict[str, float]]:
        """One pass over shuffled mini-batches; returns the sample-averaged total and terms.

        In-memory arrays are one buffer; a stream yields a buffer of a few chunks at a time, in a
        chunk order drawn from ``generator``. The rows of each buffer are shuffled with ``generator``
        (one gather per buffer; batches are views); rows short of a full batch at a buffer's end go
        on with the next buffer. After each buffer but the last, a stream calls ``on_buffer`` with
        the epoch's progress (chunk order, next buffer, leftover rows, loss sums), which ``partial``
        continues from (a checkpoint written mid-epoch).
        """
        device, size = self.torch_device, self.batch_size
        sums, n, tail, first = _Sums(), 0, None, 0
        if not isinstance(data, ChunkedDataset):
            buffers, chunks = iter((data,)), None
        elif partial is None:
            chunks = data.chunk_order(generator)
            buffers = data.buffers(chunks)
        else:
            chunks, first, n = partial["order"].numpy(), int(partial["buffer"]), int(partial["n"])
            tail, sums = partial["tail"] or None, _Sums.from_state(partial["sums"], device)
            buffers = data.buffers(chunks, first)
        for number, buffer in enumerate(buffers, start=first + 1):
            if tail is not None:
                buffer = {k: torch.cat([tail[k], v]) for k, v in buffer.items()}
            m = _length(buffer)
            order = torch.randperm(m, generator=generator)
            shuffled = {k: v[order] for k, v in buffer.items()}
            del buffer
            full = m - m % size
            for start in range(0, full, size):
                stop = start + size
                batch = {k: v[start:stop].to(device, non_blocking=True) for k, v in shuffled.items()}
                self._step(model, loss_fn, batch, optimizer, sums)
            n += full
            tail = {k: v[full:].clone() for k, v in shuffled.items()} if full < m else None
            del shuffled  # a stream's next buffer is read without this one
            if on_buffer is not None and isinstance(data, ChunkedDataset) and number < data.n_buffers:
                on_buffer({"order": torch.as_tensor(chunks), "buffer": number, "n": n, "tail": tail or {},
                           "sums": sums.state()})  # fmt: skip
        if tail is not None:
            self._step(model, loss_fn, {k: v.to(device) for k, v in tail.items()}, optimizer, sums)
            n += _length(tail)
        return sums.means(n)

    def _step(
        self, model: nn.Module, loss_fn: LossFn, batch: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer, sums: _Sums,
    ) -> None:  # fmt: skip
        """One gradient step on one mini-batch (clipped if asked); its losses go to ``sums``."""
        optimizer.zero_grad(set_to_none=True)
        total, terms = loss_fn(model, batch)
        total.backward()
        if self.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), self.clip_grad_norm)
        optimizer.step()
        sums.add(total, terms, len(next(iter(batch.values()))))

    def _prepare(
        self, model: nn.Module, tensors: Mapping | ChunkedDataset,
        validation: Mapping | ChunkedDataset | None, checkpoint: str | os.PathLike | None,
    ) -> tuple[torch.Generator, Data, Data | None, _Checkpoint | None]:
        """What a fit does before its epoch loop (also for a stacked member, assay.estimators.batched):
        the seeded generator, the arrays as tensors, the model on the device and the checkpoint, with
        the generator of an interrupted run restored (the split of the interrupted run: its seed may
        have been fresh)."""
        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        train = _as_data(tensors, "tensors")
        val = _as_data(validation, "validation") if validation is not None else None
        model.to(self.torch_device)
        saver = None
        if checkpoint is not None:
            settings = {k: v for k, v in self.to_dict().items() if k != "progress"}
            digests = [d.digest() if isinstance(d, ChunkedDataset) else d for d in (train, val)]
            saver = _Checkpoint(Path(checkpoint), fingerprint(settings, model, *digests))
            saver.resume = read_checkpoint(saver.path, saver.key)
            if saver.resume is not None:
                generator.set_state(saver.resume["initial_generator"])
            saver.initial_generator = generator.get_state()
        return generator, train, val, saver

    def _non_finite_error(
        self, exc: _NonFinite, inputs: Mapping[str, Data | None], saver: _Checkpoint | None
    ) -> TrainingError:
        """The error for a fit stopped by :class:`_NonFinite`: bad inputs if any, else divergence."""
        found = [
            text for name, data in inputs.items() if data is not None
            for text in [_describe(data, name)] if text
        ]  # fmt: skip
        if found:
            cause = (
                f"the inputs are not finite: {'; '.join(found)}. Drop or fix those events in the "
                f"training set (a lower lr will not help)"
            )
        else:
            clip = "" if self.clip_grad_norm is None else f" (now {self.clip_grad_norm:g})"
            cause = (
                f"the inputs are finite, so the optimisation diverged: lower lr (now "
                f"{self.lr[0]:g} -> {self.lr[1]:g}) or set clip_grad_norm{clip}"
            )
        kept = ""
        if saver is not None and not saver.disabled and saver.path.is_file():
            kept = f"; the checkpoint {saver.path} keeps the last finite epoch ({exc.epoch - 1})"
            if isinstance(inputs["training arrays"], ChunkedDataset):
                kept = kept[:-1] + f" or a finite part of epoch {exc.epoch})"
        return TrainingError(f"{exc.what} in epoch {exc.epoch}{exc.detail}: {cause}{kept}")


class _NonFinite(Exception):
    """Raised in the epoch loop when the loss or the weights are not finite; :meth:`Trainer.fit`
    turns it into a :class:`TrainingError` naming the likely cause."""

    def __init__(self, what: str, epoch: int, detail: str = "") -> None:
        super().__init__(what)
        self.what, self.epoch, self.detail = what, epoch, detail


def _check_finite(
    model: nn.Module,
    train_loss: tuple[float, dict[str, float]],
    val_loss: tuple[float, dict[str, float]] | None,
    epoch: int,
) -> None:
    """Raise :class:`_NonFinite` if an epoch's losses or the model's weights are NaN or infinite."""
    if not math.isfinite(train_loss[0]):
        raise _NonFinite(f"training loss is {train_loss[0]}", epoch, f" (terms {train_loss[1]})")
    if val_loss is not None and not math.isfinite(val_loss[0]):
        raise _NonFinite(f"validation loss is {val_loss[0]}", epoch, f" (terms {val_loss[1]})")
    params = [p for p in model.parameters() if p.is_floating_point()]
    if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
        bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
        raise _NonFinite(f"weights {bad} are not finite", epoch)


def _finite(model: nn.Module, losses: torch.Tensor) -> bool:
    """Whether the per-step losses so far and the model's floating weights are all finite."""
    params = [p for p in model.parameters() if p.is_floating_point()]
    finite = [torch.isfinite(losses).all(), *(torch.isfinite(p).all() for p in params)]
    return bool(torch.stack([f.cpu() for f in finite]).all())


def describe_non_finite(data: Mapping[str, torch.Tensor | np.ndarray], name: str = "arrays") -> str | None:
    """Say which floating arrays of ``data`` hold NaN or ±inf, how many, and the first bad row.

    Args:
        data: arrays with rows first, e.g. ``{"x": (n_events, n_obs), "weights": (n_events,)}``.
        name: what ``data`` is, for the message ("training arrays").

    Returns:
        One sentence per bad array joined by "; ", or None if every floating value is finite.

    Example:
        >>> x = np.array([[1.0, 2.0], [np.nan, 3.0]])
        >>> describe_non_finite({"x": x, "y": np.ones(2)}, "training arrays")
        "'x' of the training arrays: 1 NaN, 0 inf in 1 of 2 rows, first row 1 (column 0)"
    """
    found = []
    for key, value in data.items():
        t = torch.as_tensor(value)
        if not t.is_floating_point() or t.numel() == 0:
            continue
        finite = torch.isfinite(t)
        if bool(finite.all()):
            continue
        bad_rows = (~finite).reshape(len(t), -1).any(dim=1)
        first = int(bad_rows.nonzero()[0, 0])
        where = f"first row {first}"
        if t.ndim > 1:
            column = int((~finite[first]).reshape(-1).nonzero()[0, 0])
            where += f" (column {column})"
        n_nan = int(torch.isnan(t).sum())
        n_inf = int(torch.isinf(t).sum())
        rows = f"{int(bad_rows.sum())} of {len(t)} rows"
        found.append(f"{key!r} of the {name}: {n_nan} NaN, {n_inf} inf in {rows}, {where}")
    return "; ".join(found) or None


@dataclass
class _Checkpoint:
    """Where a fit keeps its per-epoch state, its fingerprint, and the state it resumes from."""

    path: Path
    key: str
    resume: dict | None = None
    initial_generator: torch.Tensor | None = None
    disabled: bool = False  # set when the file cannot be written

    def save(
        self,
        epoch: int,
        stopped: bool,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        curves: _Curves,
        best: _Best,
        *,
        partial: dict | None = None,
    ) -> None:
        """Write the state after ``epoch`` (the last finished one), or within the next one with
        ``partial`` (a streamed epoch's progress, :meth:`Trainer._epoch`)."""
        if self.disabled:
            return
        state = {
            "fingerprint": self.key, "epoch": epoch, "stopped": stopped,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(), "initial_generator": self.initial_generator,
            "curves": asdict(curves), "best": {"loss": best.loss, "epoch": best.epoch, "state": best.state},
            **({"partial": partial} if partial is not None else {}),
        }  # fmt: skip
        try:
            write_checkpoint(self.path, state)
        except OSError as exc:  # e.g. a cluster worker without the run folder: train on, unresumable
            if disk_full(exc):  # but not for hours onto a full disk, to fail when the model is saved
                raise
            logger.warning("%s: cannot write the training checkpoint (%s); going on without", self.path, exc)
            self.disabled = True

    def restore(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator
    ) -> tuple[_Curves, _Best, int, bool]:
        """Load the saved state into the fit; returns (curves, best, first epoch to run, stopped)."""
        state = self.resume
        assert state is not None
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        best = _Best(float(state["best"]["loss"]), int(state["best"]["epoch"]), state["best"]["state"])
        if state.get("partial") is not None:
            logger.info("%s: resuming in epoch %d after buffer %d", self.path, state["epoch"] + 1,
                        state["partial"]["buffer"])  # fmt: skip
        else:
            logger.info("%s: resuming after epoch %d", self.path, state["epoch"])
        return _Curves(**state["curves"]), best, int(state["epoch"]) + 1, bool(state["stopped"])


class _Sums:
    """Sample-weighted sums of the loss and its terms, kept on the device (one sync per epoch).

    Each step only appends its detached scalars; the weighted sums are formed once in :meth:`means`.
    """

    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []  # per step: (1 + n_terms,) = total, terms
        self.sizes: list[int] = []
        self.names: tuple[str, ...] = ()

    @classmethod
    def from_state(cls, state: Mapping, device: torch.device) -> _Sums:
        """The sums of :meth:`state` (a checkpoint written mid-epoch), on ``device``."""
        sums = cls()
        sums.values = list(state["values"].to(device))
        sums.sizes = [int(v) for v in state["sizes"]]
        sums.names = tuple(state["names"])
        return sums

    def state(self) -> dict:
        """The per-step records as tensors and names (for a checkpoint)."""
        values = torch.stack(self.values).cpu() if self.values else torch.zeros(0)
        return {"values": values, "sizes": torch.tensor(self.sizes), "names": list(self.names)}

    def add(self, total: torch.Tensor, terms: Mapping[str, torch.Tensor], n: int) -> None:
        self.names = tuple(terms)
        self.values.append(torch.stack([total.detach(), *(v.detach() for v in terms.values())]))
        self.sizes.append(n)

    def means(self, n: int) -> tuple[float, dict[str, float]]:
        if not self.values:
            return 0.0, {}
        sizes = torch.tensor(self.sizes, dtype=torch.float64, device=self.values[0].device)
        sums = (sizes @ torch.stack(self.values).double()).tolist()  # float64: 10⁸ samples stay exact
        return sums[0] / n, {k: v / n for k, v in zip(self.names, sums[1:])}


def _as_tensors(data: Mapping[str, torch.Tensor | np.ndarray], name: str) -> dict[str, torch.Tensor]:
    """Tensors on the CPU, floating ones as float32, all with the same length."""
    out = {}
    for key, value in data.items():
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            value = value.copy()  # torch cannot share read-only memory (it warns)
        t = torch.as_tensor(value)
        out[key] = t.float() if t.is_floating_point() else t
    lengths = {k: len(v) for k, v in out.items()}
    if not out or len(set(lengths.values())) != 1 or 0 in lengths.values():
        raise ValueError(f"{name}: expected non-empty arrays of equal length, got lengths {lengths}")
    return out


def _as_data(data: Mapping | ChunkedDataset, name: str) -> Data:
    """In-memory arrays as :func:`_as_tensors`; a stream of one chunk read whole (it trains exactly
    like the same arrays in memory); a longer stream as it is."""
    if not isinstance(data, ChunkedDataset):
        return _as_tensors(data, name)
    return data.read_all() if len(data.chunks) == 1 else data


def _describe(data: Data, name: str) -> str | None:
    """:func:`describe_non_finite` of arrays or of a stream (its first bad chunk)."""
    if isinstance(data, ChunkedDataset):
        return data.describe_non_finite(name)
    return describe_non_finite(data, name)


def _length(data: Mapping[str, torch.Tensor]) -> int:
    return len(next(iter(data.values())))


def _split(data: Data, fraction: float, generator: torch.Generator) -> tuple[Data, Data]:
    """Random (train, validation) split holding out ``fraction`` of the rows (at least one each);
    a stream holds out whole chunks (:meth:`~assay.streaming.ChunkedDataset.split`)."""
    if isinstance(data, ChunkedDataset):
        return data.split(fraction, generator)
    n = _length(data)
    n_val = min(max(1, round(fraction * n)), n - 1)
    if n_val < 1:
        raise ValueError(f"cannot hold out a validation fraction of {fraction} from {n} samples")
    perm = torch.randperm(n, generator=generator)
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return {k: v[train_idx] for k, v in data.items()}, {k: v[val_idx] for k, v in data.items()}


def _evaluate(
    model: nn.Module, loss_fn: LossFn, data: Data, device: torch.device
) -> tuple[float, dict[str, float]]:
    """Sample-averaged loss and terms over ``data`` (a stream chunk by chunk) without building a
    graph for the weights."""
    model.eval()
    parts = data.parts() if isinstance(data, ChunkedDataset) else (data,)
    sums, n = _Sums(), 0
    with torch.no_grad():
        for part in parts:
            m = _length(part)
            for start in range(0, m, _EVAL_BATCH):
                stop = start + _EVAL_BATCH
                batch = {k: v[start:stop].to(device, non_blocking=True) for k, v in part.items()}
                total, terms = loss_fn(model, batch)
                sums.add(total, terms, len(next(iter(batch.values()))))
            n += m
    return sums.means(n)
