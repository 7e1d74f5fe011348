"""A model that is already trained: its inputs (for its provenance) and whether a rerun can keep it.

`assay train` writes ``models/<name>/provenance.json`` (:mod:`assay.provenance`): the config, the seed
and the SHA-256 of the files the model was fitted from. A rerun of `assay train` (or of `assay demo`,
interrupted during `assay limits`) keeps a saved model whose record shows the same seed, the same
settings (``training.<name>`` and ``systematics``) and the same inputs, instead of training it again;
``retrain=True`` (`assay train --retrain`) trains it anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from assay.config import BITModelConfig, MixtureModelConfig, RunConfig
from assay.exceptions import AssayError
from assay.provenance import input_sha256, read_provenance
from assay.rundir import RunDir

__all__ = ["KEPT_SECTIONS", "model_inputs", "unchanged"]

logger = logging.getLogger(__name__)

KEPT_SECTIONS = ("systematics",)
"""Config sections besides ``training.<name>`` and ``seed`` that a kept model must share (a mixture
model's nuisance ratios follow ``systematics``); everything upstream is in the inputs' checksums."""


def model_inputs(
    cfg: RunConfig, name: str, run: RunDir, set_names: Callable[[], Sequence[str]]
) -> list[Path]:
    """The files model ``name`` is fitted from: BIT and the mixture model the events, their split and
    basis; a neural model its training sets ``set_names()`` (and the basis when morphing-aware)."""
    model = cfg.training[name]
    if isinstance(model, BITModelConfig | MixtureModelConfig):
        files = [run.events, run.split, run.basis]
    else:
        files = [run.training_set(s, p) for s in set_names() for p in ("train", "validation")]
        if model.morphing_aware:
            files.append(run.basis)
    return [f for f in files if f.is_file()]


def unchanged(cfg: RunConfig, name: str, run: RunDir, inputs: Sequence[Path]) -> bool:
    """Whether ``models/<name>/`` holds a model trained with this seed, these settings and these
    ``inputs`` (their SHA-256), according to its provenance; False where anything differs, the record
    is missing (a model from before provenance) or unreadable."""
    path = run.model(name)
    if not path.is_dir():
        return False
    try:
        record = read_provenance(path)
    except AssayError as exc:
        logger.info("%s: %s; training it again", path, exc)
        return False
    if record is None or record.config is None or record.seed != cfg.seed:
        return False
    now = cfg.model_dump(mode="json")
    kept = {"training": now["training"][name], **{k: now.get(k) for k in KEPT_SECTIONS}}
    then = {"training": (record.config.get("training") or {}).get(name),
            **{k: record.config.get(k) for k in KEPT_SECTIONS}}  # fmt: skip
    if kept != then:
        return False
    return record.inputs == {str(Path(p).resolve()): input_sha256(p) for p in inputs}
