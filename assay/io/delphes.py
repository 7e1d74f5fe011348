"""Delphes ROOT output: the reconstructed objects of the WH → ℓν bb̄ analysis.

For each event with at least one charged lepton (electron or muon) and two b-tagged jets
(``Jet.BTag & 1``) this keeps the leading lepton (highest p_T) with its charge, the two leading
b-jets, the missing transverse momentum and the event weight. The file is read in steps with
``TTree.iterate`` and the selection is done with awkward arrays, without Python loops over events.

Branches are looked up under Delphes' names (``Jet.PT``) and, failing that, under the flat names
``uproot`` writes for jagged records (``Jet_PT``), so small test files written with uproot read the
same way as real Delphes output.

Example:
    >>> import tempfile, awkward as ak, uproot
    >>> path = tempfile.mkdtemp() + "/delphes.root"
    >>> branches = {"Electron": {"PT": [[40.0]], "Eta": [[0.0]], "Phi": [[0.0]], "Charge": [[-1]]},
    ...     "Muon": {"PT": [[]], "Eta": [[]], "Phi": [[]], "Charge": [[]]}, "MissingET": {"MET": [[30.0]],
    ...     "Phi": [[0.0]]}, "Jet": {"PT": [[90.0, 60.0]], "Eta": [[0.0, 0.0]], "Phi": [[0.0, 0.0]],
    ...     "Mass": [[0.0, 0.0]], "BTag": [[1, 1]]}}
    >>> data = {f"{c}.{k}": ak.Array(v) for c, d in branches.items() for k, v in d.items()}
    >>> with uproot.recreate(path) as f:
    ...     f.mktree("Delphes", {k: v.type for k, v in data.items()}).extend(data)
    >>> events = read_delphes(path)
    >>> events.lepton.round(6).tolist(), events.b2.tolist(), events.met_xy.tolist(), events.weight.tolist()
    ([[40.0, 40.0, 0.0, 0.0]], [[60.0, 60.0, 0.0, 0.0]], [[30.0, 0.0]], [1.0])
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assay.exceptions import StoreError

__all__ = ["BRANCHES", "DelphesEvents", "read_delphes"]

# Every branch read (the weight is optional); Delphes names, "Collection.Field".
BRANCHES = (
    *(f"{c}.{f}" for c in ("Electron", "Muon") for f in ("PT", "Eta", "Phi", "Charge")),
    *(f"Jet.{f}" for f in ("PT", "Eta", "Phi", "Mass", "BTag")),
    "MissingET.MET",
    "MissingET.Phi",
)
WEIGHT = "Event.Weight"


@dataclass(frozen=True, eq=False)
class DelphesEvents:
    """Selected reconstructed events; four-vectors are (E, px, py, pz) in GeV.

    Attributes:
        lepton: (n, 4) leading charged lepton (electron or muon with the highest p_T).
        charge: (n,) its charge, ±1.
        b1, b2: (n, 4) leading and subleading b-tagged jet (by p_T).
        met_xy: (n, 2) missing transverse momentum (x, y) in GeV.
        weight: (n,) ``Event.Weight`` as the generator set it, else 1/n_read (the file sums to 1).
        selected: (n_read,) bool, events with ≥1 lepton and ≥2 b-jets, in file order.
        n_read: number of events read from the file.
    """

    lepton: np.ndarray
    charge: np.ndarray
    b1: np.ndarray
    b2: np.ndarray
    met_xy: np.ndarray
    weight: np.ndarray
    selected: np.ndarray
    n_read: int


def read_delphes(
    path: str | os.PathLike,
    *,
    tree: str = "Delphes",
    step_size: str | int = "100 MB",
    lepton_mass: tuple[float, float] = (0.000511, 0.10566),
) -> DelphesEvents:
    """Read a Delphes ROOT file and select events with ≥1 lepton and ≥2 b-tagged jets.

    Args:
        path: the ROOT file.
        tree: name of the TTree.
        step_size: how much to read at a time (uproot's ``step_size``: entries or "100 MB").
        lepton_mass: (electron, muon) masses in GeV used to build the lepton four-vectors.

    Returns:
        The selected events.

    Raises:
        StoreError: missing file, tree or branch (the message names the file and the branch).
        ImportError: uproot/awkward are not installed.
    """
    ak, uproot = _import()
    path = Path(path)
    ttree = _open_tree(uproot, path, tree)
    names = {name: _branch_name(ttree, path, tree, name) for name in BRANCHES}
    weight_name = _branch_name(ttree, path, tree, WEIGHT, required=False)
    if weight_name is not None:
        names[WEIGHT] = weight_name
    parts, masks = [], []
    for arrays in ttree.iterate(filter_name=list(names.values()), step_size=step_size, library="ak"):
        part, mask = _select(ak, {key: arrays[name] for key, name in names.items()}, lepton_mass)
        parts.append(part)
        masks.append(mask)
    selected = np.concatenate(masks) if masks else np.zeros(0, bool)
    n_read = len(selected)
    fields = ("lepton", "charge", "b1", "b2", "met_xy", "weight")
    shapes = {"lepton": (0, 4), "b1": (0, 4), "b2": (0, 4), "met_xy": (0, 2)}
    out = {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(shapes.get(k, 0)) for k in fields}
    if weight_name is None:
        out["weight"] = np.full(int(selected.sum()), 1.0 / max(n_read, 1))
    return DelphesEvents(**out, selected=selected, n_read=n_read)


def _import():
    try:
        import awkward as ak
        import uproot
    except ImportError as exc:  # pragma: no cover - both are dependencies of assay
        raise ImportError(
            "reading Delphes files needs uproot and awkward: pip install uproot awkward"
        ) from exc
    return ak, uproot


def _open_tree(uproot, path: Path, tree: str):
    if not path.is_file():
        raise StoreError(f"Delphes file {path} does not exist")
    try:
        file = uproot.open(path)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"{path} is not a readable ROOT file ({first}); expected Delphes output") from exc
    try:
        ttree = file[tree]
    except KeyError as exc:
        raise StoreError(f"{path} has no tree {tree!r}; keys: {file.keys(cycle=False)}") from exc
    if not hasattr(ttree, "iterate") or not hasattr(ttree, "branches"):
        raise StoreError(f"{path}: {tree!r} is a {type(ttree).__name__}, expected a TTree")
    return ttree


def _branch_name(ttree, path: Path, tree: str, name: str, *, required: bool = True) -> str | None:
    """The file's name of a Delphes branch: ``Jet.PT`` (Delphes) or ``Jet_PT`` (flat, uproot-written)."""
    for candidate in (name, name.replace(".", "_")):
        try:
            return ttree[candidate].name
        except KeyError:
            continue
    if not required:
        return None
    raise StoreError(
        f"{path}: tree {tree!r} has no branch {name!r} (nor {name.replace('.', '_')!r}); "
        f"expected Delphes output with the {name.split('.')[0]} collection"
    )


def _four_vectors(obj) -> np.ndarray:
    """(E, px, py, pz) in GeV of one object per event (a record with pt, eta, phi, m), (n, 4)."""
    pt, eta, phi, mass = (np.asarray(obj[k], float) for k in ("pt", "eta", "phi", "m"))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.stack([np.sqrt(px**2 + py**2 + pz**2 + mass**2), px, py, pz], axis=1)


def _leading(ak, objects):
    """The objects of each event sorted by decreasing p_T (ties keep their order)."""
    return objects[ak.argsort(objects.pt, axis=1, ascending=False, stable=True)]


def _select(ak, a: dict, lepton_mass: tuple[float, float]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Leading lepton, two leading b-jets, MET and weight of the events of one step."""
    fields = {"pt": "PT", "eta": "Eta", "phi": "Phi", "q": "Charge"}
    leptons = [
        ak.zip({k: a[f"{c}.{f}"] for k, f in fields.items()} | {"m": ak.ones_like(a[f"{c}.PT"]) * m})
        for c, m in zip(("Electron", "Muon"), lepton_mass)
    ]
    leptons = _leading(ak, ak.concatenate(leptons, axis=1))  # electrons first: they win p_T ties
    jets = ak.zip(
        {k: a[f"Jet.{f}"] for k, f in (("pt", "PT"), ("eta", "Eta"), ("phi", "Phi"), ("m", "Mass"))}
    )
    bjets = _leading(ak, jets[(a["Jet.BTag"] & 1) != 0])
    mask = np.asarray(ak.to_numpy((ak.num(leptons, axis=1) >= 1) & (ak.num(bjets, axis=1) >= 2)), bool)
    lep, b1, b2 = (ak.to_numpy(x) for x in (leptons[mask][:, 0], bjets[mask][:, 0], bjets[mask][:, 1]))
    met, met_phi = (_per_event(ak, a[k])[mask] for k in ("MissingET.MET", "MissingET.Phi"))
    out = {
        "lepton": _four_vectors(lep),
        "charge": np.asarray(lep["q"], float),
        "b1": _four_vectors(b1),
        "b2": _four_vectors(b2),
        "met_xy": np.stack([met * np.cos(met_phi), met * np.sin(met_phi)], axis=1),
        "weight": _per_event(ak, a[WEIGHT])[mask] if WEIGHT in a else np.zeros(int(mask.sum())),  # 1/n later
    }
    return out, mask


def _per_event(ak, x) -> np.ndarray:
    """One number per event from a branch that is flat or a one-element collection (Delphes)."""
    if x.ndim > 1:
        x = ak.firsts(x, axis=1)
    return np.asarray(ak.to_numpy(ak.fill_none(x, np.nan)), float)
