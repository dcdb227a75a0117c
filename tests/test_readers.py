"""Readers: input resolution, header parsing (driver) and the text units of all three formats."""
from __future__ import annotations

from pathlib import Path

import pytest

from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog import tasks as T
from galaxy_spark.errors import InputError
from tests.conftest import write_ascii, write_csv

VARIANTS = {"ID": "id", "zb_Min_1": "zb_min_1", "Tb_1": "tb_1", "M_Abs_1": "M_ABS_1"}


def _ccd_files(public_frame, survey, d: Path, rename_second=True):
    """Two CCD catalogues of pointing 1 in the public ASCII layout; the second with the
    alternative header spellings."""
    paths = []
    for k, ccd in enumerate((1, 2)):
        rows = public_frame[(public_frame["Pointing"] == "1") & (public_frame["CCD"] == str(ccd))]
        name = survey.ascii_file_pattern.format(field=2, pointing=1, ccd=ccd)
        paths.append(write_ascii(rows, d / name, rename=VARIANTS if (k and rename_second) else None))
    return paths


# ---- driver side (no Spark) ------------------------------------------------------------------
def test_resolve_inputs(tmp_path):
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / "b.csv").write_text("x\n")
    (tmp_path / ".hidden").write_text("x\n")
    assert R.resolve_inputs(str(tmp_path)) == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    assert R.resolve_inputs(str(tmp_path / "b*.csv")) == [str(tmp_path / "b.csv")]
    with pytest.raises(InputError, match="not found.*nope.csv"):
        R.resolve_inputs(str(tmp_path / "nope.csv"))
    with pytest.raises(InputError, match="no input file matches"):
        R.resolve_inputs(str(tmp_path / "*.cat"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no files"):
        R.resolve_inputs(str(tmp_path / "empty"))


def test_sniff_and_inspect_formats(tmp_path, public_frame, vizier_frame, survey, real_rows_path):
    csv = write_csv(public_frame.head(3), tmp_path / "x.csv", extra={"F814W_Image": "img.fits"})
    lay = R.inspect_file(str(csv), survey)
    assert lay.format == "csv" and lay.header_line == 1 and lay.n_fields == 114
    assert dict(lay.positions)["F814W_Image"] == 113
    viz = R.inspect_file(str(real_rows_path), survey)
    assert viz.format == "vizier" and viz.n_fields == len(vizier_frame.columns)
    pos = dict(viz.positions)
    assert pos["Stell_Mass_1"] == list(vizier_frame.columns).index("logM*1")
    assert pos[R.limit_flag_column("F365W")] == list(vizier_frame.columns).index("l_F365W")
    assert set(viz.ignored) >= {"_RAJ2000", "HField", "cnn", "Starflag"}
    asc = write_ascii(public_frame.head(3), tmp_path / "x.cat")
    la = R.inspect_file(str(asc), survey)
    assert la.format == "ascii" and la.n_fields == 113 and la.header_line == 0


def test_header_spellings_are_matched_case_insensitively(tmp_path, public_frame, survey):
    f = public_frame.head(2).rename(columns=VARIANTS)
    csv = write_csv(f, tmp_path / "v.csv")
    pos = dict(R.inspect_file(str(csv), survey).positions)
    for canon in VARIANTS:
        assert pos[canon] == list(public_frame.columns).index(canon)
    asc = write_ascii(public_frame.head(2), tmp_path / "v.cat", rename=VARIANTS)
    assert dict(R.inspect_file(str(asc), survey).positions) == dict(
        R.inspect_file(str(write_ascii(public_frame.head(2), tmp_path / "w.cat")), survey).positions)


def test_ascii_header_kinds(tmp_path, public_frame, survey):
    rows = public_frame.head(2)
    only_sex = write_ascii(rows, tmp_path / "s.cat", names_line=False)
    assert R.inspect_file(str(only_sex), survey).n_fields == 113
    bare = write_ascii(rows, tmp_path / "b.cat", names_line=False, sextractor=False)
    assert dict(R.inspect_file(str(bare), survey).positions)["dF954W"] == \
        list(public_frame.columns).index("dF954W")
    truth = rows.assign(z_true="0.5", type_true="3.0", logmass_true="10.1", is_star="0")
    lay = R.inspect_file(str(write_ascii(truth, tmp_path / "t.cat")), survey)
    assert dict(lay.positions)["is_star"] == 116
    lay = R.inspect_file(str(write_ascii(truth, tmp_path / "tb.cat", names_line=False,
                                         sextractor=False)), survey)
    assert lay.n_fields == 117 and dict(lay.positions)["z_true"] == 113


def test_missing_required_column_is_named(tmp_path, public_frame, survey, vizier_frame):
    csv = write_csv(public_frame.drop(columns=["M_Abs_1"]).head(2), tmp_path / "m.csv")
    with pytest.raises(InputError, match=r"m\.csv.*missing required column M_Abs_1"):
        R.inspect_file(str(csv), survey)
    viz = tmp_path / "viz.csv"
    vizier_frame.drop(columns=["logM*1"]).head(3).to_csv(viz, index=False)
    with pytest.raises(InputError, match=r"missing required column logM\*1"):
        R.inspect_file(str(viz), survey)
    with pytest.raises(InputError, match="unknown format"):
        R.inspect_file(str(csv), survey, "fits")


# ---- text units (what each ingest task reads) ------------------------------------------------
def _read_raw(spec, survey, unit_bytes=T.UNIT_BYTES):
    """Every input of `spec` read the way the ingest's tasks read it: (raw rows as a list of
    dicts, layouts, the input index)."""
    layouts = [R.inspect_file(p, survey) for p in R.resolve_inputs(spec)]
    index = T.index_inputs(layouts, survey, unit_bytes)
    rows = [r for u in index.units for r in T.raw_batch(T.read_unit_lines(u), u, survey).to_pylist()]
    return rows, layouts, index


def test_read_ascii_directory_and_glob(tmp_path, public_frame, survey):
    p1, p2 = _ccd_files(public_frame, survey, tmp_path / "cats")
    n1 = int(((public_frame["Pointing"] == "1") & (public_frame["CCD"] == "1")).sum())
    n2 = int(((public_frame["Pointing"] == "1") & (public_frame["CCD"] == "2")).sum())
    rows, layouts, index = _read_raw(str(tmp_path / "cats"), survey)
    stats = index.stats
    assert layouts[0].positions == layouts[1].positions      # spelling variants: the same columns
    assert len(rows) == n1 + n2
    assert {r[R.SOURCE_FILE] for r in rows} == {str(p1), str(p2)}
    assert all(r[R.N_FIELDS] == r[R.EXPECTED_FIELDS] == 113 for r in rows)
    header = 2 + 113 + 1                                # ## lines, SExtractor lines, name list
    first = public_frame[(public_frame["Pointing"] == "1") & (public_frame["CCD"] == "2")].iloc[3]
    hit = [r for r in rows if r["ID"] == first["ID"]]
    assert len(hit) == 1 and hit[0][R.SOURCE_FILE] == str(p2)
    assert hit[0][R.LINE_NUMBER] == header + 4
    assert (hit[0]["zb_Min_1"], hit[0]["Tb_1"], hit[0]["M_Abs_1"]) == \
        (first["zb_Min_1"], first["Tb_1"], first["M_Abs_1"])
    assert stats[str(p1)]["data_lines"] == n1 and stats[str(p2)]["lines"] == header + n2
    rows_g, _, _ = _read_raw(str(tmp_path / "cats" / "*C01*"), survey)
    assert len(rows_g) == n1


def test_read_vizier_real_rows(real_rows_path, survey):
    rows, layouts, index = _read_raw(str(real_rows_path), survey)
    assert layouts[0].format == "vizier"
    assert index.stats[str(real_rows_path)]["data_lines"] == 817
    r = next(r for r in rows if r["ID"] == "81421106512")
    assert (r["F365W"], r["dF365W"], r["F396W"], r[R.limit_flag_column("F365W")]) == \
        ("20.568", "0.064", "20.477", "")
    assert r[R.LINE_NUMBER] == 2 and r[R.INPUT_FORMAT] == "vizier"
    assert len(rows) == 817


def test_units_cut_at_line_starts_keep_exact_line_numbers(tmp_path, public_frame, survey):
    """Tiny units: every line is read once, by one unit, with its physical line number; CR, CRLF
    and LF line ends, a byte-order mark, comments and blank lines as a text reader sees them."""
    from tests.conftest import write_csv

    path = write_csv(public_frame.head(60), tmp_path / "u.csv")
    lines = path.read_bytes().split(b"\n")
    mixed = b"\xef\xbb\xbf" + lines[0] + b"\r\n" + b"\r\n".join(lines[1:20]) + b"\r\n# note\r\n\r\n" \
        + b"\r".join(lines[20:40]) + b"\r" + b"\n".join(lines[40:])
    path.write_bytes(mixed)
    want = mixed[3:].splitlines()
    for unit_bytes in (1, 700, 5000, 1 << 20):
        rows, _, index = _read_raw(str(path), survey, unit_bytes)
        assert index.stats[str(path)] == {"lines": len(want), "data_lines": 60}
        assert (len(index.units) > 10) == (unit_bytes < 5000)
        assert sorted(r[R.LINE_NUMBER] for r in rows) == [k + 1 for k, ln in enumerate(want)
                                                          if k > 0 and ln.strip() and not ln.startswith(b"#")]
        assert all(r[R.RAW_LINE].encode() == want[r[R.LINE_NUMBER] - 1] for r in rows)
        assert all(r[R.N_FIELDS] == r[R.EXPECTED_FIELDS] for r in rows)


def test_a_unit_writes_each_field_sorted_by_id(tmp_path, public_frame, survey):
    """A task on shuffled input (no Spark): one file per Field, rows in ID order, the content hash of
    what it wrote, and the duplicate marked in the quarantine."""
    import numpy as np
    import pyarrow.parquet as pq

    from tests.conftest import write_csv

    rows = public_frame.head(50).sample(frac=1.0, random_state=3)
    path = write_csv(rows, tmp_path / "shuffled.csv")
    lay = R.inspect_file(str(path), survey)
    index = T.index_inputs([lay], survey)
    dup = int(rows["ID"].iloc[0])
    res = T.ingest_unit(index.units[0], survey, np.array([dup]), str(tmp_path / "out"), str(tmp_path / "q"), "tok")
    files = sorted((tmp_path / "out").glob("Field=*/*.parquet"))
    assert len(files) == len(res["fields"]) >= 1
    for f in files:
        t = pq.read_table(f)
        ids = t.column("ID").to_numpy()
        assert (np.diff(ids) > 0).all() and "Field" not in t.column_names
        assert res["fields"][int(f.parent.name.split("=")[1])]["hash"] == T.content_hash(t)
    assert res["by_reason"] == {"duplicate_id": 1} and res["rows"] == 50
    assert sum(r["rows"] for r in res["fields"].values()) == 49
