"""Resumable training: the state of an unfinished fit, written after every epoch.

A checkpoint holds the weights, the optimizer's moments, the loss curves, the best epoch so far
(with its weights, for early stopping) and the shuffling generator's state, so a fit resumed
from it continues exactly where it stopped: on a CPU the resumed fit ends with the same weights
as one never interrupted (tests/test_checkpoint.py). It also holds a fingerprint of the
trainer settings, the model's shapes and the data; a checkpoint of another fit is ignored (and
replaced), never half-applied. Files are written atomically (temporary file + ``os.replace``)
and read with ``torch.load(weights_only=True)``: no pickled objects.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from assay.exceptions import StoreError
from assay.saving import atomic_path, require_space

__all__ = ["fingerprint", "read_checkpoint", "write_checkpoint"]

logger = logging.getLogger(__name__)

FORMAT = "assay.TrainingCheckpoint"
_DIGEST_ROWS = 4096  # rows of each array hashed for the fingerprint (evenly spaced)


def fingerprint(
    settings: Mapping[str, Any], model: nn.Module, *datasets: Mapping[str, torch.Tensor] | None
) -> str:
    """A digest of the trainer ``settings``, the model's parameter shapes and the data.

    The data enter through their shapes and up to :data:`_DIGEST_ROWS` evenly spaced rows of
    every array (cheap for millions of samples; another sampling of the events changes them).
    """
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, p in model.state_dict().items():
        h.update(f"{name}{tuple(p.shape)}".encode())
    for data in datasets:
        if data is None:
            h.update(b"none")
            continue
        for key in sorted(data):
            t = data[key]
            step = max(1, len(t) // _DIGEST_ROWS)
            h.update(f"{key}{tuple(t.shape)}{t.dtype}".encode())
            h.update(t[::step].contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save ``state`` (tensors, numbers, strings, lists and dicts only) to ``path`` atomically.

    The state is serialised in memory first and written by Python: torch's own file writer reports
    a full disk or ``ulimit -f`` as "unexpected pos", without the errno. The free space (and the
    file-size limit) is checked before writing; a write that fails anyway (the disk filled in
    between) leaves the previous checkpoint as it was.

    Raises:
        StoreError: naming ``path``, "no space left" (the previous checkpoint is kept), or a folder
            that cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    data = buffer.getbuffer()
    kept = "The previous checkpoint (if any) was kept; a rerun resumes from it."
    require_space(path, len(data), kept=kept)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def read_checkpoint(path: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The state saved at ``path`` if it belongs to this fit, else None (no file, or another fit).

    Raises:
        StoreError: the file is unreadable or not a training checkpoint (delete it to start afresh).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or corrupt files
        raise StoreError(
            f"{path}: cannot read the training checkpoint ({_reason(exc)}); delete it to start afresh"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StoreError(f"{path}: not a training checkpoint written by assay; delete it to start afresh")
    if state.get("fingerprint") != expected_fingerprint:
        logger.warning(
            "%s: checkpoint of another fit (settings, model or data differ); starting afresh", path
        )
        return None
    return state


def _reason(exc: Exception) -> str:
    """torch.load's error in a few words: its refusal of pickled objects says to retry with
    ``weights_only=False`` (arbitrary code execution), which assay never does."""
    text = str(exc)
    if "Weights only load failed" in text:
        return "damaged, or holds objects other than tensors, which assay does not load"
    first = text.splitlines()[0].split(". ")[0][:160] if text.strip() else type(exc).__name__
    return f"damaged or truncated: {first}"
