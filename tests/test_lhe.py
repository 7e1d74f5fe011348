"""Tests of assay.io.lhe: bit-exact round trips, MadGraph files, pylhe cross-check, atomic writes and
one test per kind of malformed file (each asserting the line number in the message)."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pylhe
import pytest

from assay.exceptions import StoreError
from assay.io import lhe
from assay.io.lhe import LHEError, LHEEvents, LHEInit, read_lhe, write_lhe

ARRAYS = ("pdgid", "status", "mothers", "colors", "momenta", "masses", "spins")
ARRAYS += ("weight", "scale", "aqed", "aqcd", "process_id")
IDS = ("rwgt_1", "rwgt_2", "cHW_m1p5")


def make_events(rng: np.random.Generator, n: int = 50, n_particles: int = 8, ids=IDS) -> LHEEvents:
    """Random events whose floats span many magnitudes and signs (bit-exactness is the point)."""
    scale = 10.0 ** rng.integers(-12, 5, size=(n, n_particles, 4))
    momenta = rng.normal(size=(n, n_particles, 4)) * scale
    momenta[:1, 0] = [0.0, -0.0, 5e-324, 1.7976931348623157e308]  # zero, -0, subnormal, max float
    return LHEEvents(
        pdgid=rng.choice([1, -2, 5, -5, 11, -13, 21, 24, 25], size=(n, n_particles)),
        status=rng.choice([-1, 1, 2], size=(n, n_particles)),
        mothers=rng.integers(0, n_particles, size=(n, n_particles, 2)),
        colors=rng.integers(500, 510, size=(n, n_particles, 2)),
        momenta=momenta,
        masses=rng.random((n, n_particles)) * 100,
        spins=rng.choice([-1.0, 1.0, 9.0], size=(n, n_particles)),
        weight=rng.normal(1e-3, 1e-3, n),
        scale=rng.random(n) * 300,
        aqed=np.full(n, 1 / 132.507),
        aqcd=rng.random(n) * 0.2,
        process_id=rng.integers(1, 4, n),
        rwgt=rng.normal(1e-3, 1e-3, (n, len(ids))) if ids else None,
        rwgt_ids=ids,
    )


def assert_same(a: LHEEvents, b: LHEEvents) -> None:
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x.view(np.int64), y.view(np.int64)), name  # bitwise
    assert a.rwgt_ids == b.rwgt_ids
    assert (a.rwgt is None) == (b.rwgt is None)
    if a.rwgt is not None:
        assert np.array_equal(a.rwgt.view(np.int64), b.rwgt.view(np.int64))


@pytest.fixture
def events() -> LHEEvents:
    return make_events(np.random.default_rng(7))


@pytest.fixture
def init(events) -> LHEInit:
    return LHEInit.from_events(events, pdf_set=(247000, 247000), weighting_strategy=-4)


@pytest.mark.parametrize("name", ["events.lhe", "events.lhe.gz"])
def test_round_trip_is_bit_exact(tmp_path, events, init, name):
    path = write_lhe(tmp_path / name, events, init, rwgt_info={i: f"set param_card smeft {i}" for i in IDS})
    assert path == tmp_path / name and sorted(os.listdir(tmp_path)) == [name]
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back, init_back = read_lhe(path)
    assert_same(events, back)
    assert init_back == init
    assert init_back.processes[0][3] == 1 and init_back.beam_energies == (6500.0, 6500.0)


def test_round_trip_without_weights_and_with_one_particle(tmp_path):
    events = make_events(np.random.default_rng(3), n=4, n_particles=1, ids=())
    back, _ = read_lhe(write_lhe(tmp_path / "a.lhe", events, LHEInit.from_events(events)))
    assert_same(events, back)
    assert back.rwgt is None and back.rwgt_ids == ()


def test_round_trip_spans_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(lhe, "_CHUNK", 7)
    events = make_events(np.random.default_rng(4), n=30)
    back, _ = read_lhe(write_lhe(tmp_path / "a.lhe.gz", events, LHEInit.from_events(events)))
    assert_same(events, back)


def test_zero_events(tmp_path):
    events = make_events(np.random.default_rng(5), n=0)
    back, _ = read_lhe(write_lhe(tmp_path / "a.lhe", events, LHEInit(processes=[(1.0, 0.1, 1.0, 1)])))
    assert back.n_events == 0 and back.rwgt.shape == (0, 3) and back.rwgt_ids == IDS


def test_requested_rwgt_ids_are_selected_in_order(tmp_path, events, init):
    path = write_lhe(tmp_path / "a.lhe", events, init)
    back, _ = read_lhe(path, rwgt_ids=["cHW_m1p5", "rwgt_1"])
    assert back.rwgt_ids == ("cHW_m1p5", "rwgt_1")
    assert np.array_equal(back.rwgt, events.rwgt[:, [2, 0]])
    assert read_lhe(path, rwgt_ids=[])[0].rwgt is None
    line = path.read_text().splitlines().index("<initrwgt>") + 1
    with pytest.raises(LHEError, match=rf"line {line}: requested rwgt_ids \['rwgt_9'\] are not declared"):
        read_lhe(path, rwgt_ids=["rwgt_1", "rwgt_9"])


def test_header_is_madgraph_reweighting_format(tmp_path, events, init):
    text = write_lhe(tmp_path / "a.lhe", events, init, header_comment="made by -- assay").read_text()
    head = text[: text.index("<event>")]
    assert head.startswith('<LesHouchesEvents version="3.0">\n<header>\n')
    assert "<weightgroup name='mg_reweighting' weight_name_strategy='includeIdInWeightName'>" in head
    assert "<weight id='rwgt_1'>  </weight>" in head and "made by - - assay" in head
    assert "<rwgt>\n<wgt id='rwgt_1'> " in text and text.endswith("</event>\n</LesHouchesEvents>\n")
    assert text.count("<event>") == events.n_events


def test_pylhe_reads_what_we_write(tmp_path, events, init):
    """An independent reader (pylhe, XML based, as strict as Pythia's about the LHEF layout)."""
    path = write_lhe(tmp_path / "a.lhe", events, init, rwgt_info={i: "a < b & c" for i in IDS})
    parsed = pylhe.LHEFile.fromfile(str(path))
    info = parsed.init.initInfo
    assert (info.beamA, info.energyB, info.PDFsetA, info.weightingStrategy) == (2212, 6500.0, 247000, -4)
    assert [p.xSection for p in parsed.init.procInfo] == [p[0] for p in init.processes]
    pyl = list(parsed.events)
    assert len(pyl) == events.n_events
    momenta = np.array([[[p.e, p.px, p.py, p.pz] for p in e.particles] for e in pyl])
    assert np.array_equal(momenta, events.momenta)
    assert np.array_equal([[p.id for p in e.particles] for e in pyl], events.pdgid)
    assert np.array_equal([e.eventinfo.weight for e in pyl], events.weight)
    assert np.array_equal([[e.weights[i] for i in IDS] for e in pyl], events.rwgt)


MADGRAPH = """\
<LesHouchesEvents version="3.0">
<header>
<!--
#*********************************************************************
#                        MadGraph5_aMC@NLO                           *
#*********************************************************************
-->
<MGVersion>
3.5.1
</MGVersion>
<MGProcCard>
import model SMEFTsim_U35_MwScheme_UFO-massless
generate p p > w+ h, w+ > e+ ve, h > b b~ NP<=1
</MGProcCard>
<initrwgt>
<weightgroup name='mg_reweighting' weight_name_strategy='includeIdInWeightName'>
<weight id='rwgt_1'>set param_card smeft 4 0.0 # orig: 0.0
</weight>
<weight id="rwgt_2">set param_card smeft 4 1.0 # orig: 0.0
</weight>
</weightgroup>
</initrwgt>
</header>
<init>
2212 2212 6.500000e+03 6.500000e+03 0 0 247000 247000 -4 1
+2.4691340e-05 +1.2000000e-07 +2.4691340e-05 1
<generator name='MadGraph5_aMC@NLO' version='3.5.1'>please cite 1405.0301 </generator>
</init>
<event>
 6      1 +1.2345670e-05 1.25000000e+02 7.54677100e-03 1.18000000e-01
        2 -1    0    0  501    0 +0.0000000000e+00 +0.0000000000e+00 +3.2165432100e+02\
 3.2165432100e+02 0.0000000000e+00 0.0000e+00 1.0000e+00
       -1 -1    0    0    0  501 -0.0000000000e+00 -0.0000000000e+00 -1.2345678900e+02\
 1.2345678900e+02 0.0000000000e+00 0.0000e+00 -1.0000e+00
      -11  1    1    2    0    0 +1.0000000000e+01 +2.0000000000e+01 +3.0000000000e+01\
 3.7416573868e+01 0.0000000000e+00 0.0000e+00 -1.0000e+00
       12  1    1    2    0    0 -1.0000000000e+01 +5.0000000000e+00 +1.0000000000e+00\
 1.1224972160e+01 0.0000000000e+00 0.0000e+00 1.0000e+00
        5  1    1    2  501    0 +4.0000000000e+01 -1.0000000000e+01 +1.0000000000e+02\
 1.0816653826e+02 4.7000000000e+00 0.0000e+00 9.0000e+00
       -5  1    1    2    0  501 -4.0000000000e+01 -1.5000000000e+01 +2.0000000000e+01\
 4.7434164903e+01 4.7000000000e+00 0.0000e+00 9.0000e+00
# 0.1234E+03 0.5678E+02  aMC@NLO-style comment line
<mgrwt>
<rscale>  0 0.12500000E+03</rscale>
<asrwt>0</asrwt>
<pdfrwt beam="1">  1        2 0.49485278E-01 0.12500000E+03</pdfrwt>
<pdfrwt beam="2">  1       -1 0.18993352E-01 0.12500000E+03</pdfrwt>
<totfact> 0.31268123E+03</totfact>
</mgrwt>
<rwgt>
<wgt id='rwgt_1'> +1.2345670e-05 </wgt>
<wgt id='rwgt_2'> +2.3456780e-05 </wgt>
</rwgt>
<scales pt_clust_1="-1.000000e+00" pt_clust_2="-1.000000e+00" />
</event>
<event>
  6   1   1.2345670E-05  9.1188E+01  7.546771E-03  1.30E-01
\t1\t-1\t0\t0\t501\t0\t0\t0\t1.0e+02\t1.0e+02\t0\t0\t9
 -2 -1 0 0 0 501 0 0 -5.0e+01 5.0e+01 0 0 9
 -13 1 1 2 0 0 1 2 3 3.7416573867739413 0 0 9
 14 1 1 2 0 0 -1 -2 -3 3.7416573867739413 0 0 9
 5 1 1 2 501 0 3 4 0 5 0 0 9
 -5 1 1 2 0 501 -3 -4 0 5 0 0 9
<rwgt>
 <wgt id="rwgt_2">2.0e-05</wgt>   <wgt id='rwgt_1'>1.0e-05</wgt>
</rwgt>
</event>
</LesHouchesEvents>
"""


def test_reads_madgraph_formatting(tmp_path):
    path = tmp_path / "unweighted_events.lhe.gz"  # MadGraph's name; read as gzip by content
    with gzip.open(path, "wt") as f:
        f.write(MADGRAPH)
    events, init = read_lhe(path)
    assert events.n_events == 2 and events.n_particles == 6
    assert init.beam_ids == (2212, 2212) and init.pdf_set == (247000, 247000)
    assert init.weighting_strategy == -4 and init.processes == ((2.469134e-05, 1.2e-07, 2.469134e-05, 1),)
    assert events.pdgid.tolist() == [[2, -1, -11, 12, 5, -5], [1, -2, -13, 14, 5, -5]]
    assert events.mothers[0, 4].tolist() == [1, 2] and events.colors[0, 0].tolist() == [501, 0]
    assert events.momenta[0, 0].tolist() == [321.654321, 0.0, 0.0, 321.654321]  # px py pz E -> E px py pz
    assert events.momenta[0, 4].tolist() == [108.16653826, 40.0, -10.0, 100.0]
    assert events.masses[0, 4] == 4.7 and events.spins[0].tolist() == [1, -1, -1, 1, 9, 9]
    assert events.weight.tolist() == [1.234567e-05, 1.234567e-05]
    assert events.scale.tolist() == [125.0, 91.188] and events.aqcd.tolist() == [0.118, 0.13]
    assert events.rwgt_ids == ("rwgt_1", "rwgt_2")
    assert events.rwgt.tolist() == [[1.234567e-05, 2.345678e-05], [1e-05, 2e-05]]  # ids in any order
    # (pylhe cannot read this file: MadGraph's proc card "NP<=1" is not well-formed XML)


def test_madgraph_file_errors_name_the_line(tmp_path):
    bad = MADGRAPH.replace("<wgt id='rwgt_2'> +2.3456780e-05", "<wgt id='rwgt_7'> +2.3456780e-05")
    (path := tmp_path / "mg.lhe").write_text(bad)
    expect_error(path, 47, r"unknown reweighting id 'rwgt_7'; declared: \['rwgt_1', 'rwgt_2'\]")
    assert bad.splitlines()[46] == "<wgt id='rwgt_7'> +2.3456780e-05 </wgt>"


def test_atomic_write_nan_writes_nothing(tmp_path, events, init):
    path = write_lhe(tmp_path / "a.lhe", events, init)
    before = path.read_bytes()
    events.weight[3] = np.nan
    with pytest.raises(LHEError, match=r"a\.lhe: events\.weight of event 3 is not finite"):
        write_lhe(path, events, init)
    events.weight[3], events.rwgt[5, 1] = 1.0, np.inf
    with pytest.raises(LHEError, match=r"events\.rwgt of event 5"):
        write_lhe(tmp_path / "b.lhe.gz", events, init)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["a.lhe"]


@pytest.mark.parametrize("name", ["a.lhe", "a.lhe.gz"])
def test_atomic_write_failure_mid_write_leaves_no_file(tmp_path, events, init, monkeypatch, name):
    monkeypatch.setattr(lhe, "_CHUNK", 10)
    calls = []

    def fail_on_third_chunk(fmt_and_table):  # the formatting of the third chunk of events fails
        fmt, table = fmt_and_table

        class Rows:
            def __getitem__(self, key):
                calls.append(key)
                if len(calls) == 3:
                    raise KeyboardInterrupt
                return table[key]

        return fmt, Rows()

    event_rows = lhe._event_rows
    monkeypatch.setattr(lhe, "_event_rows", lambda ev: fail_on_third_chunk(event_rows(ev)))
    with pytest.raises(KeyboardInterrupt):
        write_lhe(tmp_path / name, events, init)
    assert len(calls) == 3 and os.listdir(tmp_path) == []


def test_bad_events_to_write(tmp_path, events, init):
    arrays = {k: getattr(events, k) for k in ARRAYS}
    with pytest.raises(LHEError, match=r"LHEEvents\.momenta has shape \(50, 8, 3\); expected \(50, 8, 4\)"):
        LHEEvents(**arrays | {"momenta": events.momenta[..., :3]})
    with pytest.raises(LHEError, match=r"LHEEvents\.rwgt has shape None; expected \(50, 1\)"):
        LHEEvents(**arrays, rwgt_ids=["a"])
    with pytest.raises(LHEError, match=r"rwgt ids \['a b'\] are empty or contain spaces"):
        write_lhe(tmp_path / "a.lhe", LHEEvents(**arrays, rwgt=events.rwgt, rwgt_ids=["a b", "c", "d"]), init)
    with pytest.raises(LHEError, match=r"rwgt_info has ids \['rwgt_1'\]; expected events.rwgt_ids"):
        write_lhe(tmp_path / "a.lhe", events, init, rwgt_info={"rwgt_1": ""})
    with pytest.raises(LHEError, match=r"rwgt_ids \('a', 'a'\) repeat an id"):
        LHEEvents(**arrays, rwgt=events.rwgt[:, :2], rwgt_ids=["a", "a"])
    with pytest.raises(LHEError, match="beam_ids has 3 entries; expected 2"):
        LHEInit(beam_ids=(1, 2, 3), processes=())
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ malformed files, one per kind
@pytest.fixture
def lines(tmp_path) -> list[str]:
    """A small valid file (3 events of 3 particles, 2 weights), as lines to corrupt."""
    events = make_events(np.random.default_rng(9), n=3, n_particles=3, ids=("rwgt_1", "rwgt_2"))
    return write_lhe(tmp_path / "ok.lhe", events, LHEInit.from_events(events)).read_text().splitlines(True)


def corrupt(tmp_path, lines: list[str], name: str = "bad.lhe"):
    path = tmp_path / name
    with (gzip.open if name.endswith(".gz") else open)(path, "wt") as f:
        f.write("".join(lines))
    return path


def nth(lines: list[str], prefix: str, n: int = 0) -> int:
    """0-based index of the n-th line starting with prefix (its line number is the index + 1)."""
    return [i for i, line in enumerate(lines) if line.lstrip().startswith(prefix)][n]


def expect_error(path, line: int, pattern: str) -> None:
    with pytest.raises(LHEError, match=rf"{path.name}: line {line}: .*{pattern}"):
        read_lhe(path)


@pytest.mark.parametrize("name", ["bad.lhe", "bad.lhe.gz"])
@pytest.mark.parametrize(("prefix", "n", "offset"), [("<wgt", 3, 0), ("<event>", 1, 3), ("<event>", 1, 1)])
def test_truncated_inside_an_event(tmp_path, lines, name, prefix, n, offset):
    cut = nth(lines, prefix, n) + offset  # the file ends in the weights, particles or after <event>
    expect_error(corrupt(tmp_path, lines[:cut], name), cut, "truncated")


def test_truncated_between_events_and_at_the_end(tmp_path, lines):
    expect_error(corrupt(tmp_path, lines[:-1]), len(lines) - 1, r"truncated.*</LesHouchesEvents>")
    cut = nth(lines, "</event>", 1) + 1
    expect_error(corrupt(tmp_path, lines[:cut]), cut, "truncated")
    i = nth(lines, "</event>", 1)  # </event> lost: the next <event> opens inside the event
    expect_error(corrupt(tmp_path, lines[:i] + lines[i + 1 :]), i + 1, r"truncated.*no </event>")


def test_truncated_gzip_stream(tmp_path, lines):
    data = gzip.compress("".join(lines).encode())
    path = tmp_path / "bad.lhe.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LHEError, match=r"bad\.lhe\.gz: line \d+: truncated"):
        read_lhe(path)


def test_missing_weight(tmp_path, lines):
    i = nth(lines, "<wgt id='rwgt_2'>", 1)
    start = nth(lines, "<event>", 1) + 1
    expect_error(
        corrupt(tmp_path, lines[:i] + lines[i + 1 :]), start, r"missing reweighting weights \['rwgt_2'\]"
    )


def test_event_without_rwgt_block(tmp_path, lines):
    i, j = nth(lines, "<rwgt>", 2), nth(lines, "</rwgt>", 2)
    start = nth(lines, "<event>", 2) + 1
    pattern = r"missing reweighting weights \['rwgt_1', 'rwgt_2'\]"
    expect_error(corrupt(tmp_path, lines[:i] + lines[j + 1 :]), start, pattern)


@pytest.mark.parametrize("value", ["1.2.3", "abc", "", "nan", "-inf"])
def test_bad_weight_value(tmp_path, lines, value):
    i = nth(lines, "<wgt id='rwgt_1'>", 2)
    lines[i] = f"<wgt id='rwgt_1'> {value} </wgt>\n"
    expect_error(corrupt(tmp_path, lines), i + 1, rf"weight 'rwgt_1' is '{value}'; expected a finite number")


@pytest.mark.parametrize("value", ["abc", "nan", "inf"])
def test_bad_event_weight(tmp_path, lines, value):
    i = nth(lines, "<event>", 1) + 1
    words = lines[i].split()
    lines[i] = " ".join([*words[:2], value, *words[3:]]) + "\n"
    expect_error(corrupt(tmp_path, lines), i + 1, rf"XWGTUP is '{value}'; expected a finite number")


def test_unknown_reweighting_id(tmp_path, lines):
    i = nth(lines, "<wgt id='rwgt_2'>", 1)
    lines[i] = lines[i].replace("rwgt_2", "rwgt_7")
    pattern = r"unknown reweighting id 'rwgt_7'; declared: \['rwgt_1', 'rwgt_2'\]"
    expect_error(corrupt(tmp_path, lines), i + 1, pattern)


def test_weights_without_initrwgt(tmp_path, lines):
    i, j = nth(lines, "<initrwgt>"), nth(lines, "</initrwgt>")
    expect_error(corrupt(tmp_path, lines[:i] + lines[j + 1 :]), nth(lines, "<wgt") - (j - i), "unknown")


@pytest.mark.parametrize(("change", "pattern"), [
    (lambda w: w[:-1], "12 fields; expected 13: IDUP ISTUP"),
    (lambda w: [*w, "0"], "14 fields; expected 13"),
    (lambda w: [*w[:8], "1.0e+0x", *w[9:]], "PUP3 is '1.0e\\+0x'; expected a finite number"),
    (lambda w: ["2.5", *w[1:]], "IDUP is '2.5'; expected an integer"),
    (lambda w: [*w[:9], "nan", *w[10:]], "PUP4 is 'nan'; expected a finite number"),
])  # fmt: skip
def test_bad_particle_line(tmp_path, lines, change, pattern, monkeypatch):
    monkeypatch.setattr(lhe, "_CHUNK", 2)  # the bad event is in the second chunk: line numbers still hold
    i = nth(lines, "<event>", 2) + 3  # the second particle of the third event
    lines[i] = " ".join(change(lines[i].split())) + "\n"
    expect_error(corrupt(tmp_path, lines), i + 1, pattern)


def test_fewer_particle_lines_than_nup(tmp_path, lines):
    i = nth(lines, "<event>", 1) + 3
    expect_error(corrupt(tmp_path, lines[:i] + lines[i + 1 :]), i + 2, "has 2 particle lines; expected NUP=3")


def test_more_particle_lines_than_nup(tmp_path, lines):
    i = nth(lines, "<event>", 1) + 3
    pattern = r"after NUP=3 particles, got .* \(more particles than NUP\?\)"
    expect_error(corrupt(tmp_path, lines[: i + 1] + lines[i:]), i + 3, pattern)


def test_mixed_multiplicities(tmp_path, lines):
    i = nth(lines, "<event>", 2)
    lines[i + 1] = "2" + lines[i + 1].lstrip()[1:]
    lines = lines[: i + 2] + lines[i + 3 :]
    expect_error(corrupt(tmp_path, lines), i + 2, "NUP=2; expected 3 as in the events before")


def test_bad_event_line_and_init(tmp_path, lines):
    i = nth(lines, "<event>", 1) + 1
    expect_error(corrupt(tmp_path, [*lines[:i], "3 1 1.0\n", *lines[i + 1 :]]), i + 1, "3 fields; expected 6")
    bad = [*lines[:i], "-3" + lines[i].lstrip()[1:], *lines[i + 1 :]]
    expect_error(corrupt(tmp_path, bad), i + 1, "NUP is '-3'; expected a non-negative integer")
    i = nth(lines, "<init>") + 1
    bad = [*lines[:i], " ".join([*lines[i].split()[:-1], "x"]) + "\n", *lines[i + 1 :]]
    expect_error(corrupt(tmp_path, bad), i + 1, "NPRUP is 'x'; expected an integer")


def test_not_an_lhe_file(tmp_path):
    path = tmp_path / "notes.lhe"
    path.write_text("hello\n<init>\n")
    expect_error(path, 1, 'expected <LesHouchesEvents version="3.0">')
    path.write_text('<LesHouchesEvents version="3.0">\n<header>\n')
    expect_error(path, 2, "truncated")
    with pytest.raises(StoreError, match=r"missing\.lhe does not exist"):
        read_lhe(tmp_path / "missing.lhe")
    assert issubclass(LHEError, ValueError)
