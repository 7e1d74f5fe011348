"""Les Houches Event files: write and read parton-level events with their reweighting weights.

LHE standard (hep-ph/0609017) with the 3.0 ``<initrwgt>``/``<rwgt>`` blocks (arXiv:1405.1067) as
MadGraph's reweighting module writes them: events from MadGraph + SMEFTsim reweighting and events
written here enter assay the same way. Malformed input raises one :class:`LHEError` naming the line.

Example:
    >>> import tempfile, numpy as np
    >>> z, one = np.zeros((1, 3, 2)), np.ones(1)
    >>> events = LHEEvents(pdgid=[[2, -1, 24]], status=[[-1, -1, 1]], mothers=z, colors=z,
    ...     momenta=np.full((1, 3, 4), 100.0), masses=z[..., 0], spins=z[..., 0] + 9, weight=one / 2,
    ...     scale=one * 91.2, aqed=one / 132.5, aqcd=one * 0.118, process_id=one,
    ...     rwgt=[[0.4]], rwgt_ids=["rwgt_1"])
    >>> path = write_lhe(tempfile.mkdtemp() + "/wh.lhe.gz", events, LHEInit.from_events(events))
    >>> read_lhe(path)[0].rwgt.tolist(), LHEInit.from_events(events).processes
    ([[0.4]], ((0.5, 0.5, 0.5, 1),))
"""

from __future__ import annotations

import gzip
import math
import os
import re
import zlib
from collections.abc import Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from assay.exceptions import AssayError, StoreError
from assay.saving import atomic_path

__all__ = ["LHEError", "LHEEvents", "LHEInit", "read_lhe", "write_lhe"]

PARTICLE_FIELDS = "IDUP ISTUP MOTHUP1 MOTHUP2 ICOLUP1 ICOLUP2 PUP1 PUP2 PUP3 PUP4 PUP5 VTIMUP SPINUP"
EVENT_FIELDS = "NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP"
_PROCESS_FIELDS = "XSECUP XERRUP XMAXUP LPRUP"
_BEAM_FIELDS = "IDBMUP1 IDBMUP2 EBMUP1 EBMUP2 PDFGUP1 PDFGUP2 PDFSUP1 PDFSUP2 IDWTUP NPRUP"
_CHUNK = 10_000  # events converted by numpy at a time: bounds the memory of the text kept
_PARTICLE_DTYPE = np.dtype([("ints", np.int64, (6,)), ("floats", np.float64, (7,))])
_WGT = re.compile(r"""<wgt\s+id\s*=\s*['"]([^'"]*)['"]\s*>([^<]*)</wgt>""")
_WEIGHT_ID = re.compile(r"""<weight\b[^>]*?\bid\s*=\s*(['"])(.*?)\1""")
_INIT_TAG = re.compile(r"\s*<init[\s>]")
_STRATEGY = "'includeIdInWeightName'"
_F = "%.17g"  # 17 significant digits: every float64 reads back bit-exactly
_SHAPES = dict(pdgid=(), status=(), mothers=(2,), colors=(2,), momenta=(4,), masses=(), spins=())
_PER_EVENT = ("weight", "scale", "aqed", "aqcd", "process_id")
_INTS = ("pdgid", "status", "mothers", "colors", "process_id")


class LHEError(AssayError, ValueError):
    """An LHE file or the events to write are malformed; names the file and the 1-based line."""


@dataclass(frozen=True, eq=False)
class LHEEvents:
    """Parton-level events of one multiplicity, as arrays (made int64/float64 on creation)."""

    pdgid: np.ndarray  # (n_events, n_particles) int PDG ids
    status: np.ndarray  # (n_events, n_particles) int: -1 incoming, 1 final, 2 intermediate
    mothers: np.ndarray  # (n_events, n_particles, 2) int, 1-based as in LHE (0 = none)
    colors: np.ndarray  # (n_events, n_particles, 2) int colour-flow tags
    momenta: np.ndarray  # (n_events, n_particles, 4) (E, px, py, pz) in GeV; LHE lines hold px py pz E
    masses: np.ndarray  # (n_events, n_particles) in GeV
    spins: np.ndarray  # (n_events, n_particles) helicities, 9 = unknown
    weight: np.ndarray  # (n_events,) nominal weight XWGTUP in pb
    scale: np.ndarray  # (n_events,) SCALUP in GeV
    aqed: np.ndarray  # (n_events,) AQEDUP
    aqcd: np.ndarray  # (n_events,) AQCDUP
    process_id: np.ndarray  # (n_events,) int IDPRUP
    rwgt: np.ndarray | None = None  # (n_events, n_rwgt) reweighting weights in pb, order of rwgt_ids
    rwgt_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (*_SHAPES, *_PER_EVENT, "rwgt"):
            if (value := getattr(self, name)) is not None:
                object.__setattr__(self, name, np.asarray(value, np.int64 if name in _INTS else float))
        object.__setattr__(self, "rwgt_ids", tuple(self.rwgt_ids))
        n_events, n_particles = (*np.shape(self.pdgid), 0, 0)[:2]
        expected = {name: (n_events, n_particles, *tail) for name, tail in _SHAPES.items()}
        expected |= dict.fromkeys(_PER_EVENT, (n_events,))
        expected["rwgt"] = (n_events, len(self.rwgt_ids)) if self.rwgt is not None or self.rwgt_ids else None
        for name, shape in expected.items():
            if ((got := getattr(self, name)) is not None and got.shape != shape) or (got is None and shape):
                raise LHEError(f"LHEEvents.{name} has shape {getattr(got, 'shape', None)}; expected {shape}")
        if len(set(self.rwgt_ids)) != len(self.rwgt_ids):
            raise LHEError(f"rwgt_ids {self.rwgt_ids} repeat an id; expected unique ids")

    @property
    def n_events(self) -> int:
        return self.pdgid.shape[0]

    @property
    def n_particles(self) -> int:
        return self.pdgid.shape[1]


@dataclass(frozen=True, kw_only=True)
class LHEInit:
    """The ``<init>`` block: beams, PDFs, weighting strategy and one line per process."""

    beam_ids: tuple[int, int] = (2212, 2212)  # PDG ids of the two beams
    beam_energies: tuple[float, float] = (6500.0, 6500.0)  # in GeV
    pdf_group: tuple[int, int] = (0, 0)  # PDFGUP (0: the shower program's default)
    pdf_set: tuple[int, int] = (0, 0)  # PDFSUP, LHAPDF ids
    weighting_strategy: int = 3  # IDWTUP: 3 unit weights, -4 signed weights summing to σ
    processes: tuple[tuple[float, float, float, int], ...]  # (xsec_pb, xsec_err_pb, xmax, process_id)

    def __post_init__(self) -> None:
        for name, kind in (("beam_ids", int), ("beam_energies", float), ("pdf_group", int), ("pdf_set", int)):
            if len(value := tuple(map(kind, getattr(self, name)))) != 2:
                raise LHEError(f"LHEInit.{name} has {len(value)} entries; expected 2, one per beam")
            object.__setattr__(self, name, value)
        procs = tuple((float(s), float(e), float(m), int(i)) for s, e, m, i in self.processes)
        object.__setattr__(self, "processes", procs)
        object.__setattr__(self, "weighting_strategy", int(self.weighting_strategy))

    @classmethod
    def from_events(cls, events: LHEEvents, **kwargs) -> LHEInit:
        """One process per process id: σ = Σw in pb, error √Σw², xmax = max|w|."""
        ws = {pid: events.weight[events.process_id == pid] for pid in np.unique(events.process_id)}
        procs = [(w.sum(), math.sqrt(np.sum(w**2)), np.abs(w).max(), pid) for pid, w in ws.items()]
        return cls(processes=procs, **kwargs)


def write_lhe(
    path: str | os.PathLike,
    events: LHEEvents,
    init: LHEInit,
    *,
    header_comment: str = "",
    rwgt_info: Mapping[str, str] | None = None,
) -> Path:
    """Write events to an LHE 3.0 file (gzip if the name ends in ``.gz``), atomically.

    Args:
        path: destination; a temporary file in its directory is renamed onto it at the end.
        events: the events; numbers are written with 17 significant digits (bit-exact round trip).
        init: the ``<init>`` block.
        header_comment: free text, stored as an XML comment in ``<header>``.
        rwgt_info: description of each reweighting id (e.g. ``"set param_card cHW 1.0"``), keys
            ``events.rwgt_ids``; default empty descriptions.

    Returns:
        The path written.

    Raises:
        LHEError: non-finite numbers or malformed reweighting ids; then nothing is written.
    """
    path = Path(path)
    for name in ("momenta", "masses", "spins", "weight", "scale", "aqed", "aqcd", "rwgt"):
        if (value := getattr(events, name)) is not None and not np.isfinite(value).all():
            bad = int(np.argwhere(~np.isfinite(value))[0][0])
            raise LHEError(f"{path}: events.{name} of event {bad} is not finite; expected finite numbers")
    if bad_ids := [i for i in events.rwgt_ids if not re.fullmatch(r"""[^\s'"<>&%]+""", i)]:
        raise LHEError(f"{path}: rwgt ids {bad_ids} are empty or contain spaces, quotes, <, >, & or %")
    if rwgt_info is not None and set(rwgt_info) != set(events.rwgt_ids):
        raise LHEError(f"{path}: rwgt_info has ids {sorted(rwgt_info)}; expected events.rwgt_ids")
    head = _header_text(init, {k: (rwgt_info or {}).get(k, "") for k in events.rwgt_ids}, header_comment)
    fmt, table = _event_rows(events)
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        gz = gzip.GzipFile(path.name, "wb", 1, raw, mtime=0) if path.suffix == ".gz" else None
        with gz if gz is not None else nullcontext(raw) as out:
            out.write(head.encode())
            for start in range(0, events.n_events, _CHUNK):
                rows = table[start : start + _CHUNK].tolist()
                out.write("".join([fmt % tuple(row) for row in rows]).encode())
            out.write(b"</LesHouchesEvents>\n")
    return path


def _header_text(init: LHEInit, rwgt_info: Mapping[str, str], comment: str) -> str:
    out = ['<LesHouchesEvents version="3.0">\n<header>\n']
    if comment:
        out.append(f"<!--\n{comment.replace('--', '- -')}\n-->\n")
    if rwgt_info:  # as MadGraph's reweighting module writes it (single quotes, one weight a line)
        out.append(f"<initrwgt>\n<weightgroup name='mg_reweighting' weight_name_strategy={_STRATEGY}>\n")
        out += [f"<weight id='{k}'> {escape(v)} </weight>\n" for k, v in rwgt_info.items()]
        out.append("</weightgroup>\n</initrwgt>\n")
    beams = [*init.beam_ids, *map(repr, init.beam_energies), *init.pdf_group, *init.pdf_set]
    beams += [init.weighting_strategy, len(init.processes)]
    out.append(f"</header>\n<init>\n {' '.join(map(str, beams))}\n")
    out += [f" {s!r} {e!r} {m!r} {i}\n" for s, e, m, i in init.processes]
    return "".join([*out, "</init>\n"])


def _event_rows(ev: LHEEvents) -> tuple[str, np.ndarray]:
    """The %-format of one event and the numbers of each event in its order, (n_events, n_cols)."""
    particle = f" %9d %2d %4d %4d %4d %4d {_F} {_F} {_F} {_F} {_F} 0 {_F}\n"
    rwgt = "".join(f"<wgt id='{i}'> {_F} </wgt>\n" for i in ev.rwgt_ids)
    rwgt = f"<rwgt>\n{rwgt}</rwgt>\n" if ev.rwgt_ids else ""
    fmt = f"<event>\n %d %d {_F} {_F} {_F} {_F}\n" + particle * ev.n_particles + rwgt + "</event>\n"
    n = ev.n_events
    head = np.stack([np.full(n, ev.n_particles), ev.process_id, ev.weight, ev.scale, ev.aqed, ev.aqcd], 1)
    pup = ev.momenta[..., [1, 2, 3, 0]]  # (E, px, py, pz) -> LHE's px py pz E
    cols = [ev.pdgid[..., None], ev.status[..., None], ev.mothers, ev.colors, pup, ev.masses[..., None]]
    particles = np.concatenate([*cols, ev.spins[..., None]], axis=2, dtype=float)
    rwgt = ev.rwgt if ev.rwgt is not None else np.empty((n, 0))
    return fmt, np.concatenate([head, particles.reshape(n, 12 * ev.n_particles), rwgt], axis=1)


def read_lhe(path: str | os.PathLike, *, rwgt_ids: Sequence[str] | None = None) -> tuple[LHEEvents, LHEInit]:
    """Read an LHE file (plain or gzip) written here, by MadGraph or by any LHEF writer.

    Args:
        path: the file.
        rwgt_ids: reweighting ids to return, in this order; default all ids declared in the
            header's ``<initrwgt>``. Every event must carry a weight for every declared id.

    Returns:
        ``(events, init)``.

    Raises:
        StoreError: the file does not exist.
        LHEError: truncated file, wrong number of fields or non-numeric field, particle count !=
            NUP, several multiplicities, missing, unknown or non-finite weights, undeclared ids.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"LHE file {path} does not exist")
    with path.open("rb") as probe:
        opener = gzip.open if probe.read(2) == b"\x1f\x8b" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        reader = _Reader(path, f)
        try:
            declared, init = reader.header(), reader.init()
            wanted = tuple(declared if rwgt_ids is None else rwgt_ids)
            if missing := [i for i in wanted if i not in declared]:
                msg = f"requested rwgt_ids {missing} are not declared in <initrwgt>; declared: {declared}"
                raise reader.error(msg, reader.rwgt_line)
            events = reader.events(declared, wanted)
        except EOFError as exc:  # gzip stream cut short
            raise reader.error(f"truncated: the compressed data ends early ({exc})") from exc
        except (OSError, zlib.error) as exc:  # gzip.BadGzipFile, a damaged deflate stream or CRC
            raise reader.error(f"damaged compressed data ({exc})") from exc
    return events, init


class _Reader:
    """Streams a file's lines, counting them, and parses them. Events are kept as text, ``_CHUNK`` at a
    time, and converted by numpy at once; only if that fails are lines checked one by one."""

    def __init__(self, path: Path, f) -> None:
        self.path, self.it, self.n = path, iter(f), 0

    def next(self) -> str:
        if (line := next(self.it, None)) is None:
            raise self.error("truncated: the file ends here; expected the rest up to </LesHouchesEvents>")
        self.n += 1
        return line

    def error(self, message: str, line: int | None = None) -> LHEError:
        return LHEError(f"{self.path}: line {self.n if line is None else line}: {message}")

    def numbers(self, words: Sequence[str], names: str, kinds: str, line: int) -> list[float]:
        """The numbers of one line with fields ``names``; ``kinds[j]`` is "i" (integer) or "f"."""
        names = names.split()
        if len(words) != len(names):
            raise self.error(f"{len(words)} fields; expected {len(names)}: {' '.join(names)}", line)
        for name, word, kind in zip(names, words, kinds):
            ok = False
            with suppress(ValueError):
                ok = math.isfinite(int(word) if kind == "i" else float(word))
            if not ok:
                expected = "an integer" if kind == "i" else "a finite number"
                raise self.error(f"{name} is {word!r}; expected {expected}", line)
        return [float(word) for word in words]

    def header(self) -> tuple[str, ...]:
        """Skip to ``<init>``; return the ids declared in ``<initrwgt>``, in order."""
        if (lines := [self.next()])[0].strip()[:1] not in ("<", ""):
            raise self.error(f'expected <LesHouchesEvents version="3.0">, got {lines[0].strip()[:40]!r}')
        while not _INIT_TAG.match(lines[-1]):
            lines.append(self.next())
        text = "".join(lines)
        block = re.search(r"<initrwgt.*?</initrwgt>", text, re.DOTALL)
        ids = [m[1] for m in _WEIGHT_ID.findall(block[0])] if block else []
        self.rwgt_line = text.count("\n", 0, block.start()) + 1 if block else self.n
        return tuple(ids)

    def init(self) -> LHEInit:
        b = self.numbers(self.next().split(), _BEAM_FIELDS, "iiffiiiiii", self.n)
        procs = [self.numbers(self.next().split(), _PROCESS_FIELDS, "fffi", self.n) for _ in range(int(b[9]))]
        while not self.next().lstrip().startswith("</init"):
            pass
        beams = dict(beam_ids=b[:2], beam_energies=b[2:4], pdf_group=b[4:6], pdf_set=b[6:8])
        return LHEInit(**beams, weighting_strategy=int(b[8]), processes=procs)

    def events(self, declared: tuple[str, ...], wanted: tuple[str, ...]) -> LHEEvents:
        self.declared, self.index = declared, {k: i for i, k in enumerate(declared)}
        self.n_particles, chunks, more = None, [], True
        while more:
            self.info, self.particles, self.first, self.rwgt = [], [], [], []  # of one chunk of events
            while len(self.info) < _CHUNK and more:
                text = self.next().lstrip()
                if text.startswith(("<event>", "<event ")):
                    self._event(self.n)
                elif text.startswith("</LesHouchesEvents"):
                    more = False
                elif text and text[0] not in "<#":
                    raise self.error(f"expected <event> or </LesHouchesEvents>, got {text.strip()[:40]!r}")
            if self.info or not chunks:
                chunks.append(self._arrays())
        arrays = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        rwgt = arrays["rwgt"][:, [declared.index(i) for i in wanted]] if wanted else None
        return LHEEvents(**arrays | {"rwgt": rwgt}, rwgt_ids=wanted)

    def _event(self, start: int) -> None:
        words = self.next().split()
        if len(words) != 6 or not words[0].isdigit():
            self.numbers(words, EVENT_FIELDS, "iiffff", self.n)
            raise self.error(f"NUP is {words[0]!r}; expected a non-negative integer")
        nup = int(words[0])
        self.n_particles = nup if self.n_particles is None else self.n_particles
        if nup != self.n_particles:
            msg = f"NUP={nup}; expected {self.n_particles} as in the events before (one multiplicity a file)"
            raise self.error(msg)
        got = list(islice(self.it, nup))
        self.n += len(got)
        if len(got) < nup:
            self.next()  # raises: truncated
        if nup and got[-1].lstrip()[:1] in ("<", "#"):
            k = next(i for i, text in enumerate(got) if text.lstrip()[:1] in ("<", "#"))
            msg = f"the event at line {start} has {k} particle lines; expected NUP={nup}"
            raise self.error(msg, self.n - nup + 1 + k)
        self.info.append(words)
        self.first.append(self.n - nup + 1)
        self.particles += got
        self._tail(start, nup)

    def _tail(self, start: int, nup: int) -> None:
        """Lines after the particles up to ``</event>``: reads ``<wgt>`` weights, skips other lines."""
        n, row = self.n, [None] * len(self.declared)
        for line in self.it:
            n += 1
            text = line.lstrip()
            if text.startswith("</event"):
                self.n = n
                if None in row:
                    missing = [w for w, v in zip(self.declared, row) if v is None]
                    raise self.error(f"missing reweighting weights {missing} (ids of <initrwgt>)", start)
                self.rwgt.append(row)
                return
            if "<wgt" in text:
                self._wgt(text, row, n)
            elif text.startswith(("<event", "</LesHouchesEvents")) or (text and text[0] not in "<#"):
                self.n = n
                if text.startswith(("<event", "</LesHouchesEvents")):
                    raise self.error(f"truncated: the event at line {start} has no </event> before this line")
                got = f"got {text.strip()[:40]!r} (more particles than NUP?)"
                raise self.error(f"expected </event>, a tag or # comment after NUP={nup} particles, {got}")
        self.n = n
        self.next()  # raises: truncated

    def _arrays(self) -> dict[str, np.ndarray]:
        n, p = len(self.info), self.n_particles or 0
        try:
            info = np.array(self.info, float).reshape(n, 6)
            parts = np.loadtxt(self.particles, _PARTICLE_DTYPE, comments=None, ndmin=1) if p else None
            parts = np.zeros(0, _PARTICLE_DTYPE) if parts is None else parts
            ok = len(parts) == n * p and np.isfinite(info).all() and not (info[:, 1] % 1).any()
            ok = ok and np.isfinite(parts["floats"]).all()
        except ValueError:
            ok = False
        if not ok:  # find the first bad line and raise
            for i, words in enumerate(self.info):
                self.numbers(words, EVENT_FIELDS, "iiffff", self.first[i] - 1)
                for j, line in enumerate(self.particles[i * p : (i + 1) * p]):
                    self.numbers(line.split(), PARTICLE_FIELDS, "i" * 6 + "f" * 7, self.first[i] + j)
            raise self.error(f"cannot convert the {n} events before this line to numbers")
        ints, floats = parts["ints"].reshape(n, p, 6), parts["floats"].reshape(n, p, 7)
        rwgt = np.array(self.rwgt, float).reshape(n, len(self.declared))
        return dict(
            pdgid=ints[..., 0], status=ints[..., 1], mothers=ints[..., 2:4], colors=ints[..., 4:6],
            momenta=floats[..., [3, 0, 1, 2]], masses=floats[..., 4], spins=floats[..., 6],
            weight=info[:, 2], scale=info[:, 3], aqed=info[:, 4], aqcd=info[:, 5],
            process_id=info[:, 1].astype(np.int64), rwgt=rwgt,
        )  # fmt: skip

    def _wgt(self, text: str, row: list, line: int) -> None:
        for wid, value in _WGT.findall(text):  # a malformed tag leaves its weight missing
            if (k := self.index.get(wid)) is None:
                raise self.error(f"unknown reweighting id {wid!r}; declared: {list(self.declared)}", line)
            try:
                value = float(value)
            except ValueError:  # reported below
                pass
            if not isinstance(value, float) or not math.isfinite(value):
                raise self.error(f"weight {wid!r} is {str(value).strip()!r}; expected a finite number", line)
            row[k] = value
