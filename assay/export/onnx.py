"""Trained networks → ONNX graphs that take raw observables (docs/exports.md).

The graph holds the whole evaluation path of the model: the input standardisation (the
:class:`~assay.estimators.nets.Standardizer` buffers), the network, and what assay computes on top
of it (g(x, θ) − g(x, θ_ref), the tangent-propagated score, the morphing sums, a flow's input
transforms and log-Jacobian). A C++ or Python user feeds float32 observables x in the units of the
training events (and θ for parametrised models) and gets what :meth:`score` / :meth:`log_ratio`
return in assay, to float32 precision:

- SALLY: ``x (n_events, n_obs)`` → ``score (n_events, n_params)``, t̂(x|θ_ref);
- CARL, ROLR, ALICE, ALICES, RASCAL, CASCAL (plain or morphing-aware): ``x``,
  ``theta (n_theta, n_params)``, ``theta_ref (n_params,)`` → ``log_r (n_theta, n_events)`` =
  log r̂(x|θ, θ_ref) and ``score (n_theta, n_events, n_params)`` = t̂(x|θ) (tangent propagation for
  the plain network; the morphing-aware model's autograd score written out analytically);
- NDE, SCANDAL: ``x``, ``theta``, ``theta_ref`` → ``log_p (n_theta, n_events)`` = log p̂(x|θ) and
  ``log_r``;
- an :class:`~assay.estimators.ensemble.Ensemble` of any of these: each output as the members' mean
  (what assay's ``Prediction.mean`` is), ``<name>_std`` (their standard deviation, ddof = 0:
  ``Prediction.std``) and ``<name>_members`` (every member's, stacked on a first axis).

BIT (trees in numba) and the search-oriented mixture model are refused with :class:`ExportError`.
The legacy TorchScript exporter is used (``torch.onnx.export(..., dynamo=False)``): the dynamo
exporter of torch ≥ 2.9 needs ``onnxscript``, which the ``export`` extra does not install. Every
export is checked with onnxruntime against the model before the file is written (:func:`compare_onnx`).
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from assay import __version__
from assay.estimators.base import Estimator
from assay.estimators.ensemble import Ensemble
from assay.estimators.flows import FlowEstimator
from assay.estimators.flows_models import ConditionalFlow
from assay.estimators.nets import Tanh
from assay.estimators.ratio import RatioEstimator
from assay.estimators.ratio_models import MORPHING_EPS, MorphingRatioNet, RatioNet
from assay.estimators.registry import load_estimator
from assay.estimators.score import SALLY, ScoreNet
from assay.export import ExportError, require
from assay.saving import atomic_path

__all__ = [
    "EXPORTABLE",
    "OPSET",
    "TOLERANCE",
    "compare_onnx",
    "expected_outputs",
    "onnx_metadata",
    "random_inputs",
    "to_onnx",
]

OPSET = 17
"""ONNX opset of the exported graphs (onnxruntime ≥ 1.12 runs it)."""

TOLERANCE = 1e-3
"""Largest deviation of the graph from the model that :func:`to_onnx` accepts, relative to the
largest magnitude of each output (:func:`compare_onnx`). Typical deviations are 1e-7 to 1e-5 (both
evaluate in float32, onnxruntime summing in another order); a morphing-aware model near a zero of
its morphed density is ill-conditioned in float32 and differs there by up to ~3e-4 (as much as
assay's own float32 evaluation differs from float64). An export error (a missing standardisation,
a wrong sign) is of order 1."""

EXPORTABLE = ("sally", "carl", "rolr", "alice", "alices", "rascal", "cascal", "nde", "scandal")
"""The config method names whose models (and ensembles of them) export to ONNX."""

_SIGNATURE = {  # name → (shape, meaning); the braces are filled from the model
    "x": (
        ("n_events", "n_obs"),
        "raw observables {observables} (float32, in the units of the training events)",
    ),
    "theta": (("n_theta", "n_params"), "parameter points {parameters} (float32), one row per point"),
    "theta_ref": (("n_params",), "the reference point θ_ref of log r̂(x|θ, θ_ref) (float32)"),
    "score": (("n_theta", "n_events", "n_params"), "t̂(x|θ) = ∇θ log p̂(x|θ) at each row of theta"),
    "log_r": (("n_theta", "n_events"), "log r̂(x|θ, θ_ref) = log p̂(x|θ) − log p̂(x|θ_ref)"),
    "log_p": (("n_theta", "n_events"), "log p̂(x|θ), the estimated density of the raw x"),
    "sally_score": (
        ("n_events", "n_params"),
        "t̂(x|θ_ref), the estimated score at SALLY's θ_ref = {theta_ref}",
    ),
}
_DYNAMIC = ("n_events", "n_theta")


# ---- the graphs -------------------------------------------------------------------------------------


class _SigmoidTanh(nn.Module):
    """assay's tanh, 2 σ(2z) − 1 (:class:`~assay.estimators.nets.Tanh`), without its in-place path."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 2 * torch.sigmoid(2 * z) - 1


def _traceable(net: nn.Module) -> nn.Module:
    """A copy of ``net`` in eval mode whose :class:`Tanh` layers compute out of place."""
    net = copy.deepcopy(net).eval()
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Tanh):
                setattr(module, name, _SigmoidTanh())
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class _Graph(nn.Module):
    """Base of the graphs: input and output names in order; ``keys`` maps a name to its entry in
    :data:`_SIGNATURE` where they differ."""

    inputs: tuple[str, ...] = ("x", "theta", "theta_ref")
    outputs: tuple[str, ...] = ()
    keys: Mapping[str, str] = MappingProxyType({})
    n_members = 1


class _Score(_Graph):
    """SALLY: x → t̂(x|θ_ref)."""

    inputs = ("x",)
    outputs = ("score",)
    keys = MappingProxyType({"score": "sally_score"})

    def __init__(self, net: ScoreNet):
        super().__init__()
        self.net = _traceable(net)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.net(x),)


class _Ratio(_Graph):
    """A plain :class:`RatioNet`: log r̂ = g(x, θ) − g(x, θ_ref) and t̂(x|θ) by tangent propagation."""

    outputs = ("log_r", "score")

    def __init__(self, net: RatioNet):
        super().__init__()
        self.net = _traceable(net)

    def forward(
        self, x: torch.Tensor, theta: torch.Tensor, theta_ref: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        g, score = self.net.value_and_theta_grad(x, theta[:, None, :], slice(None))
        g_ref, _ = self.net.value_and_theta_grad(x, theta_ref[None, None, :], None)
        return g - g_ref, score


class _MorphingRatio(_Graph):
    """The morphing-aware model: log r̂ and its score, with the θ-derivative of the morphing weights
    c_k(θ) written out (assay takes it by autograd, which a graph cannot hold):

        ∇θ g = (∇c · f(x)) / (c · f(x)) − (∇c · ρ) / (c · ρ),

    each term 0 where its sum is clamped at :data:`~assay.estimators.ratio_models.MORPHING_EPS`.
    """

    outputs = ("log_r", "score")

    def __init__(self, net: MorphingRatioNet):
        super().__init__()
        self.net = _traceable(net)

    def forward(
        self, x: torch.Tensor, theta: torch.Tensor, theta_ref: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        densities = self.net.benchmark_densities(x)  # (m, B)
        rates = torch.nn.functional.softplus(self.net.rate_logits)  # (B,)
        c, dc = self.net.coefficients(theta), self._coefficient_gradients(theta)  # (k, B), (k, P, B)
        numerator, rate = c @ densities.T, c @ rates  # (k, m), (k,)
        eps = MORPHING_EPS
        g = torch.log(numerator.clamp_min(eps)) - torch.log(rate.clamp_min(eps))[:, None]
        c_ref = self.net.coefficients(theta_ref[None])
        g_ref = (
            torch.log((c_ref @ densities.T).clamp_min(eps))
            - torch.log((c_ref @ rates).clamp_min(eps))[:, None]
        )
        d_numerator = (dc @ densities.T).transpose(1, 2) / numerator[..., None]  # (k, m, P)
        d_rate = dc @ rates / rate[:, None]  # (k, P)
        score = torch.where(numerator[..., None] > eps, d_numerator, 0.0) - torch.where(
            rate[:, None, None] > eps, d_rate[:, None, :], 0.0
        )
        return g - g_ref, score

    def _coefficient_gradients(self, theta: torch.Tensor) -> torch.Tensor:
        """∂c_k/∂θ_a ``(k, n_params, n_benchmarks)`` of :meth:`MorphingRatioNet.coefficients`."""
        net = self.net
        roots = net.steps < 1  # θ_a enters as √θ_a (clamped at 0) there
        safe = torch.where(roots, theta, torch.ones_like(theta)).clamp_min(0)
        base = torch.where(roots, safe.sqrt(), theta)
        positive = torch.where(theta > 0, theta, torch.ones_like(theta))  # ∂√θ/∂θ, 0 where θ ≤ 0 is clamped
        d_base = torch.where(
            roots, torch.where(theta > 0, 0.5 / positive.sqrt(), 0.0), torch.ones_like(theta)
        )
        max_power = int(net.components.max()) if net.components.numel() else 0
        powers, slopes = [torch.ones_like(base)], [torch.zeros_like(base)]
        for n in range(1, max_power + 1):  # slope of b^n is n b^(n-1) ∂b/∂θ
            slopes.append(n * powers[-1] * d_base)
            powers.append(powers[-1] * base)
        table, d_table = torch.stack(powers, dim=-2), torch.stack(slopes, dim=-2)  # (k, max_power + 1, P)
        n_params = theta.shape[-1]
        factors = [table[..., net.components[:, a], a] for a in range(n_params)]  # each (k, n_components)
        rows = []
        for a in range(n_params):
            term = d_table[..., net.components[:, a], a]
            for b in range(n_params):
                if b != a:
                    term = term * factors[b]
            rows.append(term)
        return torch.stack(rows, dim=-2) @ net.inverse  # (k, P, B)


class _Flow(_Graph):
    """A conditional flow: log p̂(x|θ) for every (θ, event) pair and log r̂ against θ_ref."""

    outputs = ("log_p", "log_r")

    def __init__(self, net: ConditionalFlow):
        super().__init__()
        self.net = _traceable(net)

    def forward(
        self, x: torch.Tensor, theta: torch.Tensor, theta_ref: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        w, log_jac = self.net.encode(x)
        rows = torch.cat([theta, theta_ref[None]])  # (k + 1, P)
        k1, m = rows.shape[0], w.shape[0]
        table = self.net.log_prob_encoded(
            w[None].expand(k1, -1, -1).reshape(k1 * m, -1),
            log_jac[None].expand(k1, -1).reshape(-1),
            rows[:, None, :].expand(-1, m, -1).reshape(k1 * m, -1),
        ).reshape(k1, m)
        log_p = table[:-1]
        return log_p, log_p - table[-1:]


class _Members(_Graph):
    """An ensemble: every output of the members as mean, std (ddof = 0) and the stacked members."""

    def __init__(self, members: Sequence[_Graph]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.inputs, self.keys, self.n_members = members[0].inputs, members[0].keys, len(members)
        self.outputs = tuple(
            f"{name}{tail}" for name in members[0].outputs for tail in ("", "_std", "_members")
        )

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result: list[torch.Tensor] = []
        for parts in zip(*(member(*inputs) for member in self.members)):
            stacked = torch.stack(parts)
            mean = stacked.mean(0)
            result += [mean, ((stacked - mean) ** 2).mean(0).sqrt(), stacked]
        return tuple(result)


def _member_graph(est: Estimator) -> _Graph:
    net = est._fitted_net()
    if isinstance(est, SALLY):
        return _Score(net)
    if isinstance(est, RatioEstimator):
        return _MorphingRatio(net) if isinstance(net, MorphingRatioNet) else _Ratio(net)
    if isinstance(est, FlowEstimator):
        return _Flow(net)
    raise _refusal(est)


def _refusal(model: Any) -> ExportError:
    return ExportError(
        f"cannot export a {type(model).__name__} to ONNX: only the torch networks of the methods "
        f"{', '.join(EXPORTABLE)} (and ensembles of them) can be exported; BIT's trees and the "
        f"mixture model's per-process classifiers have no ONNX graph here"
    )


def _graph(model: Any) -> _Graph:
    if isinstance(model, Ensemble):
        return _Members([_member_graph(m) for m in model._fitted()])
    if isinstance(model, Estimator):
        return _member_graph(model)
    raise _refusal(model)


# ---- export -----------------------------------------------------------------------------------------


def _reference(model: Estimator | Ensemble) -> Estimator:
    return model._fitted()[0] if isinstance(model, Ensemble) else model


def _dummy_inputs(model: Estimator | Ensemble, names: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """Example inputs with different sizes on every dynamic axis (3 events, 2 θ points)."""
    est = _reference(model)
    arrays = {
        "x": torch.zeros(3, len(est.observables_)),
        "theta": torch.zeros(2, len(est.parameters_)),
        "theta_ref": torch.zeros(len(est.parameters_)),
    }
    return tuple(arrays[name] for name in names)


def _entry(graph: _Graph, name: str) -> tuple[list[str], str]:
    """(shape, meaning template) of an input or output of ``graph``, an ensemble's included."""
    base = name.removesuffix("_members").removesuffix("_std")
    shape, meaning = _SIGNATURE[graph.keys.get(base, base)]
    n = graph.n_members
    if name.endswith("_std"):
        return list(shape), f"standard deviation (ddof = 0) over the {n} members of: {meaning}"
    if name.endswith("_members"):
        return ["n_members", *shape], f"each member's {meaning}"
    if n > 1 and name in graph.outputs:
        return list(shape), f"mean over the {n} members of {meaning}"
    return list(shape), meaning


def _dynamic_axes(graph: _Graph) -> dict[str, dict[int, str]]:
    axes = {name: {i: d for i, d in enumerate(_entry(graph, name)[0]) if d in _DYNAMIC}
            for name in (*graph.inputs, *graph.outputs)}  # fmt: skip
    return {name: dims for name, dims in axes.items() if dims}


def _metadata(model: Estimator | Ensemble, graph: _Graph) -> dict[str, str]:
    """The metadata_props of the graph: who made it, from what, and every input and output."""
    est = _reference(model)
    theta_ref = getattr(est, "theta_ref_", None)  # SALLY's
    fill = {"observables": list(est.observables_), "parameters": list(est.parameters_),
            "theta_ref": None if theta_ref is None else np.asarray(theta_ref).tolist()}  # fmt: skip

    def describe(names: Sequence[str]) -> str:
        entries = {name: _entry(graph, name) for name in names}
        return json.dumps(
            {n: {"shape": shape, "meaning": m.format(**fill)} for n, (shape, m) in entries.items()}
        )

    return {
        "assay_version": __version__,
        "method": type(est).__name__.lower(),
        "n_members": str(graph.n_members),
        "observables": json.dumps(fill["observables"]),
        "parameters": json.dumps(fill["parameters"]),
        "theta_ref": json.dumps(fill["theta_ref"]),
        "standardization": "included: the graph applies (x − mean) / std (and θ's) itself; feed raw inputs",
        "dtype": "float32",
        "inputs": describe(graph.inputs),
        "outputs": describe(graph.outputs),
    }


def _export_bytes(graph: nn.Module, inputs: tuple[torch.Tensor, ...], opset: int) -> bytes:
    torch.onnx.register_custom_op_symbolic(
        "aten::asinh", lambda g, z: g.op("Asinh", z), 9
    )  # flows' soft clip
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
        torch.onnx.export(
            graph, inputs, buffer, dynamo=False, opset_version=opset,
            input_names=list(graph.inputs), output_names=list(graph.outputs),
            dynamic_axes=_dynamic_axes(graph),
        )  # fmt: skip
    return buffer.getvalue()


def _as_model(model: Any) -> Any:
    if isinstance(model, (str, os.PathLike)):
        return load_estimator(model)
    return model


def to_onnx(
    model: Estimator | Ensemble | str | os.PathLike,
    path: str | os.PathLike,
    *,
    opset: int = OPSET,
    verify: bool = True,
    n_verify: int = 1000,
    tolerance: float = TOLERANCE,
    seed: int = 0,
) -> Path:
    """Write ``model`` as one ONNX graph with its standardisation (module docstring), atomically.

    Args:
        model: a fitted estimator or ensemble, or the directory ``assay train`` saved it in
            (``OUTPUT/models/<name>/``).
        path: the ``.onnx`` file to write; missing parent folders are made.
        opset: the ONNX opset.
        verify: before writing, compare the graph (onnxruntime) with the model on ``n_verify``
            random events around the training data's mean (± 2 std per observable) and 3 θ points
            (:func:`compare_onnx`), and refuse a deviation above ``tolerance``.
        n_verify: events of that check.
        tolerance: the largest deviation accepted, relative to each output's largest magnitude.
        seed: seeds the check's random inputs.

    Returns:
        ``path``.

    Raises:
        ExportError: the model has no ONNX graph (BIT, mixture), the check failed, or the ``export``
            extra is missing.
        StoreError: ``model`` is a directory that holds no saved model.
        NotFittedError: an unfitted estimator.
    """
    onnx = require("onnx", "ONNX export")
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path}: is a directory; give the .onnx file to write")
    model = _as_model(model)
    graph = _graph(model)
    proto = onnx.load_model_from_string(_export_bytes(graph, _dummy_inputs(model, graph.inputs), opset))
    proto.producer_name, proto.producer_version = "assay", __version__
    proto.doc_string = f"assay {type(_reference(model)).__name__} (docs/exports.md)"
    for key, value in _metadata(model, graph).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if verify:
        inputs = random_inputs(model, n_verify, np.random.default_rng(seed))
        worst = compare_onnx(model, data, **inputs)
        bad = {name: dev for name, dev in worst.items() if not dev <= tolerance}
        if bad:
            raise ExportError(
                f"the ONNX graph of this {type(_reference(model)).__name__} deviates from the model on "
                f"{n_verify} random events: {bad} (relative to each output's largest magnitude, tolerance "
                f"{tolerance}); please report this with the model"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


# ---- reading and checking ---------------------------------------------------------------------------


def onnx_metadata(path: str | os.PathLike | bytes) -> dict[str, Any]:
    """The metadata an exported graph records (``metadata_props``), JSON values parsed.

    Returns:
        ``assay_version``, ``method``, ``n_members`` (int), ``observables``, ``parameters``,
        ``theta_ref`` (SALLY's, else None), ``inputs`` / ``outputs`` (name → ``shape``, ``meaning``), ...

    Raises:
        ExportError: the file cannot be read as ONNX.
    """
    onnx = require("onnx", "reading an ONNX graph")
    try:
        proto = onnx.load_model_from_string(path) if isinstance(path, bytes) else onnx.load(os.fspath(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ... here
        raise ExportError(f"{path}: cannot read it as an ONNX model ({type(exc).__name__}: {exc})") from exc
    props = {p.key: p.value for p in proto.metadata_props}
    for key in ("observables", "parameters", "theta_ref", "inputs", "outputs"):
        if key in props:
            props[key] = json.loads(props[key])
    if "n_members" in props:
        props["n_members"] = int(props["n_members"])
    return props


def random_inputs(
    model: Estimator | Ensemble, n_events: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Inputs for :func:`compare_onnx`: x uniform within ± 2 standard deviations of the training
    data's mean per observable ``(n_events, n_obs)`` (a flow's: within its modelled columns' bounds);
    for parametrised models 3 θ points and θ_ref within ± 2 std of the training θ (the morphing-aware
    model: within the span of its morphing benchmarks)."""
    est = _reference(model)
    net = est._fitted_net()
    n_obs, n_params = len(est.observables_), len(est.parameters_)
    if isinstance(net, ConditionalFlow):  # within the modelled columns' bounds, the others constant
        with torch.no_grad():
            w = torch.as_tensor(rng.uniform(-2, 2, (n_events, len(net.columns))), dtype=torch.float32)
            x = np.nan_to_num(est.columns_.complete(net.inputs.inverse(w).double().numpy(), n_obs))
    else:
        mean, std = net.x_scaler.mean.double().numpy(), net.x_scaler.std.double().numpy()
        x = mean + std * rng.uniform(-2, 2, (n_events, n_obs))
    if isinstance(est, SALLY):
        return {"x": x}
    if isinstance(net, MorphingRatioNet):  # within the span of the morphing benchmarks
        bench = np.asarray(est.morphing.benchmarks, dtype=float)
        points = rng.uniform(bench.min(axis=0), bench.max(axis=0), (4, n_params))
    else:
        scaler = net.theta_scaler
        points = scaler.mean.double().numpy() + scaler.std.double().numpy() * rng.uniform(
            -2, 2, (4, n_params)
        )
    return {"x": x, "theta": points[:3], "theta_ref": points[3]}


def compare_onnx(
    model: Estimator | Ensemble | str | os.PathLike,
    graph: str | os.PathLike | bytes,
    x: np.ndarray,
    theta: np.ndarray | None = None,
    theta_ref: np.ndarray | None = None,
) -> dict[str, float]:
    """Run an exported graph with onnxruntime and compare every output with the model's own prediction.

    Args:
        model: the fitted model (or its directory).
        graph: the ``.onnx`` file or its bytes.
        x: events ``(n_events, n_obs)``, raw observables.
        theta: ``(n_theta, n_params)``; needed for parametrised models.
        theta_ref: ``(n_params,)``; needed for parametrised models.

    Returns:
        output name → max |onnx − assay| / max(|assay|) (max(|assay|) floored at 1e-12).

    Raises:
        ExportError: onnxruntime is missing, or inputs a parametrised model needs are missing.
    """
    ort = require("onnxruntime", "checking an ONNX graph")
    model = _as_model(model)
    session = ort.InferenceSession(graph if isinstance(graph, bytes) else os.fspath(graph))
    names = [i.name for i in session.get_inputs()]
    given = {"x": x, "theta": theta, "theta_ref": theta_ref}
    missing = [name for name in names if given.get(name) is None]
    if missing:
        raise ExportError(f"compare_onnx: the graph takes {names}; pass {missing}")
    feed = {name: np.asarray(given[name], dtype=np.float32) for name in names}
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
    expected = expected_outputs(model, **{k: np.asarray(v, dtype=float) for k, v in feed.items()})
    return {name: _deviation(got[name], value) for name, value in expected.items() if name in got}


def _deviation(got: np.ndarray, expected: np.ndarray) -> float:
    if got.shape != expected.shape:
        return float("inf")
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-12)
    return float(np.abs(got.astype(float) - expected).max(initial=0.0) / scale)


def expected_outputs(
    model: Estimator | Ensemble,
    x: np.ndarray,
    theta: np.ndarray | None = None,
    theta_ref: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """What the exported graph should return, from assay's public predictions (``score``,
    ``log_ratio``, ``log_likelihood``) of ``model`` on the same inputs, named like its outputs."""
    members = model._fitted() if isinstance(model, Ensemble) else [model]
    per_member = [_member_outputs(m, x, theta, theta_ref) for m in members]
    if len(members) == 1:
        return per_member[0]
    out: dict[str, np.ndarray] = {}
    for name in per_member[0]:
        stacked = np.stack([p[name] for p in per_member])
        out |= {name: stacked.mean(0), f"{name}_std": stacked.std(0), f"{name}_members": stacked}
    return out


def _member_outputs(
    est: Estimator, x: np.ndarray, theta: np.ndarray | None, theta_ref: np.ndarray | None
) -> Mapping[str, np.ndarray]:
    if isinstance(est, SALLY):
        return {"score": est.score(x).mean}
    log_r = est.log_ratio(x, theta, theta_ref).mean
    if isinstance(est, FlowEstimator):
        return {"log_p": est.log_likelihood(x, theta).mean, "log_r": log_r}
    return {"log_r": log_r, "score": np.stack([est.score(x, point).mean for point in theta])}
