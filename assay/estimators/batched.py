"""Members of an ensemble trained as one stacked network (issue 21).

At seed 000's batch size of 128, one member's step is mostly fixed per-operation cost: each
matrix product of a [100, 100] network is too small to keep a core busy. :func:`fit_stacked`
trains M members of the same architecture as one network whose weights carry a leading member
axis: every layer is one ``bmm`` over the members, the estimator's stacked loss
(:data:`StackedLoss`, for the likelihood-ratio family
:class:`~assay.estimators.stacked_ratio.StackedRatioPass`: forward and backward pass written out)
writes every member's gradient into one flat ``(M, n_weights)`` buffer, and one fused AMSGrad/Adam
update runs over the flat weights. Each member keeps everything it has when trained alone
(:class:`~assay.estimators.train.Trainer`): its own seeded generator for the validation split
and the shuffling (so it sees the same mini-batches in the same order), its learning-rate
schedule, early stopping (a member that stops is dropped from the stack; the others go on),
gradient clipping of its own norm, and its checkpoint file, written in the single trainer's
format (a member resumes from it whether it was trained stacked or alone).

The result per member equals training it alone up to float rounding: the products are ``bmm``
instead of ``mm`` and the gradient is summed in another order than autograd's
(tests/test_batched_ensemble.py states the tolerance and why). An estimator opts in through
``Estimator._stacked_loss`` (the likelihood-ratio family on a plain
:class:`~assay.estimators.ratio_models.RatioNet`); others train one after the other.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from assay.estimators.train import (
    OPTIMIZERS,
    History,
    LossFn,
    Trainer,
    _Best,
    _Checkpoint,
    _Curves,
    _evaluate,
    _length,
    _split,
    describe_non_finite,
    keep_freed_memory,
    lr_schedule,
)
from assay.exceptions import TrainingError

if TYPE_CHECKING:
    from assay.estimators.base import Estimator
    from assay.training_set import TrainingSet

__all__ = ["STACKED_OPTIMIZERS", "StackedLoss", "fit_estimators", "fit_stacked"]

logger = logging.getLogger(__name__)

StackedLoss = Callable[
    [dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]],
    tuple[torch.Tensor, dict[str, torch.Tensor]],
]
"""``loss(params, grads, buffers, batch) -> (total (M,), terms {name: (M,)})``, a leading member axis
everywhere; it overwrites ``grads`` (views of the flat gradient, by parameter name) with ∂total/∂params."""

STACKED_OPTIMIZERS = ("adam", "amsgrad")
_BETAS, _EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as OPTIMIZERS uses them


def fit_estimators(
    estimators: Sequence[Estimator],
    train_sets: Sequence[TrainingSet],
    validation_sets: Sequence[TrainingSet | None],
    checkpoints: Sequence[str | os.PathLike | None],
    *,
    n_groups: int = 1,
) -> None:
    """Fit estimators of one kind in place: stacked (:func:`fit_stacked`) when they can be, else one by one.

    Args:
        estimators: unfitted estimators with the same hyper-parameters except ``seed``.
        train_sets: one per estimator, all of the same length for stacked training.
        validation_sets: one per estimator (or None: each holds out its ``validation_split``).
        checkpoints: one file (or None) per estimator, as for :meth:`Estimator.fit`.
        n_groups: split stackable estimators into this many contiguous stacked groups, trained at
            the same time on threads of this process (torch releases the GIL inside each operation,
            so with one torch thread each, the groups keep that many cores busy without worker
            processes or torch's own thread pool, which collapses on loaded shared cores). The
            members' results do not depend on the grouping (tests/test_batched_ensemble.py).

    Raises:
        ValueError: ``n_groups`` < 1.
    """
    if n_groups < 1:
        raise ValueError(f"n_groups: expected an integer >= 1, got {n_groups!r}")
    prepared = [est._setup(s, v) for est, s, v in zip(estimators, train_sets, validation_sets)]
    nets = [net for net, _, _ in prepared]
    stacked_loss = estimators[0]._stacked_loss(nets[0])
    if stacked_loss is None or not stackable(estimators, [len(s) for s in train_sets]):
        for est, (net, arrays, val), path, data in zip(estimators, prepared, checkpoints, train_sets):
            history = est.trainer.fit(net, est._loss, arrays, validation=val, checkpoint=path)
            est._set_trained(net, history, data)
        return

    def fit_group(rows: range) -> list[History]:
        pick = list(rows)
        return fit_stacked(
            [estimators[i].trainer for i in pick], [nets[i] for i in pick],
            [estimators[i]._loss for i in pick], stacked_loss, [prepared[i][1] for i in pick],
            [prepared[i][2] for i in pick], [checkpoints[i] for i in pick],
        )  # fmt: skip

    n_groups = min(n_groups, len(estimators))
    bounds = [round(k * len(estimators) / n_groups) for k in range(n_groups + 1)]
    groups = [range(a, b) for a, b in itertools.pairwise(bounds)]
    if len(groups) == 1:
        histories = fit_group(groups[0])
    else:
        with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="assay-stack") as pool:
            histories = [h for part in pool.map(fit_group, groups) for h in part]
    for est, net, history, data in zip(estimators, nets, histories, train_sets):
        est._set_trained(net, history, data)


def stackable(estimators: Sequence[Estimator], lengths: Sequence[int]) -> bool:
    """Whether these estimators can train as one stacked network: one class, the same settings
    apart from ``seed``, an optimizer in :data:`STACKED_OPTIMIZERS`, training sets of equal length."""
    first = estimators[0]
    same = all(
        type(est) is type(first) and _unseeded(est.get_params()) == _unseeded(first.get_params())
        for est in estimators
    )
    return same and first.trainer.optimizer in STACKED_OPTIMIZERS and len(set(lengths)) == 1


def _unseeded(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in ("seed", "progress")}


def fit_stacked(
    trainers: Sequence[Trainer],
    nets: Sequence[nn.Module],
    losses: Sequence[LossFn],
    stacked_loss: StackedLoss,
    tensors: Sequence[Mapping[str, torch.Tensor]],
    validations: Sequence[Mapping[str, torch.Tensor] | None],
    checkpoints: Sequence[str | os.PathLike | None],
) -> list[History]:
    """Train ``nets`` (one architecture) as one stacked network; what :meth:`Trainer.fit` does for each.

    Args:
        trainers: each member's trainer; the same settings apart from ``seed``.
        nets: the members' modules, trained in place (moved to the trainers' device).
        losses: each member's ``loss_fn`` (:data:`~assay.estimators.train.LossFn`), used for its
            validation loss, exactly as :meth:`Trainer.fit` computes it.
        stacked_loss: the members' training losses at once (:data:`StackedLoss`).
        tensors: each member's training arrays (same keys, same length).
        validations: each member's validation arrays, or None (hold out ``validation_split``).
        checkpoints: each member's checkpoint file or None (:meth:`Trainer.fit`'s ``checkpoint``).

    Returns:
        Each member's :class:`~assay.estimators.train.History`; the modules end with their best
        epoch's weights under early stopping, else with their last.

    Raises:
        ValueError: members with different settings, optimizers other than
            :data:`STACKED_OPTIMIZERS`, or training data of different lengths.
        TrainingError: a member's training loss became NaN or infinite (names the non-finite inputs, if any).
    """
    settings = {repr(_unseeded(t.to_dict())) for t in trainers}
    if len(settings) != 1 or trainers[0].optimizer not in STACKED_OPTIMIZERS:
        raise ValueError(
            f"stacked members need the same trainer settings apart from the seed and an optimizer in "
            f"{list(STACKED_OPTIMIZERS)}; got {[t.to_dict() for t in trainers]}"
        )
    keep_freed_memory()
    inputs = zip(trainers, nets, losses, tensors, validations, checkpoints)
    members = [_Member.start(i, *args) for i, args in enumerate(inputs)]
    lengths = [_length(m.train) for m in members]
    if len(set(lengths)) != 1:
        raise ValueError(f"stacked members need training data of one length, got {lengths}")
    trainer = trainers[0]
    active = [m for m in members if not m.done]
    first = min((m.epoch for m in active), default=trainer.epochs)
    bar = tqdm(total=trainer.epochs, initial=first, disable=not trainer.progress, unit="epoch", leave=False)
    while active:
        stack = _Stack(active, trainer, stacked_loss)
        while active:
            stack.epoch()
            finished = [m for m in active if m.finish_epoch(stack)]
            bar.update()
            if finished:  # go on with a smaller stack
                active = [m for m in active if not m.done]
                break
    bar.close()
    return [m.end() for m in members]


@dataclass
class _Member:
    """One member's state as :meth:`Trainer.fit` keeps it: split, generator, curves, best, checkpoint."""

    index: int
    trainer: Trainer
    net: nn.Module
    loss: LossFn
    train: dict[str, torch.Tensor]
    val: dict[str, torch.Tensor] | None
    generator: torch.Generator
    saver: _Checkpoint | None
    curves: _Curves = field(default_factory=_Curves)
    best: _Best = field(default_factory=_Best)
    epoch: int = 0  # the next epoch to run
    done: bool = False
    moments: dict[str, torch.Tensor] = field(default_factory=dict)  # flat Adam state, (n_weights,) each
    step: int = 0

    @classmethod
    def start(cls, index, trainer, net, loss, tensors, validation, checkpoint) -> _Member:
        """Everything :meth:`Trainer.fit` does before its epoch loop, including resuming."""
        generator, train, val, saver = trainer._prepare(net, tensors, validation, checkpoint)
        if val is None and trainer.validation_split > 0:
            train, val = _split(train, trainer.validation_split, generator)
        member = cls(index, trainer, net, loss, train, val, generator, saver)
        if saver is not None and saver.resume is not None:
            optimizer = member.torch_optimizer()
            member.curves, member.best, member.epoch, stopped = saver.restore(net, optimizer, generator)
            member.read_moments(optimizer)
            member.done = stopped or member.epoch >= trainer.epochs
        return member

    def torch_optimizer(self) -> torch.optim.Optimizer:
        """A torch optimizer over the member's parameters (the checkpoint's format)."""
        return OPTIMIZERS[self.trainer.optimizer](self.net.parameters(), self.trainer.lr[0])

    def read_moments(self, optimizer: torch.optim.Optimizer) -> None:
        """Take Adam's state from a torch optimizer (a resumed checkpoint) as flat vectors."""
        states = [optimizer.state.get(p, {}) for p in self.net.parameters()]
        if not all(states):
            return
        self.step = int(float(states[0]["step"]))
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if key in states[0]:
                self.moments[key] = torch.cat([s[key].reshape(-1) for s in states])

    def write_moments(self, optimizer: torch.optim.Optimizer) -> None:
        """Put the flat Adam state into a torch optimizer, per parameter (for the checkpoint)."""
        start = 0
        for p in self.net.parameters():
            n = p.numel()
            state = {"step": torch.tensor(float(self.step), device=p.device)}
            for key, flat in self.moments.items():
                state[key] = flat[start : start + n].view_as(p).clone()
            optimizer.state[p] = state
            start += n

    def finish_epoch(self, stack: _Stack) -> bool:
        """After one stacked epoch: validation, curves, early stopping, checkpoint. True if done."""
        row = stack.members.index(self)
        stack.copy_to(row, self)
        train_loss = stack.losses[row]
        if not math.isfinite(train_loss[0]):  # before the checkpoint: it keeps the last finite epoch
            found = [
                text for name, data in (("training arrays", self.train), ("validation arrays", self.val))
                if data is not None for text in [describe_non_finite(data, name)] if text
            ]  # fmt: skip
            cause = (
                f"the inputs are not finite: {'; '.join(found)} (a lower lr will not help)" if found else
                "the inputs are finite, so the optimisation diverged: lower lr or set clip_grad_norm"
            )  # fmt: skip
            raise TrainingError(
                f"training loss of stacked member {self.index} is {train_loss[0]} in epoch {self.epoch} "
                f"(terms {train_loss[1]}): {cause}"
            )
        device = self.trainer.torch_device
        val_loss = _evaluate(self.net, self.loss, self.val, device) if self.val is not None else None
        self.net.train()
        lr = float(lr_schedule(self.trainer.lr, self.trainer.epochs)[self.epoch])
        self.curves.add(train_loss, val_loss, lr)
        monitored = (val_loss or train_loss)[0]
        stop = False
        if monitored < self.best.loss:
            self.best.update(monitored, self.epoch, self.net if self.trainer.early_stopping else None)
        else:
            stop = self.trainer.early_stopping and self.epoch - self.best.epoch >= self.trainer.patience
        if self.saver is not None:
            optimizer = self.torch_optimizer()
            for group in optimizer.param_groups:
                group["lr"] = lr
            self.write_moments(optimizer)
            self.saver.save(self.epoch, stop, self.net, optimizer, self.generator, self.curves, self.best)
        self.epoch += 1
        self.done = stop or self.epoch >= self.trainer.epochs
        return self.done

    def end(self) -> History:
        """What :meth:`Trainer.fit` does after its loop: delete the checkpoint, keep the best weights."""
        if self.saver is not None and self.saver.path.is_file():
            self.saver.path.unlink()
        if self.trainer.early_stopping and self.best.state is not None:
            self.net.load_state_dict(self.best.state)
        best_epoch = self.best.epoch if self.trainer.early_stopping else len(self.curves.train) - 1
        self.net.eval()
        logger.info(
            "stacked member %d: trained %d epochs; kept epoch %d (train loss %.4g, validation loss %s)",
            self.index, len(self.curves.train), best_epoch, self.curves.train[best_epoch],
            f"{self.curves.val[best_epoch]:.4g}" if self.curves.val else "n/a",
        )  # fmt: skip
        return self.curves.history(best_epoch)


class _Stack:
    """The active members' weights, Adam moments and data, stacked along a leading member axis.

    Weights live in one flat ``(M, n_weights)`` tensor and the gradient in another; each named
    parameter and its gradient are views into them. The loss (:data:`StackedLoss`) writes the
    gradients in place, and one fused Adam update covers all weights of all members.
    """

    def __init__(self, members: list[_Member], trainer: Trainer, loss: StackedLoss):
        self.members, self.trainer, self.loss = members, trainer, loss
        device = trainer.torch_device
        net = members[0].net
        self.names = [name for name, _ in net.named_parameters()]
        shapes = [p.shape for _, p in net.named_parameters()]
        self.flat = torch.stack([nn.utils.parameters_to_vector(m.net.parameters()) for m in members]).detach()
        self.grad = torch.zeros_like(self.flat)
        self.params: dict[str, torch.Tensor] = {}  # views of the flat weights, (M, *shape) each
        self.grads: dict[str, torch.Tensor] = {}  # views of the flat gradient
        start = 0
        for name, shape in zip(self.names, shapes):
            n = math.prod(shape)
            self.params[name] = self.flat[:, start : start + n].view(len(members), *shape)
            self.grads[name] = self.grad[:, start : start + n].view(len(members), *shape)
            start += n
        self.buffers = {
            name: torch.stack([dict(m.net.named_buffers())[name] for m in members])
            for name, _ in net.named_buffers()
        }
        keys = ["exp_avg", "exp_avg_sq", *(["max_exp_avg_sq"] if trainer.optimizer == "amsgrad" else [])]
        self.moments = {
            k: torch.stack([m.moments.get(k, torch.zeros(self.flat.shape[1])) for m in members]).to(device)
            for k in keys
        }
        self.columns, self.data = _pack([m.train for m in members], device)
        self.losses: list[tuple[float, dict[str, float]]] = []

    def copy_to(self, row: int, member: _Member) -> None:
        """The member's weights and Adam state from the stack into its module and record."""
        with torch.no_grad():
            nn.utils.vector_to_parameters(self.flat[row], member.net.parameters())
        member.moments = {k: v[row].clone() for k, v in self.moments.items()}

    def epoch(self) -> None:
        """One pass of every member over its own shuffled mini-batches; sets :attr:`losses`."""
        n_members, n, _ = self.data.shape
        batch_size = self.trainer.batch_size
        device = self.data.device
        orders = torch.stack([torch.randperm(n, generator=m.generator) for m in self.members]).to(device)
        orders += torch.arange(n_members, device=device)[:, None] * n  # rows of the flat (M·n, C) data
        flat_data = self.data.view(n_members * n, -1)
        lrs = [float(lr_schedule(self.trainer.lr, self.trainer.epochs)[m.epoch]) for m in self.members]
        records, sizes = [], []
        for start in range(0, n, batch_size):
            rows = orders[:, start : start + batch_size]
            chunk = flat_data.index_select(0, rows.reshape(-1)).view(n_members, rows.shape[1], -1)
            batch = _unpack(chunk, self.columns)
            total, terms = self.loss(self.params, self.grads, self.buffers, batch)  # fills self.grad
            if self.trainer.clip_grad_norm is not None:
                norms = self.grad.norm(dim=1, keepdim=True)  # each member's global gradient norm
                self.grad.mul_((self.trainer.clip_grad_norm / (norms + 1e-6)).clamp_(max=1.0))
            self._adam(lrs)
            records.append(torch.stack([total.detach(), *(v.detach() for v in terms.values())]))
            sizes.append(rows.shape[1])
        weights = torch.tensor(sizes, dtype=torch.float64)  # float64 sums: 10⁸ samples stay exact
        sums = torch.einsum("s,stm->tm", weights, torch.stack(records).double())
        means = (sums / n).T.tolist()  # (M, 1 + n_terms)
        self.losses = [(row[0], dict(zip(terms, row[1:]))) for row in means]

    def _adam(self, lrs: list[float]) -> None:
        """One Adam / AMSGrad step on the flat weights: torch's fused kernel, the one
        ``torch.optim.Adam(fused=True)`` (the single trainer) runs, once for every member at the
        same step and learning rate (members resumed at different epochs: once per such group)."""
        for member in self.members:
            member.step += 1
        groups: dict[tuple[int, float], list[int]] = {}
        for row, (member, lr) in enumerate(zip(self.members, lrs)):
            groups.setdefault((member.step, lr), []).append(row)
        m = self.moments
        amsgrad = "max_exp_avg_sq" in m
        for (step, lr), rows in groups.items():
            whole = len(rows) == len(self.members)

            def pick(t: torch.Tensor, rows: list[int] = rows, whole: bool = whole) -> list[torch.Tensor]:
                return [t] if whole else [t[r] for r in rows]

            params = pick(self.flat)
            steps = [torch.tensor(float(step), device=self.flat.device) for _ in params]
            torch._fused_adam_(
                params, pick(self.grad), pick(m["exp_avg"]), pick(m["exp_avg_sq"]),
                pick(m["max_exp_avg_sq"]) if amsgrad else [], steps, lr=lr, beta1=_BETAS[0],
                beta2=_BETAS[1], weight_decay=0.0, eps=_EPS, amsgrad=amsgrad, maximize=False,
            )  # fmt: skip


def _pack(
    tensors: list[dict[str, torch.Tensor]], device: torch.device
) -> tuple[list[tuple[str, int, int, tuple[int, ...]]], torch.Tensor]:
    """Every member's arrays as columns of one float tensor ``(M, n, n_columns)`` on ``device``.

    Returns the column layout ``(key, first column, width, trailing shape)`` and the tensor.
    """
    columns, start = [], 0
    for key, t in tensors[0].items():
        if not t.is_floating_point():
            raise ValueError(f"stacked training needs floating arrays; {key!r} is {t.dtype}")
        width = math.prod(t.shape[1:])
        columns.append((key, start, width, tuple(t.shape[1:])))
        start += width
    data = torch.stack([torch.cat([d[k].reshape(len(d[k]), -1) for k, *_ in columns], 1) for d in tensors])
    return columns, data.to(device)


def _unpack(chunk: torch.Tensor, columns) -> dict[str, torch.Tensor]:
    """Views of one stacked mini-batch ``(M, batch, n_columns)`` by key, ``(M, batch, *shape)`` each."""
    out = {}
    for key, start, width, shape in columns:
        part = chunk[..., start : start + width]
        out[key] = part.squeeze(-1) if shape == () else part.reshape(*chunk.shape[:2], *shape)
    return out
