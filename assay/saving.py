"""Atomic file writes and checked reads: text, JSON and saved-model directories (estimators,
ensembles, BIT); torch-free.

- :func:`atomic_path`: the one way to write a file (temporary file, then ``os.replace``);
- :func:`atomic_directory`: the one way to write a saved-model directory;
- :func:`read_tagged_json`: the one reader of a tagged metadata file (``format`` and
  ``schema_version`` checked), with :func:`json_field` for its fields.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from assay.exceptions import StoreError

__all__ = [
    "atomic_directory",
    "atomic_path",
    "disk_full",
    "full_error",
    "json_field",
    "read_json",
    "read_tagged_json",
    "replace_directory",
    "require_space",
    "unwritable",
    "unwritable_error",
    "write_json",
    "write_text",
]


def _umask() -> int:
    """The process's umask (read by setting and restoring it; there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# h5py names the errno only in its text; torch's zip writer (torch.save to a path) reports a short
# write as "unexpected pos <wanted> vs <written>" and loses the errno: the disk or ulimit -f ran out.
# "no space left on the device": full_error's own message, so that disk_full() also recognises it
_FULL_TEXTS = ("No space left", "File too large", "Disk quota", "errno = 28,", "errno = 27,", "errno = 122,",
               "unexpected pos", "no space left on the device")  # fmt: skip
_UNWRITABLE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
_MARGIN_BYTES = 2**20  # metadata and headers on top of the data


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` (an ``OSError``, or h5py's ``RuntimeError`` that only names the errno in its
    text, or a :func:`full_error`) says the disk or the file-size limit (``ulimit -f``) or the quota
    is exhausted."""
    if isinstance(err, OSError) and err.errno in _FULL_ERRNOS:
        return True
    return isinstance(err, (OSError, RuntimeError)) and any(t in str(err) for t in _FULL_TEXTS)


def full_error(path: str | os.PathLike, err: BaseException, kept: str = "") -> StoreError:
    """The one message for a full disk while writing ``path``: it names the file, says "no space
    left" and what was kept; chain it (``raise full_error(...) from err``)."""
    reason = str(err)
    if "unexpected pos" in reason:  # torch's zip writer: "[enforce fail at ...] . unexpected pos 64 vs 0"
        reason = "a write stopped short (" + reason[reason.index("unexpected pos") :] + " bytes)"
    return StoreError(
        f"{path}: no space left on the device (or over the file-size limit, ulimit -f, or the quota): "
        f"{reason}.{(' ' + kept) if kept else ''} Free some space and rerun the same command."
    )


def unwritable(err: BaseException) -> bool:
    """Whether ``err`` says a file or folder may not be written: no permission or a read-only file
    system (``EACCES``, ``EPERM``, ``EROFS``)."""
    return isinstance(err, OSError) and not isinstance(err, StoreError) and err.errno in _UNWRITABLE_ERRNOS


def unwritable_error(path: str | os.PathLike, err: OSError, kept: str = "") -> StoreError:
    """The one message for writing ``path`` in a folder that cannot be written (read-only, no
    permission): it names the folder; chain it (``raise unwritable_error(...) from err``)."""
    return StoreError(
        f"{Path(path).parent}: cannot write here ({err.strerror or err}); the folder is read-only or "
        f"not yours.{(' ' + kept) if kept else ''} Make it writable or use another output folder."
    )


def _translated(path: Path, err: BaseException) -> BaseException | None:
    """The StoreError for a full disk or an unwritable folder while writing ``path``, else None."""
    if isinstance(err, StoreError):
        return None
    if disk_full(err):
        return full_error(path, err, f"{path} was left as it was.")
    if unwritable(err):
        return unwritable_error(path, err, f"{path} was left as it was.")  # type: ignore[arg-type]
    return None


def require_space(path: str | os.PathLike, n_bytes: int, *, kept: str = "") -> None:
    """Refuse, before writing, to grow ``path`` by ``n_bytes`` (plus 1 MiB for metadata) where the
    free space of its file system or the process's file-size limit (``ulimit -f``) is smaller.

    Checking first keeps a half-written HDF5 file out of the picture: HDF5 cannot recover from a
    failed write (the file is left unreadable, and the library can crash at exit).

    Raises:
        StoreError: naming ``path``, "no space left", the bytes needed and available.
    """
    path = Path(path)
    folder = path.parent if not path.is_dir() else path
    size = path.stat().st_size if path.is_file() else 0
    need = int(n_bytes) + _MARGIN_BYTES
    try:
        stat = os.statvfs(folder)
    except OSError:
        return  # cannot tell: let the write itself fail if it must
    limits = [stat.f_bavail * stat.f_frsize]
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft != resource.RLIM_INFINITY:
        limits.append(soft - size)
    if need > min(limits):
        what = "free space" if min(limits) == limits[0] else "room under the file-size limit (ulimit -f)"
        short = OSError(errno.ENOSPC, f"{need / 2**20:.1f} MiB needed, {max(0, min(limits)) / 2**20:.1f} "
                                      f"MiB of {what}")  # fmt: skip
        raise full_error(path, short, kept) from short


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file beside ``path`` to write instead; it replaces ``path`` (``os.replace``)
    when the block ends without error and is removed when it raises.

    Example:
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_path(folder / "a.txt") as tmp:
        ...     _ = tmp.write_text("done")
        >>> (folder / "a.txt").read_text(), len(list(folder.iterdir()))
        ('done', 1)
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except FileNotFoundError as err:
        raise StoreError(f"{path}: its folder {path.parent} does not exist; create it first") from err
    except OSError as err:
        if (store_error := _translated(path, err)) is not None:
            raise store_error from err
        raise
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600: give the mode a plain open() would
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if (store_error := _translated(path, err)) is not None:
            raise store_error from err
        raise


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`atomic_path`); a file that already holds
    exactly ``text`` is left alone, so rerunning a finished step writes nothing (and works in a
    folder that has since become read-only)."""
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size == len(text.encode("utf-8")):
            if path.read_text(encoding="utf-8") == text:
                return
    except (OSError, UnicodeDecodeError):
        pass  # unreadable: write it anew
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data: Any, *, indent: int = 2) -> None:
    """Write ``data`` as JSON to ``path`` atomically (:func:`write_text`)."""
    write_text(path, json.dumps(data, indent=indent))


@contextmanager
def atomic_directory(
    path: str | os.PathLike, *, markers: Sequence[str], what: str = "estimator"
) -> Iterator[Path]:
    """A temporary directory beside ``path`` to fill; it replaces ``path`` (:func:`replace_directory`)
    when the block ends without error and is removed when it raises (KeyboardInterrupt included).

    Args:
        path: the saved model's directory; missing parent folders are created.
        markers: file names of which one marks an existing ``path`` as a saved model that may be
            replaced (an empty directory may be too).
        what: the kind of model, for the error message.

    Raises:
        StoreError: ``path`` exists and is not a saved model (checked before and after the block);
            the disk is full or the folder cannot be written (``path`` is left as it was).

    Example:
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_directory(folder / "model", markers=("meta.json",)) as tmp:
        ...     _ = (tmp / "meta.json").write_text("{}")
        >>> sorted(p.name for p in folder.rglob("*"))
        ['meta.json', 'model']
    """
    path = Path(path)
    _check_replaceable(path, markers, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        if (store_error := _translated(path, err)) is not None:
            raise store_error from err
        raise
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700: give the mode a plain mkdir() would
    try:
        yield tmp
        replace_directory(tmp, path, markers=markers, what=what)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, StoreError) and err.__cause__ is not None and str(tmp) in str(err):
            err = err.__cause__  # a nested saver's message names the temporary folder: name ``path``
        if (store_error := _translated(path, err)) is not None:
            raise store_error from err
        raise


def _check_replaceable(path: Path, markers: Sequence[str], what: str) -> None:
    """StoreError unless ``path`` is missing, an empty directory or a directory holding one of ``markers``."""
    if not path.exists():
        return
    if not path.is_dir() or (any(path.iterdir()) and not any((path / m).is_file() for m in markers)):
        raise StoreError(f"{path}: exists and is not a saved {what}; refusing to overwrite it")


def replace_directory(new: Path, path: Path, *, markers: Sequence[str], what: str = "estimator") -> None:
    """Move the finished directory ``new`` to ``path``.

    An existing ``path`` is replaced only if it is empty or holds a saved model (one of the
    ``markers`` files); the old copy is restored if the final rename fails.

    ``what`` names the kind of model in the error message.

    Raises:
        StoreError: ``path`` exists and is something else (never overwritten).
    """
    if not path.exists():
        os.replace(new, path)
        return
    _check_replaceable(path, markers, what)
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old / "previous")
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old / "previous", path)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def read_json(source: Path, *, missing: str, unreadable: str = "cannot read the metadata") -> Any:
    """Parse the JSON file ``source``; a missing or unreadable file is a StoreError naming it.

    ``missing`` and ``unreadable`` complete the message (``"<source>: <missing>"``,
    ``"<source>: <unreadable> (<reason>)"``).
    """
    try:
        return json.loads(source.read_text())
    except FileNotFoundError as exc:
        raise StoreError(f"{source}: {missing}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{source}: {unreadable} ({exc})") from exc


def read_tagged_json(
    path: str | os.PathLike, *, format: str, schema_version: int, what: str = "estimator"
) -> dict[str, Any]:
    """The JSON object in ``path``, checked to carry ``format`` and a ``schema_version`` no newer
    than ``schema_version``.

    Args:
        path: the metadata file inside a saved model's directory.
        format: the expected value of the ``"format"`` field.
        schema_version: the newest ``"schema_version"`` this assay reads.
        what: the kind of model, for the error messages.

    Raises:
        StoreError: naming the file (and the field): no such directory or file, not valid JSON,
            not a JSON object, a missing or wrong ``format``, a missing or newer ``schema_version``.

    Example:
        >>> file = Path(tempfile.mkdtemp()) / "meta.json"
        >>> _ = file.write_text('{"format": "assay.Other", "schema_version": 1}')
        >>> try:
        ...     read_tagged_json(file, format="assay.Estimator", schema_version=1)
        ... except StoreError as err:
        ...     print(str(err).removeprefix(f"{file}: "))
        field 'format' is 'assay.Other', expected 'assay.Estimator'
    """
    source = Path(path)
    if not source.parent.is_dir():
        raise StoreError(f"{source.parent}: no saved {what} here (expected a directory with {source.name})")
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise StoreError(f"{source}: missing file; is {source.parent} a saved {what}?") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{source}: not valid JSON ({exc})") from exc
    except OSError as exc:
        raise StoreError(f"{source}: cannot read the file ({exc})") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{source}: expected a JSON object, got {type(data).__name__}")
    tag = json_field(data, "format", source, str)
    if tag != format:
        raise StoreError(f"{source}: field 'format' is {tag!r}, expected {format!r}")
    version = json_field(data, "schema_version", source, int)
    if version > schema_version:
        raise StoreError(
            f"{source}: field 'schema_version' is {version}, newer than {schema_version}; upgrade assay"
        )
    return data


def json_field(data: Mapping[str, Any], key: str, source: Path, kind: type, prefix: str = "") -> Any:
    """``data[key]``, checked to be of ``kind`` (ints count as floats, bools as neither).

    Args:
        data: a parsed JSON object (or a part of one).
        key: the field.
        source: the file, for the message.
        kind: the expected type (``str``, ``int``, ``float``, ``list``, ``dict``, ``Mapping``, ...).
        prefix: the path of ``data`` inside the file, e.g. ``"state."``.

    Raises:
        StoreError: ``"<source>: missing field '<prefix><key>'"`` or ``"... should be <kind>, got <type>"``.
    """
    if not isinstance(data, Mapping) or key not in data:
        raise StoreError(f"{source}: missing field '{prefix}{key}'")
    value = data[key]
    kinds = (int, float) if kind is float else kind
    if not isinstance(value, kinds) or (kind in (int, float) and isinstance(value, bool)):
        raise StoreError(
            f"{source}: field '{prefix}{key}' should be {kind.__name__}, got {type(value).__name__}"
        )
    return value
