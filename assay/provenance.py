"""Provenance of assay's outputs: which assay, config, seed and input files made them.

Every output records one :class:`Provenance`:

- event stores and training sets (HDF5): the root attribute ``provenance`` (JSON);
- model folders and ``limits/``: a ``provenance.json`` file inside the folder;
- ``report.html``: a visible section and the record in an HTML comment ``<!-- assay:provenance {...} -->``.

:func:`read_provenance` reads it back from any of these (``assay info``); outputs written before
provenance existed give ``None``. :func:`describe` turns a record into rows for people.

Input files are identified by their SHA-256, streamed through ``hashlib.file_digest``
(:func:`file_sha256`), input folders (saved models) by the SHA-256 of their files' list
(:func:`folder_sha256`). A checksum is cached per (device, inode, size, mtime) in this process and,
for files of 64 MiB or more, in ``$ASSAY_CACHE_DIR/checksums.json`` (default ``~/.cache/assay``),
so large stores are not hashed again by every command.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "in.txt").write_text("abc")
    >>> record = make_provenance(config={"seed": 3}, inputs=[folder / "in.txt"])
    >>> record.seed, list(record.inputs.values())[0][:12]
    (3, 'ba7816bf8f01')
    >>> _ = write_folder_provenance(folder, record)
    >>> read_provenance(folder) == record
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py

from assay.exceptions import StoreError
from assay.saving import read_json, write_json

__all__ = [
    "ATTRIBUTE",
    "PROVENANCE_FILE",
    "Provenance",
    "config_sha256",
    "describe",
    "file_sha256",
    "folder_sha256",
    "html_comment",
    "input_sha256",
    "make_provenance",
    "read_h5_provenance",
    "read_html_provenance",
    "read_provenance",
    "write_folder_provenance",
    "write_h5_provenance",
]

log = logging.getLogger(__name__)

ATTRIBUTE = "provenance"  # HDF5 root attribute of event stores and training sets
PROVENANCE_FILE = "provenance.json"  # inside model folders and limits/
_HTML_TAG = "assay:provenance"
_DISK_CACHE_BYTES = 64 * 2**20  # files at least this large keep their checksum in the disk cache
_DISK_CACHE_ENTRIES = 1000
_memory_cache: dict[tuple[int, int, int, int], str] = {}
_FIELDS = {"assay_version": str, "config_sha256": (str, type(None)), "seed": (int, type(None)),
           "inputs": dict, "created": str, "command": list, "host": str}  # fmt: skip


@dataclass(frozen=True)
class Provenance:
    """What made an output.

    Attributes:
        assay_version: the version of assay that wrote it.
        config: the run configuration as JSON (all of it, or the sections that shape this output);
            None when the output was made without a config.
        config_sha256: SHA-256 of ``config`` as canonical JSON (sorted keys, no spaces); None without one.
        seed: the base seed (the config's ``seed`` unless given), or None.
        inputs: absolute path → SHA-256 of each input file (empty for simulated events).
        created: UTC time of writing, ISO 8601.
        command: the command line (``sys.argv``).
        host: the machine it ran on.
    """

    assay_version: str
    config: dict[str, Any] | None
    config_sha256: str | None
    seed: int | None
    inputs: dict[str, str] = field(default_factory=dict)
    created: str = ""
    command: tuple[str, ...] = ()
    host: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout (the keys of the class, ``command`` as a list)."""
        return {
            "assay_version": self.assay_version, "config": self.config, "config_sha256": self.config_sha256,
            "seed": self.seed, "inputs": dict(self.inputs), "created": self.created,
            "command": list(self.command), "host": self.host,
        }  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, *, source: str | os.PathLike = "<provenance>") -> Provenance:
        """Check a parsed record once and build it.

        Raises:
            StoreError: ``"<source>: provenance: ..."`` naming the missing or mistyped field.
        """
        if not isinstance(data, Mapping):
            raise StoreError(f"{source}: provenance: expected a JSON object, got {type(data).__name__}")
        for key, kind in _FIELDS.items():
            if key not in data:
                raise StoreError(f"{source}: provenance: missing field {key!r}")
            if not isinstance(data[key], kind) or isinstance(data[key], bool):
                raise StoreError(f"{source}: provenance: field {key!r} has the wrong type "
                                 f"({type(data[key]).__name__})")  # fmt: skip
        config = data.get("config")
        if config is not None and not isinstance(config, dict):
            raise StoreError(f"{source}: provenance: field 'config' must be an object or null")
        inputs = data["inputs"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in inputs.items()):
            raise StoreError(f"{source}: provenance: field 'inputs' must map paths to SHA-256 strings")
        return cls(
            assay_version=data["assay_version"], config=config, config_sha256=data["config_sha256"],
            seed=data["seed"], inputs=dict(inputs), created=data["created"],
            command=tuple(str(a) for a in data["command"]), host=data["host"],
        )  # fmt: skip

    def same_origin(self, other: Provenance | None) -> bool:
        """Whether ``other`` records the same version, config, seed and inputs (when and how it ran aside)."""
        keys = ("assay_version", "config_sha256", "seed", "inputs")
        return other is not None and all(getattr(self, k) == getattr(other, k) for k in keys)


def config_sha256(config: Mapping[str, Any] | None) -> str | None:
    """SHA-256 of ``config`` as canonical JSON (sorted keys, compact); None for None."""
    if config is None:
        return None
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _config_json(config: Any, sections: Iterable[str] | None) -> dict[str, Any] | None:
    """A RunConfig (pydantic) or a mapping as a JSON object, restricted to ``sections`` if given."""
    if config is None:
        return None
    if hasattr(config, "model_dump"):
        include = set(sections) if sections is not None else None
        return config.model_dump(mode="json", include=include)
    if not isinstance(config, Mapping):
        raise TypeError(f"config: expected a RunConfig, a mapping or None, got {type(config).__name__}")
    data = json.loads(json.dumps(dict(config)))
    return data if sections is None else {k: v for k, v in data.items() if k in set(sections)}


def make_provenance(
    *,
    config: Any = None,
    sections: Iterable[str] | None = None,
    seed: int | None = None,
    inputs: Iterable[str | os.PathLike] = (),
) -> Provenance:
    """The record of an output being written now.

    Args:
        config: the validated :class:`~assay.config.RunConfig` (or its JSON as a mapping), or None.
        sections: keep only these top-level sections of the config (those that shape the output);
            None keeps all.
        seed: the seed; default the config's ``seed`` (None without one).
        inputs: the files (or folders: saved models) the output was made from; each is hashed
            (:func:`input_sha256`).

    Raises:
        StoreError: an input file is missing or unreadable.
    """
    from assay import __version__

    data = _config_json(config, sections)
    if seed is None:
        seed = getattr(config, "seed", None) if not isinstance(config, Mapping) else config.get("seed")
    return Provenance(
        assay_version=__version__, config=data, config_sha256=config_sha256(data),
        seed=None if seed is None else int(seed),
        inputs={str(Path(p).resolve()): input_sha256(p) for p in inputs},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=tuple(sys.argv),
        host=socket.gethostname(),
    )  # fmt: skip


# ---- checksums ----------------------------------------------------------------------------------------


def _disk_cache_path() -> Path:
    root = os.environ.get("ASSAY_CACHE_DIR") or Path.home() / ".cache" / "assay"
    return Path(root) / "checksums.json"


def _read_disk_cache() -> dict[str, str]:
    try:
        data = json.loads(_disk_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _write_disk_cache(key: str, digest: str) -> None:
    cache = _read_disk_cache()
    cache.pop(key, None)
    cache[key] = digest
    try:
        _disk_cache_path().parent.mkdir(parents=True, exist_ok=True)
        write_json(_disk_cache_path(), dict(list(cache.items())[-_DISK_CACHE_ENTRIES:]), indent=0)
    except OSError as exc:  # a cache: never fail the run for it
        log.debug("cannot write the checksum cache %s: %s", _disk_cache_path(), exc)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the file ``path``, streamed (hashlib.file_digest: bounded memory for any size).

    Cached by (device, inode, size, mtime): in this process for every file, and on disk
    (``$ASSAY_CACHE_DIR/checksums.json``) for files of 64 MiB or more; a changed file has another
    size or mtime and is hashed again.

    Raises:
        StoreError: ``path`` is missing or unreadable.
    """
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise StoreError(f"{path}: cannot record its checksum: {exc.strerror or exc}") from exc
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)  # hard links share it
    if key in _memory_cache:
        return _memory_cache[key]
    disk_key = "|".join(map(str, key))
    large = stat.st_size >= _DISK_CACHE_BYTES
    digest = _read_disk_cache().get(disk_key) if large else None
    if digest is None:
        try:
            with path.open("rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as exc:
            raise StoreError(f"{path}: cannot read it for its checksum: {exc.strerror or exc}") from exc
        if large:
            _write_disk_cache(disk_key, digest)
    _memory_cache[key] = digest
    return digest


def folder_sha256(folder: str | os.PathLike) -> str:
    """SHA-256 of a folder (a saved model): of the sorted lines ``<relative path> <file SHA-256>`` of
    every file below it, ``provenance.json`` files excepted (they record, not make, the model).

    Raises:
        StoreError: ``folder`` is missing or a file in it unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StoreError(f"{folder}: cannot record its checksum: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != PROVENANCE_FILE)
    lines = "".join(f"{p.relative_to(folder).as_posix()} {file_sha256(p)}\n" for p in files)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def input_sha256(path: str | os.PathLike) -> str:
    """:func:`folder_sha256` for a folder, else :func:`file_sha256`."""
    return folder_sha256(path) if Path(path).is_dir() else file_sha256(path)


# ---- attach -------------------------------------------------------------------------------------------


def write_h5_provenance(file: h5py.File, record: Provenance) -> None:
    """Set the root attribute ``provenance`` of an HDF5 file open for writing."""
    file.attrs[ATTRIBUTE] = record.to_json()


def write_folder_provenance(folder: str | os.PathLike, record: Provenance) -> Path:
    """Write ``folder/provenance.json`` atomically (a model folder, ``limits/``); returns its path."""
    path = Path(folder) / PROVENANCE_FILE
    write_json(path, record.to_dict(), indent=1)
    return path


def html_comment(record: Provenance) -> str:
    """``<!-- assay:provenance {...} -->``: the record inside an HTML page (``--`` and ``<`` escaped in
    the JSON, which can only hold them inside strings)."""
    text = record.to_json().replace("--", "-\\u002d").replace("<", "\\u003c")
    return f"<!-- {_HTML_TAG} {text} -->"


def describe(record: Provenance) -> list[tuple[str, str]]:
    """``(field, value)`` rows of a record for people (the report's section, ``assay info``): version,
    seed, config SHA-256 and sections, created, command, host, then one row per input."""
    sections = ", ".join(sorted(record.config)) if record.config else "-"
    rows = [
        ("assay version", record.assay_version),
        ("seed", "-" if record.seed is None else str(record.seed)),
        ("config SHA-256", record.config_sha256 or "-"),
        ("config sections", sections),
        ("created (UTC)", record.created),
        ("command", " ".join(record.command) or "-"),
        ("host", record.host or "-"),
    ]
    rows += [(f"input {path}", digest) for path, digest in record.inputs.items()]
    return rows if record.inputs else [*rows, ("inputs", "none")]


# ---- read ---------------------------------------------------------------------------------------------


def read_h5_provenance(path: str | os.PathLike) -> Provenance | None:
    """The ``provenance`` attribute of an HDF5 output; None if it has none (written before provenance).

    Raises:
        StoreError: the file cannot be opened, or the attribute is not a valid record.
    """
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get(ATTRIBUTE)
    except OSError as exc:
        raise StoreError(f"{path}: not a readable HDF5 file ({exc})") from exc
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{path}: attribute {ATTRIBUTE!r} is not valid JSON ({exc})") from exc
    return Provenance.from_dict(data, source=path)


def read_html_provenance(path: str | os.PathLike) -> Provenance | None:
    """The record in a report page's ``assay:provenance`` comment; None if it has none."""
    try:
        page = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: cannot read the report ({exc})") from exc
    start = page.find(f"<!-- {_HTML_TAG} ")
    if start < 0:
        return None
    start += len(f"<!-- {_HTML_TAG} ")
    end = page.find(" -->", start)
    try:
        data = json.loads(page[start:end])
    except ValueError as exc:
        raise StoreError(f"{path}: the {_HTML_TAG} comment is not valid JSON ({exc})") from exc
    return Provenance.from_dict(data, source=path)


def read_provenance(path: str | os.PathLike) -> Provenance | None:
    """The provenance of any output: an HDF5 file (event store, training set), a folder holding
    ``provenance.json`` (model, ``limits/``), that file itself, or a report page (``.html``).

    Returns:
        The record, or None for an output written before provenance existed.

    Raises:
        StoreError: ``path`` is missing, or its record is malformed.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PROVENANCE_FILE
        if not path.exists():
            return None
    elif not path.exists():
        raise StoreError(f"{path}: no such file or folder")
    if path.suffix in (".html", ".htm"):
        return read_html_provenance(path)
    if path.suffix == ".json":
        data = read_json(path, missing="missing", unreadable="cannot read the provenance")
        return Provenance.from_dict(data, source=path)
    return read_h5_provenance(path)
