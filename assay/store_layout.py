"""The schema of assay event files: dataset names, dtypes, and the checks of the EventStore.

Private to :mod:`assay.store` (which re-exports the public constants); split out so the store
module holds the classes and this one the layout and its validation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from assay.exceptions import StoreError

log = logging.getLogger("assay.store")

SCHEMA_VERSION = 1
FORMAT = "assay.EventStore"
PARTIAL_SUFFIX = ".partial"
X = "observables"
WEIGHTS = "weights"
PROCESS = "labels/process"
BENCHMARK = "labels/benchmark"
EXTRAS = "extras"
JSON_ATTRS = ("observables", "benchmarks", "processes", "parameters", "morphing", "config")
NEGATIVE_WEIGHTS = "negative_weights"  # root attribute, only where declared: may weights be < 0?
FIELDS = {"x": X, "weights": WEIGHTS, "process": PROCESS, "benchmark": BENCHMARK}
_DTYPES = {X: np.float64, WEIGHTS: np.float64, PROCESS: np.int32, BENCHMARK: np.int32}
_NDIM = {X: 2, WEIGHTS: 2, PROCESS: 1, BENCHMARK: 1}
_COMPRESSIONS = ("gzip", "lzf", None)
_CACHE_BYTES = 64 * 2**20  # HDF5 chunk cache per dataset
_BLOCK_BYTES = 8 * 2**20  # target size of one streamed read


def _partial_path(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL_SUFFIX)


def _block_rows(ds: h5py.Dataset) -> int:
    """Rows per streamed read: a whole number of HDF5 chunks, about ``_BLOCK_BYTES``."""
    chunk = ds.chunks[0] if ds.chunks else 65536
    row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:])))
    return chunk * max(1, _BLOCK_BYTES // (chunk * row_bytes))


def _short(names: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


def _assay_version() -> str:
    try:
        return metadata.version("assay")
    except metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


def _make_meta(
    observables: Sequence[str],
    benchmarks: Sequence[str],
    processes: Sequence[str],
    parameters: Any,
    morphing: Any,
    config: Any,
) -> dict[str, Any]:
    """Validate creation metadata; return it normalised by a JSON round trip."""
    meta: dict[str, Any] = {}
    for key, names in (("observables", observables), ("benchmarks", benchmarks), ("processes", processes)):
        names = [names] if isinstance(names, str) else list(names)
        if not names or not all(isinstance(n, str) for n in names) or len(set(names)) < len(names):
            raise StoreError(f"{key}: expected a non-empty list of distinct strings, got {names!r}")
        meta[key] = names
    for key, value in (("parameters", parameters or {}), ("morphing", morphing), ("config", config)):
        if value is not None and not isinstance(value, Mapping):
            raise StoreError(f"{key}: expected a dict or None, got {type(value).__name__}")
        try:
            meta[key] = json.loads(json.dumps(value, default=_json_default))
        except (TypeError, ValueError) as err:
            raise StoreError(f"{key}: not JSON-serialisable: {err}") from err
    return meta


def _make_extras(extras: Mapping[str, tuple[int, ...]] | None) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name, shape in (extras or {}).items():
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if (
            not isinstance(name, str)
            or not name
            or "/" in name
            or name in (*FIELDS, "extras")
            or not all(isinstance(d, (int, np.integer)) and d > 0 for d in dims)
        ):
            raise StoreError(
                f"extras: expected name -> tuple of positive ints, names without "
                f"'/' other than {[*FIELDS, 'extras']}; got {name!r}: {shape!r}"
            )
        shapes[name] = tuple(int(d) for d in dims)
    return shapes


def _floats(
    arg: str, value: Any, names: list[str], what: str, offset: int, where: Path, *, negative: bool = True
) -> np.ndarray:
    """Check an (n, len(names)) finite float array; ``offset`` = events already written to ``where``;
    ``negative=False`` refuses values < 0."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise StoreError(f"{where}: {arg}: cannot convert to a float64 array: {err}") from err
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise StoreError(
            f"{where}: {arg}: expected shape (n_events, {len(names)}) for {what}s {_short(names)}, "
            f"got {arr.shape}"
        )
    problem = _first_bad(arr, negative=negative)
    if problem is not None:
        kind, row, col = problem
        raise StoreError(
            f"{where}: {arg}: {kind} value {arr[row, col]} in row {row} (event {offset + row} of the "
            f"file), {what} {names[col]!r}; expected {_EXPECTED[kind]}"
        )
    return arr


_EXPECTED = {
    "non-finite": "finite numbers",
    "negative": "weights >= 0, as declared for this sample (negative_weights=False); a sample with "
    "negative weights (interference, NLO) needs sampling.allow_negative_weights: true in the config",
}


def _first_bad(values: np.ndarray, *, negative: bool = True) -> tuple[str, int, int] | None:
    """``(problem, row, column)`` of the first NaN/inf (or, unless ``negative``, value < 0) in a float
    array of shape (n, ...) (columns counted over the flattened trailing dimensions); None if clean.

    Vectorised: one ``isfinite(...).all()`` pass per call, the search only on failure.
    """
    if values.dtype.kind != "f" or values.size == 0:
        return None
    flat = values.reshape(len(values), -1)
    if not np.isfinite(flat).all():
        row, col = np.argwhere(~np.isfinite(flat))[0]
        return "non-finite", int(row), int(col)
    if not negative and (flat < 0).any():
        row, col = np.argwhere(flat < 0)[0]
        return "negative", int(row), int(col)
    return None


def _check_values(
    path: Path,
    name: str,
    values: np.ndarray,
    index: Callable[[int], int],
    columns: Sequence[str] | None = None,
    *,
    negative: bool = True,
) -> np.ndarray:
    """``values`` (row i: event ``index(i)`` of dataset ``name`` of ``path``), checked on read.

    Raises:
        StoreError: naming the file, the dataset, the first bad row (and column): a NaN/inf, or a
            negative weight in a file declared without them.
    """
    problem = _first_bad(values, negative=negative)
    if problem is None:
        return values
    kind, row, col = problem
    column = f" ({columns[col]!r})" if columns is not None and col < len(columns) else ""
    fix = (
        "the file is damaged or was written outside assay; delete it and rerun to regenerate it"
        if kind == "non-finite"
        else f"expected {_EXPECTED[kind]}"
    )
    value = values.reshape(len(values), -1)[row, col]
    raise StoreError(f"{path}: dataset {name!r}: {kind} value {value} in row {index(row)}, column {col}"
                     f"{column}; {fix}")  # fmt: skip


def _labels(arg: str, value: Any, n: int, names: list[str], low: int, where: Path) -> np.ndarray:
    """Check integer labels in [low, len(names)), scalar or shape (n,)."""
    arr = np.asarray(value)
    arr = np.full(n, arr) if arr.ndim == 0 else arr
    if arr.shape != (n,) or arr.dtype.kind not in "iu":
        raise StoreError(
            f"{where}: {arg}: expected an integer or an integer array of shape ({n},), "
            f"got {arr.dtype} with shape {arr.shape}"
        )
    bad = np.flatnonzero((arr < low) | (arr >= len(names)))
    if bad.size:
        what = "processes" if arg == "process" else "benchmarks"
        raise StoreError(
            f"{where}: {arg}: label {arr[bad[0]]} in row {bad[0]} is outside "
            f"[{low}, {len(names) - 1}] for {what} {_short(names)}"
        )
    return arr.astype(np.int32)


def _check_extras(
    extras: Mapping[str, Any] | None, shapes: dict[str, tuple[int, ...]], n: int, where: Path, offset: int
) -> dict[str, np.ndarray]:
    given = dict(extras or {})
    if set(given) != set(shapes):
        raise StoreError(
            f"{where}: extras: expected exactly the extras declared at create {sorted(shapes)}, "
            f"got {sorted(given)}"
        )
    out = {}
    for name, value in given.items():
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise StoreError(f"{where}: extras[{name!r}]: cannot convert to float64: {err}") from err
        if arr.shape != (n, *shapes[name]):
            raise StoreError(
                f"{where}: extras[{name!r}]: expected shape {(n, *shapes[name])}, got {arr.shape}"
            )
        problem = _first_bad(arr)
        if problem is not None:
            raise StoreError(
                f"{where}: extras[{name!r}]: non-finite value in row {problem[1]} (event "
                f"{offset + problem[1]} of the file), column {problem[2]}; expected finite numbers"
            )
        out[f"{EXTRAS}/{name}"] = arr
    return out


def _append_bytes(file: h5py.File, batch: Mapping[str, np.ndarray]) -> int:
    """Upper bound of the bytes an append of ``batch`` adds to ``file``: the data uncompressed plus, per
    dataset, one chunk (HDF5 rewrites a partly filled last chunk elsewhere)."""
    total = 0
    for name, values in batch.items():
        ds = file[name]
        row = ds.dtype.itemsize * int(np.prod(ds.shape[1:]))
        total += values.size * ds.dtype.itemsize + (ds.chunks[0] if ds.chunks else 0) * row
    return total


def _check_label_values(
    path: Path, name: str, values: np.ndarray, index: Callable[[int], int], n_names: int
) -> np.ndarray:
    """Labels (row i: event ``index(i)`` of dataset ``name``) checked to lie in [low, n_names) (low: -1 for
    benchmarks, else 0)."""
    low = -1 if name == BENCHMARK else 0
    if values.size and (values.min() < low or values.max() >= n_names):
        row = int(np.flatnonzero((values < low) | (values >= n_names))[0])
        raise StoreError(
            f"{path}: dataset {name!r}: label {values[row]} in row {index(row)} is outside "
            f"[{low}, {n_names - 1}]; the file is damaged or was written outside assay"
        )
    return values


@contextmanager
def _reading(path: Path, doing: str = "read it") -> Iterator[None]:
    """Turn whatever h5py raises on a damaged file (OSError, RuntimeError, ValueError, KeyError,
    TypeError) into one StoreError naming ``path``; assay's own errors pass unchanged."""
    try:
        yield
    except StoreError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as err:
        raise StoreError(f"{path}: cannot {doing}: the file is damaged or truncated ({err})") from err


def _open(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode, rdcc_nbytes=_CACHE_BYTES)
    except FileNotFoundError as err:
        hint = (
            f"; {_partial_path(path)} exists from an interrupted write: continue it with "
            f"EventStore.create(..., resume=True)"
            if _partial_path(path).exists()
            else ""
        )
        raise StoreError(f"{path}: no such file{hint}") from err
    except OSError as err:
        raise StoreError(f"{path}: not a readable HDF5 file (truncated, corrupt or not HDF5): {err}") from err


def _new_partial(
    partial: Path,
    meta: dict[str, Any],
    shapes: dict[str, tuple[int, ...]],
    chunk_events: int,
    compression: str | None,
    negative_weights: bool | None = None,
) -> h5py.File:
    partial.unlink(missing_ok=True)
    file = _open(partial, "w")
    if negative_weights is not None:
        file.attrs[NEGATIVE_WEIGHTS] = bool(negative_weights)
    file.attrs.update(
        format=FORMAT,
        schema_version=SCHEMA_VERSION,
        complete=False,
        assay_version=_assay_version(),
        n_committed=0,
    )
    for key in JSON_ATTRS:
        file.attrs[key] = json.dumps(meta[key])
    trailing = {
        X: (len(meta["observables"]),),
        WEIGHTS: (len(meta["benchmarks"]),),
        PROCESS: (),
        BENCHMARK: (),
    }
    trailing.update({f"{EXTRAS}/{n}": s for n, s in shapes.items()})
    file.require_group(EXTRAS)
    for name, dims in trailing.items():
        dtype = np.dtype(_DTYPES.get(name, np.float64))
        rows = max(1, min(chunk_events, 16 * 2**20 // (dtype.itemsize * int(np.prod(dims)))))
        file.create_dataset(
            name,
            shape=(0, *dims),
            maxshape=(None, *dims),
            dtype=dtype,
            chunks=(rows, *dims),
            compression=compression,
            shuffle=compression is not None,
        )
    file.flush()
    return file


class UnreadablePartial(StoreError):
    """A partial file that cannot be continued because it is damaged (e.g. by a full disk), not
    because it was written with other settings."""


class ResumeMismatch(StoreError):
    """A partial file written with other metadata (settings) than the call that would continue it."""


def _reopen_partial(
    partial: Path, meta: dict[str, Any], shapes: dict[str, tuple[int, ...]], negative_weights: bool | None
) -> h5py.File:
    """Open an interrupted partial file, check it matches, truncate to ``n_committed``.

    Raises:
        UnreadablePartial: the file is damaged (not HDF5, truncated, datasets shorter than committed).
        StoreError: it holds another run's metadata.
    """
    try:
        file = _open(partial, "r+")
    except StoreError as err:
        raise UnreadablePartial(str(err)) from err
    try:
        _check_header(file, partial, resuming=True)
        stored = _read_meta(file, partial)
        group = file.get(EXTRAS)
        stored["extras"] = {n: ds.shape[1:] for n, ds in group.items()} if group else {}
        for key, value in {**meta, "extras": shapes}.items():
            if json.dumps(stored[key], sort_keys=True) != json.dumps(value, sort_keys=True):
                raise ResumeMismatch(
                    f"{partial}: cannot resume: {key} differs; the file has "
                    f"{stored[key]!r}, this call gives {value!r}"
                )
        n = int(file.attrs.get("n_committed", 0))
        for name in [X, WEIGHTS, PROCESS, BENCHMARK, *(f"{EXTRAS}/{s}" for s in shapes)]:
            ds = _dataset(file, partial, name)
            if len(ds) < n:
                raise UnreadablePartial(
                    f"{partial}: dataset {name!r} has {len(ds)} events, fewer than "
                    f"n_committed = {n}; delete the file to start over"
                )
            ds.resize(n, axis=0)
            _check_tail(ds, partial, name, n)
        file.attrs["complete"] = False
        if negative_weights is not None:
            file.attrs[NEGATIVE_WEIGHTS] = bool(negative_weights)
    except BaseException:
        file.close()
        raise
    return file


def _check_tail(ds: h5py.Dataset, partial: Path, name: str, n: int) -> None:
    """Read the last committed chunk of ``ds`` back: a SIGKILL during a write can leave the chunk
    that holds row ``n`` − 1 (shared with the rows being appended) half-written, and compressed
    chunks cannot be patched (the next append fails with "filter returned failure")."""
    if n == 0 or ds.chunks is None:
        return
    try:
        ds[max(0, n - ds.chunks[0]) : n]
    except (OSError, RuntimeError, ValueError) as err:
        raise UnreadablePartial(
            f"{partial}: dataset {name!r} cannot be read back near event {n} ({err}); the interrupted "
            "write damaged it"
        ) from err


def check_attributes(file: h5py.File, path: Path) -> None:
    """Check every root attribute's type and stored size through ``h5py.h5a`` before h5py reads it.

    Allowed: a scalar variable-length string (16 bytes stored, a heap reference), or a scalar or
    1-D integer, float or enum (h5py's bool) of 1, 2, 4 or 8 bytes stored in exactly size × points
    bytes. A bit flip that turns the 1-byte ``complete`` flag into a variable-length type would
    otherwise make libhdf5 read a heap reference out of 1 byte and crash the process.

    Raises:
        StoreError: naming the file and the attribute.
    """
    from h5py import h5a, h5s, h5t

    for name in file.attrs:
        try:
            attr = h5a.open(file.id, name if isinstance(name, bytes) else name.encode())
            kind, space = attr.get_type(), attr.get_space()
            extent = space.get_simple_extent_type()
            points = space.get_simple_extent_npoints() if extent in (h5s.SCALAR, h5s.SIMPLE) else -1
            klass = kind.get_class()
            if klass == h5t.STRING and kind.is_variable_str() and extent == h5s.SCALAR:
                size = 16
            elif (klass in (h5t.INTEGER, h5t.FLOAT, h5t.ENUM) and kind.get_size() in (1, 2, 4, 8)
                  and (extent == h5s.SCALAR or (extent == h5s.SIMPLE and len(space.shape) == 1))
                  ):  # fmt: skip
                size = kind.get_size() * points
            else:
                size = None
            stored = attr.get_storage_size()
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise StoreError(f"{path}: attribute {name!r} cannot be read ({err}); the file is damaged: "
                             "regenerate it") from err
        if size is None or stored != size:
            raise StoreError(
                f"{path}: attribute {name!r} has an unexpected type or size ({stored} bytes stored); "
                "the file is damaged: regenerate it"
            )


def _check_header(file: h5py.File, path: Path, *, resuming: bool) -> int:
    """Check the attributes' types (:func:`check_attributes`), format, schema version and
    completeness; return the schema version."""
    check_attributes(file, path)
    attrs = file.attrs
    if attrs.get("format") != FORMAT:
        found = "no 'format' attribute" if "format" not in attrs else f"format={attrs['format']!r}"
        raise StoreError(
            f"{path}: not an assay event file ({found}, expected {FORMAT!r}); "
            f"was it written by another program?"
        )
    version = attrs.get("schema_version")
    if not isinstance(version, (int, np.integer)) or version < 1:
        raise StoreError(f"{path}: schema_version is {version!r}, expected an integer >= 1")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema_version {version} is newer than this assay supports "
            f"({SCHEMA_VERSION}); upgrade assay to read it"
        )
    if not resuming and not attrs.get("complete", False):
        raise StoreError(
            f"{path}: unfinished write (complete=False, "
            f"{attrs.get('n_committed', 0)} events committed); the writing run was "
            f"interrupted: continue it with EventStore.create(..., resume=True)"
        )
    return int(version)


def _read_meta(file: h5py.File, path: Path) -> dict[str, Any]:
    meta = {}
    for key in JSON_ATTRS:
        if key not in file.attrs:
            raise StoreError(f"{path}: missing metadata attribute {key!r}")
        try:
            meta[key] = json.loads(file.attrs[key])
        except (TypeError, ValueError) as err:
            raise StoreError(f"{path}: metadata attribute {key!r} is not valid JSON: {err}") from err
    for key in ("observables", "benchmarks", "processes"):
        if not isinstance(meta[key], list) or not all(isinstance(n, str) for n in meta[key]):
            raise StoreError(
                f"{path}: metadata attribute {key!r} must be a list of strings, got {meta[key]!r}"
            )
    for key in ("parameters", "morphing", "config"):
        if meta[key] is not None and not isinstance(meta[key], dict):
            raise StoreError(
                f"{path}: metadata attribute {key!r} must be a JSON object or null, got {meta[key]!r}"
            )
    return meta


def _dataset(file: h5py.File, path: Path, name: str) -> h5py.Dataset:
    ds = file.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise StoreError(f"{path}: missing dataset {name!r}")
    return ds


def _check_datasets(
    file: h5py.File, path: Path, meta: dict[str, Any]
) -> tuple[int, dict[str, tuple[int, ...]]]:
    """Check dtypes, ndims, columns vs metadata and equal lengths; return n_events, extras."""
    lengths, shapes = {}, {}
    for name in (X, WEIGHTS, PROCESS, BENCHMARK):
        ds = _dataset(file, path, name)
        if ds.dtype != _DTYPES[name] or ds.ndim != _NDIM[name]:
            raise StoreError(
                f"{path}: dataset {name!r} has dtype {ds.dtype} and shape "
                f"{ds.shape}, expected {np.dtype(_DTYPES[name])} with "
                f"{_NDIM[name]} dimensions"
            )
        lengths[name] = len(ds)
    for name, key in ((X, "observables"), (WEIGHTS, "benchmarks")):
        if file[name].shape[1] != len(meta[key]):
            raise StoreError(
                f"{path}: dataset {name!r} has {file[name].shape[1]} columns but "
                f"metadata {key!r} has {len(meta[key])} names {_short(meta[key])}"
            )
    group = file.get(EXTRAS)
    if not isinstance(group, h5py.Group):
        raise StoreError(f"{path}: missing group {EXTRAS!r}")
    for name, ds in group.items():
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f" or ds.ndim < 1:
            raise StoreError(f"{path}: {EXTRAS}/{name} must be a float dataset of shape (n_events, ...)")
        lengths[f"{EXTRAS}/{name}"], shapes[name] = len(ds), ds.shape[1:]
    for name, n in lengths.items():
        if n != lengths[X]:
            raise StoreError(
                f"{path}: length mismatch: dataset {name!r} has {n} events but {X!r} has {lengths[X]}"
            )
    return lengths[X], shapes
