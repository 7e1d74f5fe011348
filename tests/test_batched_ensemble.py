"""Ensemble members trained as one stacked network (assay.estimators.batched) equal members trained alone.

"Equal" is up to float32 rounding, not bit for bit: the stacked network multiplies with ``bmm``
where a single member uses ``mm``/``addmm`` (another summation order), its forward and backward pass
are written out (StackedRatioPass: the scores by reverse mode, torch.tanh instead of the module's
2σ(2z) − 1, the gradients summed in another order than autograd's), and with scores at θ0 alone each
member's events with y ≠ 1 are moved to the front of its batch (the loss is a sum over them). The
Adam update is the same fused kernel. Each step differs by ~1 ulp; with the large learning rate used
here (0.1, so that members stop early at different epochs) training amplifies that to weights within
1.1e-4 and losses within 3.5e-5 after 8 epochs (measured), hence the tolerance 2e-4. Early stopping,
clipping and the validation split are on, so each member's stopping epoch and best epoch are
compared exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from assay.estimators import ALICE, ALICES, CASCAL, RASCAL, SALLY, Ensemble
from assay.estimators import batched as batched_module
from assay.estimators import train as train_module
from assay.estimators.nets import (
    ACTIVATION_DERIVATIVES,
    ACTIVATION_SECOND_DERIVATIVES,
    ACTIVATIONS,
    make_activation,
)
from assay.training_set import TrainingSet

torch.set_num_threads(1)  # 2 shared cores

SETTINGS = dict(
    hidden=(16, 16), epochs=8, batch_size=64, lr=(1e-1, 1e-2), patience=1, clip_grad_norm=1.0,
    progress=False,
)  # fmt: skip
TOLERANCE = dict(rtol=2e-4, atol=2e-4)  # float32 rounding, grown by training (module docstring)


def ratio_set(n: int, seed: int, *, doubly: bool = False) -> TrainingSet:
    """A random 2-parameter ratio set with learnable structure (log r depends on x and θ0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    theta0 = rng.normal(0, 0.5, (n, 2))
    theta1 = rng.normal(0, 0.5, (n, 2)) if doubly else np.zeros((n, 2))
    log_r = (theta0 - theta1) @ np.array([1.0, -0.5]) * x[:, 0] + 0.1 * rng.normal(size=n)
    return TrainingSet(
        x=x, observables=("a", "b", "c"), parameters=("p", "q"), kind="ratio", theta0=theta0,
        theta1=theta1, y=rng.integers(0, 2, n).astype(float), log_r=log_r,
        t0=np.stack([x[:, 0], -0.5 * x[:, 0]], 1), t1=-np.stack([x[:, 0], -0.5 * x[:, 0]], 1),
    )  # fmt: skip


def weights(est) -> list[torch.Tensor]:
    return [p.detach().clone() for p in est.net_.parameters()]


def assert_same_members(a: Ensemble, b: Ensemble, *, exact: bool = False) -> None:
    tolerance = dict(rtol=0, atol=0) if exact else TOLERANCE
    for ma, mb in zip(a.members_, b.members_):
        assert ma.history_.n_epochs == mb.history_.n_epochs
        assert ma.history_.best_epoch == mb.history_.best_epoch
        np.testing.assert_allclose(ma.history_.train_loss, mb.history_.train_loss, **tolerance)
        np.testing.assert_allclose(ma.history_.val_loss, mb.history_.val_loss, **tolerance)
        for wa, wb in zip(weights(ma), weights(mb)):
            torch.testing.assert_close(wa, wb, **tolerance)


@pytest.fixture(scope="module")
def data() -> TrainingSet:
    return ratio_set(1200, 0)


@pytest.fixture(scope="module")
def one_by_one(data) -> Ensemble:
    return Ensemble.from_estimator(ALICES(**SETTINGS), 4).fit(data, n_workers=1, seed=5)


def test_stacked_members_equal_members_trained_alone(data, one_by_one):
    stacked = Ensemble.from_estimator(ALICES(**SETTINGS), 4).fit(data, n_workers=1, seed=5, batched=True)
    assert_same_members(stacked, one_by_one)
    epochs = [m.history_.n_epochs for m in stacked.members_]
    assert len(set(epochs)) > 1 and min(epochs) < SETTINGS["epochs"], epochs  # members stop on their own
    # the members differ (own seeds, own bootstrap weights), and the stacked fit did train them
    assert not torch.equal(weights(stacked.members_[0])[0], weights(stacked.members_[1])[0])
    assert all(m.history_.train_loss[-1] < m.history_.train_loss[0] for m in stacked.members_)


def stacked_loss_and_grads(members, nets, arrays):
    """The stacked loss of ``members`` at their nets' weights: total, terms and the gradients it wrote."""
    stack_loss = members[0]._stacked_loss(nets[0])
    names = [name for name, _ in nets[0].named_parameters()]
    params = {name: torch.stack([dict(n.named_parameters())[name].detach() for n in nets]) for name in names}
    grads = {name: torch.full_like(p, float("nan")) for name, p in params.items()}  # must be overwritten
    buffers = {name: torch.stack([dict(n.named_buffers())[name] for n in nets]) for name, _ in
               nets[0].named_buffers()}  # fmt: skip
    batch = {k: v.expand(len(nets), *v.shape) for k, v in arrays.items()}
    total, terms = stack_loss(params, grads, buffers, batch)
    return total, terms, grads


@pytest.mark.parametrize(
    ("cls", "doubly", "hidden", "activation"),
    [
        (ALICES, False, (16, 16), "tanh"),  # seed 000's case: scores at θ0 only
        (ALICES, True, (16, 16), "tanh"),  # scores at θ0 and θ1
        (RASCAL, True, (8, 6, 5), "tanh"),  # three hidden layers of different widths
        (CASCAL, False, (16,), "sigmoid"),
        *[(ALICES, True, (7, 5), name) for name in ("relu", "softplus", "silu", "elu", "gelu", "leaky_relu")],
        (ALICE, False, (16, 16), "tanh"),  # no score term
        (ALICES, True, (), "tanh"),  # a linear model: t̂ = W_θ / σ_θ
    ],
)
def test_stacked_loss_and_gradients_equal_autograd_of_the_single_loss(cls, doubly, hidden, activation):
    """The hand-written stacked pass (assay.estimators.stacked_ratio.StackedRatioPass) gives each member
    the loss and the weight gradient that autograd gives for its own loss (double backward through the
    scores included), for every activation (φ' and φ'' written out) and depth."""
    data = ratio_set(256, 1, doubly=doubly)
    members = [cls(**{**SETTINGS, "hidden": hidden, "activation": activation}, seed=s) for s in range(3)]
    prepared = [m._setup(data, None) for m in members]
    nets = [net for net, _, _ in prepared]
    arrays = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in prepared[0][1].items()}
    total, terms, grads = stacked_loss_and_grads(members, nets, arrays)
    assert set(terms) == {*members[0]._loss(nets[0], arrays)[1]}
    assert ("score_mse_1" in terms) == (doubly and cls is not ALICE)
    for i, (member, net) in enumerate(zip(members, nets)):
        single, single_terms = member._loss(net, arrays)
        torch.testing.assert_close(total[i], single, rtol=1e-5, atol=1e-6)
        for name, value in single_terms.items():
            torch.testing.assert_close(terms[name][i], value, rtol=1e-5, atol=1e-6)
        expected = torch.autograd.grad(single, list(net.parameters()))
        for (name, _), grad in zip(net.named_parameters(), expected):
            torch.testing.assert_close(grads[name][i], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_activation_derivatives_equal_autograd():
    """φ' and φ'' of every activation (:data:`ACTIVATION_DERIVATIVES`, :data:`ACTIVATION_SECOND_DERIVATIVES`)
    equal autograd's first and second derivative of the layer itself."""
    z = torch.linspace(-4, 4, 81, dtype=torch.float64).requires_grad_()
    z = z[z.detach().abs() > 1e-3].detach().requires_grad_()  # relu-like kinks at 0
    for name in ACTIVATIONS:
        h = make_activation(name)(z)
        first = torch.autograd.grad(h.sum(), z, create_graph=True)[0]
        second = torch.autograd.grad(first.sum(), z)[0] if first.requires_grad else torch.zeros_like(z)
        d = ACTIVATION_DERIVATIVES[name](z.detach(), h.detach())
        torch.testing.assert_close(d, first.detach(), msg=name)
        torch.testing.assert_close(
            ACTIVATION_SECOND_DERIVATIVES[name](z.detach(), h.detach(), d), second, msg=name
        )


class Interrupt(Exception):
    pass


def test_stacked_fit_resumes_every_member(data, tmp_path, monkeypatch):
    """Interrupted inside a stacked fit, rerun: each member resumes from its own checkpoint."""
    proto = ALICES(**SETTINGS)
    reference = Ensemble.from_estimator(proto, 4).fit(data, n_workers=1, seed=5, batched=True)
    folder = tmp_path / "members"
    original = batched_module._Member.finish_epoch
    calls = {"n": 0}

    def finish_epoch(self, stack):
        if calls["n"] == 10:  # 2 epochs of 4 members, then half of the third
            raise Interrupt
        calls["n"] += 1
        return original(self, stack)

    with monkeypatch.context() as m:
        m.setattr(batched_module._Member, "finish_epoch", finish_epoch)
        with pytest.raises(Interrupt):
            Ensemble.from_estimator(proto, 4).fit(data, n_workers=1, seed=5, batched=True, checkpoints=folder)
    saved = sorted(p.name for p in folder.iterdir())
    assert saved == ["member_0.pt", "member_1.pt", "member_2.pt", "member_3.pt"]
    # two members finished epoch 3 before the interruption, two did not: they resume at different epochs
    epochs = [int(torch.load(folder / name, weights_only=True)["epoch"]) for name in saved]
    assert epochs == [2, 2, 1, 1]
    stacked = dict(n_workers=1, seed=5, batched=True, checkpoints=folder)
    resumed = Ensemble.from_estimator(proto, 4).fit(data, **stacked)
    assert_same_members(resumed, reference)
    assert list(folder.iterdir()) == []  # every checkpoint deleted at the end


def test_checkpoints_of_members_trained_alone_resume_stacked(data, one_by_one, tmp_path, monkeypatch):
    """A one-by-one fit interrupted (member 0 done, member 1 in its 3rd epoch) resumes as a stacked fit."""
    proto = ALICES(**SETTINGS)
    folder = tmp_path / "members"
    original = train_module.Trainer._epoch
    calls = {"n": 0}

    def epoch(self, *args, **kwargs):
        if calls["n"] == one_by_one.members_[0].history_.n_epochs + 2:
            raise Interrupt
        calls["n"] += 1
        return original(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(train_module.Trainer, "_epoch", epoch)
        with pytest.raises(Interrupt):
            Ensemble.from_estimator(proto, 4).fit(data, n_workers=1, seed=5, checkpoints=folder)
    assert sorted(p.name for p in folder.iterdir()) == ["member_1.pt"]
    stacked = dict(n_workers=1, seed=5, batched=True, checkpoints=folder)
    resumed = Ensemble.from_estimator(proto, 4).fit(data, **stacked)
    assert_same_members(resumed, one_by_one)


def test_members_that_cannot_stack_train_one_by_one():
    """SALLY has no stacked loss: batched=True trains its members one by one, the same as n_workers=1."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 2))
    local = TrainingSet(x=x, observables=("a", "b"), parameters=("c",), kind="local_score", t0=x[:, :1] ** 2)
    settings = dict(hidden=(8,), epochs=2, batch_size=64, progress=False)
    serial = Ensemble.from_estimator(SALLY(**settings), 2).fit(local, n_workers=1, seed=1)
    batched = Ensemble.from_estimator(SALLY(**settings), 2).fit(local, n_workers=1, seed=1, batched=True)
    assert_same_members(batched, serial, exact=True)


def test_groups_on_dask_workers_equal_one_stacked_group(data, one_by_one):
    """batched=True with a client: one stacked group per worker (here 2 groups of 2), same members."""
    from dask.distributed import Client, LocalCluster

    options = dict(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    with LocalCluster(**options) as cluster, Client(cluster) as client:
        proto = ALICES(**SETTINGS)
        grouped = Ensemble.from_estimator(proto, 4).fit(data, client=client, seed=5, batched=True)
    assert len(set(grouped.fit_seconds_)) == 2  # each member gets its group's time / group size
    assert_same_members(grouped, one_by_one)


def test_groups_on_threads_equal_one_stacked_group(data):
    """fit_estimators(n_groups=2): two stacked groups on threads of this process give the members of
    one stacked group up to float rounding (a group's score rows are as many as its member with the
    most y != 1 events needs, so the matrix shapes and their summation order depend on the group);
    more groups than members is one member per group."""
    seeds = [11, 12, 13]

    def fitted(n_groups: int) -> list:
        estimators = [ALICES(**SETTINGS, seed=s) for s in seeds]
        batched_module.fit_estimators(estimators, [data] * 3, [None] * 3, [None] * 3, n_groups=n_groups)
        return estimators

    one, two, many = fitted(1), fitted(2), fitted(5)
    for a, b, c in zip(one, two, many):
        assert a.history_.n_epochs == b.history_.n_epochs == c.history_.n_epochs
        assert a.history_.best_epoch == b.history_.best_epoch == c.history_.best_epoch
        np.testing.assert_allclose(a.history_.val_loss, b.history_.val_loss, **TOLERANCE)
        np.testing.assert_allclose(a.history_.val_loss, c.history_.val_loss, **TOLERANCE)
        for wa, wb, wc in zip(weights(a), weights(b), weights(c)):
            torch.testing.assert_close(wa, wb, **TOLERANCE)
            torch.testing.assert_close(wa, wc, **TOLERANCE)
    with pytest.raises(ValueError, match="n_groups: expected an integer >= 1, got 0"):
        batched_module.fit_estimators([ALICES(**SETTINGS)], [data], [None], [None], n_groups=0)


def test_a_non_finite_stacked_loss_stops_with_the_cause_named(data, monkeypatch):
    """A stacked member whose epoch loss is not finite stops with the single trainer's TrainingError
    naming the cause: these inputs are finite, so "diverged" (the loss check is forced to fail: an
    Adam step is bounded by lr, so a real divergence of this small net is slow to provoke)."""
    import math
    import types

    from assay.exceptions import TrainingError

    never = types.SimpleNamespace(**{n: getattr(math, n) for n in dir(math) if not n.startswith("_")})
    never.isfinite = lambda value: False
    monkeypatch.setattr(batched_module, "math", never)
    diverged = r"stacked member \d+ is .* in epoch 0 .*optimisation diverged: lower lr"
    with pytest.raises(TrainingError, match=diverged):
        Ensemble.from_estimator(ALICES(**SETTINGS), 2).fit(data, n_workers=1, batched=True, seed=5)
