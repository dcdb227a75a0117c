"""The ingest job: real rows, a broken file, atomic commit, CLI errors, mock end to end."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from galaxy_spark.io.manifest import MANIFEST
from galaxy_spark.catalog import cleaning as C
from galaxy_spark.catalog import ingest as I
from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog.schema import canonical_schema
from galaxy_spark.survey import DETECTED, NOT_DETECTED, NOT_OBSERVED
from tests.conftest import write_csv

REPO = Path(__file__).resolve().parent.parent
JOB = REPO / "jobs" / "ingest.py"


def _quiet(_msg):
    pass


def _read(spark, path):
    return spark.read.parquet(str(path))


# ---- the 817 real rows -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_ingest(spark, real_rows_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    m = I.run_ingest(str(real_rows_path), d / "catalog", d / "quarantine", thesis_clip=True,
                     spark=spark, echo=_quiet)
    return d, m


def test_real_rows_nothing_lost(real_ingest, spark, survey):
    d, m = real_ingest
    assert m["rows"] == {"read": 817, "written": 817, "quarantined": 0, "quarantined_by_reason": {}}
    assert m["fields"]["2"]["rows"] == 817 and len(m["fields"]["2"]["fingerprint"]) == 32
    assert m["inputs"][0]["format"] == "vizier" and len(m["inputs"][0]["sha256"]) == 64
    assert m["options"]["thesis_clip"] is True
    on_disk = json.loads((d / "catalog" / MANIFEST).read_text())
    assert on_disk["rows"] == m["rows"] and on_disk["fields"] == m["fields"]
    assert sorted(p.name for p in (d / "catalog").iterdir() if p.is_dir()) == ["Field=2"]
    df = _read(spark, d / "catalog")
    assert df.count() == 817
    expected = {f.name: f.dataType for f in canonical_schema(survey)}
    got = {f.name: f.dataType for f in df.schema}
    for name, typ in expected.items():
        assert got[name] == typ, name
    assert all(C.thesis_column(b) in got for b in survey.band_names)
    assert _read(spark, d / "quarantine").count() == 0


def test_real_rows_sentinels_decoded(real_ingest, spark):
    d, _ = real_ingest
    df = _read(spark, d / "catalog")
    r = df.where("ID = 81421106512").first()
    assert (r["F365W"], r["dF365W"], r["F365W_lim"], r["F365W_state"]) == (20.568, 0.064, None, DETECTED)
    assert (r["F814W"], r["dF814W"], r["Field"], r["Pointing"], r["CCD"]) == (19.005, 0.019, 2, 1, 1)
    assert (r["zb_1"], r["Tb_1"], r["Stell_Mass_1"], r["M_Abs_1"]) == (0.181, 7.532, 9.766, -19.73)
    # '<' in l_F365W: not detected, the 1-sigma limit 25.41 in F365W_lim
    r = df.where("ID = 81421202826").first()
    assert (r["F365W"], r["dF365W"], r["F365W_lim"], r["F365W_state"]) == (None, None, 25.41, NOT_DETECTED)
    assert r["F365W_thesis"] == 27.0
    # empty F768W and e_F768W: not observed
    r = df.where("ID = 81421202434").first()
    assert (r["F768W"], r["dF768W"], r["F768W_lim"], r["F768W_state"]) == (None, None, None, NOT_OBSERVED)
    assert r["F768W_thesis"] == 0.0
    counts = {row["F365W_state"]: row["count"] for row in df.groupBy("F365W_state").count().collect()}
    assert counts == {DETECTED: 599, NOT_DETECTED: 218}   # l_F365W: 599 blank, 218 '<'


def test_rerun_is_idempotent(real_ingest, spark, real_rows_path):
    d, first = real_ingest
    again = I.run_ingest(str(real_rows_path), d / "catalog", d / "quarantine", thesis_clip=True,
                         spark=spark, echo=_quiet)
    assert again["fields"] == first["fields"] and again["rows"] == first["rows"]
    assert _read(spark, d / "catalog").count() == 817
    assert sorted(p.name for p in d.iterdir()) == ["catalog", "quarantine"]   # no leftovers


# ---- a deliberately broken file --------------------------------------------------------------
def _line(row: dict, cols) -> str:
    return ",".join(str(row[c]) for c in cols)


def test_broken_file_goes_to_quarantine(spark, tmp_path, public_frame, survey):
    good = public_frame.head(10)
    cols = list(good.columns)
    path = write_csv(good, tmp_path / "broken.csv")
    base = good.iloc[5].to_dict()

    def row(k, **ov):
        r = {**base, "ID": str(survey.make_id(2, 1, 1, 90000 + k)), "Field": "2", "Pointing": "1",
             "CCD": "1"}
        r.update(ov)
        return r

    bad = [
        ("field_count", _line(row(1), cols).rsplit(",", 1)[0]),
        ("missing_value", _line(row(2, ID=""), cols)),
        ("non_numeric", _line(row(3, F365W="abc"), cols)),
        ("not_finite", _line(row(4, dF396W="NaN"), cols)),
        ("not_finite", _line(row(5, RA="inf"), cols)),
        ("bad_magnitude", _line(row(6, F427W="45.0"), cols)),
        ("bad_magnitude", _line(row(7, F427W="-99", dF427W="0.5"), cols)),
        ("bad_layout", _line(row(8, Field="9", ID=str(survey.make_id(9, 1, 1, 90008))), cols)),
        ("bad_layout", _line(row(9, CCD="5", ID=str(survey.make_id(2, 1, 5, 90009))), cols)),
        ("bad_id", _line(row(10, ID="8142110651"), cols)),
        ("duplicate_id", _line({**good.iloc[0].to_dict()}, cols)),   # copy of the first good row
    ]
    with open(path, "a") as fh:
        for _, ln in bad:
            fh.write(ln + "\n")
    m = I.run_ingest(str(path), tmp_path / "cat", tmp_path / "q", spark=spark, echo=_quiet)
    assert m["rows"]["read"] == 21
    assert m["rows"]["written"] == 9            # both copies of the duplicated ID are rejected
    assert m["rows"]["quarantined"] == 12
    assert m["rows"]["quarantined_by_reason"] == {
        "field_count": 1, "missing_value": 1, "non_numeric": 1, "not_finite": 2,
        "bad_magnitude": 2, "bad_layout": 2, "bad_id": 1, "duplicate_id": 2}
    q = _read(spark, tmp_path / "q").orderBy(R.LINE_NUMBER).collect()
    assert [r[R.LINE_NUMBER] for r in q] == [2] + list(range(12, 23))
    assert [r[C.REASON] for r in q] == ["duplicate_id"] + [reason for reason, _ in bad]
    assert all(r[R.SOURCE_FILE] == str(path) and r[C.REASON_DETAIL] for r in q)
    by_line = {r[R.LINE_NUMBER]: r for r in q}
    assert by_line[14]["F365W"] == "abc" and by_line[14][R.RAW_LINE] == bad[2][1]
    assert by_line[12][R.N_FIELDS] == 112 and by_line[12][R.RAW_LINE] == bad[0][1]
    assert "8142110651" in by_line[21][C.REASON_DETAIL]
    assert _read(spark, tmp_path / "cat").count() == 9


def test_last_line_without_newline_is_named_and_strict_quarantines_it(spark, tmp_path, public_frame):
    """A copy cut short ends inside its last line: that line is named (file, line number) in the
    summary and the manifest; --strict quarantines it as no_final_newline."""
    path = write_csv(public_frame.head(6), tmp_path / "cut.csv")
    text = path.read_text()
    path.write_text(text.rstrip("\n"))            # valid values, but nothing says the line is complete
    lines = []
    m = I.run_ingest(str(path), tmp_path / "cat", tmp_path / "q", spark=spark, echo=lines.append)
    assert m["inputs"][0]["no_final_newline"] == 7 and m["rows"]["written"] == 6
    assert any("line 7: no final newline: the file may be truncated" in ln for ln in lines)
    strict = I.run_ingest(str(path), tmp_path / "cat2", tmp_path / "q2", spark=spark, echo=_quiet, strict=True)
    assert strict["rows"]["written"] == 5 and strict["rows"]["quarantined_by_reason"] == {"no_final_newline": 1}
    q = _read(spark, tmp_path / "q2").collect()
    assert [(r[R.LINE_NUMBER], r[C.REASON]) for r in q] == [(7, "no_final_newline")]
    # a file that ends with its newline is not named
    path.write_text(text)
    whole = I.run_ingest(str(path), tmp_path / "cat3", tmp_path / "q3", spark=spark, echo=_quiet, strict=True)
    assert "no_final_newline" not in whole["inputs"][0] and whole["rows"]["written"] == 6


def test_many_splits_exact_lines_duplicates_and_fingerprints(spark, tmp_path, public_frame,
                                                               survey):
    """Tiny splits: line numbers stay exact across split borders, a duplicate far apart is found
    by the one light pass, and the fingerprints observed during the write equal those of a full
    read-back of the written Parquet."""
    frame = public_frame.head(400)
    cols = list(frame.columns)
    path = write_csv(frame, tmp_path / "split.csv")
    with open(path, "a") as fh:
        fh.write("\n# a comment\n")
        fh.write(_line({**frame.iloc[3].to_dict()}, cols) + "\n")     # line 404: copy of line 5
        fh.write(_line({**frame.iloc[7].to_dict(), "F365W": "abc"}, cols) + "\n")
    m = I.run_ingest(str(path), tmp_path / "cat", tmp_path / "q", spark=spark, echo=_quiet, unit_bytes=16 << 10)
    assert len(list((tmp_path / "cat").glob("Field=*/*.parquet"))) > 3      # many units wrote it
    assert m["rows"] == {"read": 402, "written": 398, "quarantined": 4,
                         "quarantined_by_reason": {"duplicate_id": 3, "non_numeric": 1}}
    q = _read(spark, tmp_path / "q").orderBy(R.LINE_NUMBER).collect()
    assert [(r[R.LINE_NUMBER], r[C.REASON]) for r in q] == [
        (5, "duplicate_id"), (9, "duplicate_id"), (404, "duplicate_id"), (405, "non_numeric")]
    assert "F365W=abc" in q[3][C.REASON_DETAIL]
    with open(path) as fh:
        lines = fh.read().splitlines()
    assert all(r[R.RAW_LINE] == lines[r[R.LINE_NUMBER] - 1] for r in q)
    import pyarrow.dataset as pds

    from galaxy_spark.catalog.tasks import content_hash

    names = [f.name for f in canonical_schema(survey)]
    back = _read(spark, tmp_path / "cat").select(*names)
    assert back.schema.simpleString() == m["schema"]
    for f, info in m["fields"].items():        # the fingerprint is that of the files' content
        t = pds.dataset(tmp_path / "cat" / f"Field={f}", format="parquet").to_table()
        assert info["rows"] == t.num_rows
        assert info["fingerprint"] == I._fingerprint(m["schema"], t.num_rows, content_hash(t))
        ids = t.column("ID").to_numpy()
        assert len(set(ids)) == len(ids)


# ---- commit protocol -------------------------------------------------------------------------
def test_failed_run_leaves_previous_catalogue(spark, tmp_path, public_frame, monkeypatch):
    path = write_csv(public_frame.head(5), tmp_path / "in.csv")
    first = I.run_ingest(str(path), tmp_path / "cat", tmp_path / "q", spark=spark, echo=_quiet)
    before = (tmp_path / "cat" / MANIFEST).read_text()

    def boom(*a, **k):
        raise RuntimeError("simulated crash after the catalogue was staged")

    monkeypatch.setattr(I, "parquet_rows", boom)          # the accounting, after both outputs are staged
    write_csv(public_frame.head(8), path)
    with pytest.raises(RuntimeError, match="simulated crash"):
        I.run_ingest(str(path), tmp_path / "cat", tmp_path / "q", spark=spark, echo=_quiet)
    assert (tmp_path / "cat" / MANIFEST).read_text() == before
    assert _read(spark, tmp_path / "cat").count() == first["rows"]["written"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat", "in.csv", "q"]


def test_recover_after_crash_between_renames(tmp_path):
    target = tmp_path / "catalog"
    old = tmp_path / "catalog.old-abc"
    old.mkdir()
    (old / MANIFEST).write_text("{}")
    stale = tmp_path / "catalog.staging-999999999-abc"   # no such pid
    stale.mkdir()
    from galaxy_spark.io.commit import recover

    notes = recover(target)
    assert (target / MANIFEST).exists() and not old.exists() and not stale.exists()
    assert len(notes) == 2


# ---- the command line ------------------------------------------------------------------------
def _job(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(JOB), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def test_cli_missing_input(tmp_path):
    p = _job("--input", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "c"),
             "--quarantine", str(tmp_path / "q"))
    assert p.returncode == 2
    assert "error: input not found" in p.stderr and "nope.csv" in p.stderr
    assert "Traceback" not in p.stderr
    p = _job("--input", str(tmp_path / "*.cat"), "--out", str(tmp_path / "c"),
             "--quarantine", str(tmp_path / "q"))
    assert p.returncode == 2 and "no input file matches" in p.stderr


def test_cli_missing_column_and_unreadable(tmp_path, public_frame):
    bad = write_csv(public_frame.drop(columns=["Odds_1"]).head(2), tmp_path / "nocol.csv")
    p = _job("--input", str(bad), "--out", str(tmp_path / "c"), "--quarantine", str(tmp_path / "q"))
    assert p.returncode == 2
    assert "nocol.csv" in p.stderr and "Odds_1" in p.stderr and "Traceback" not in p.stderr
    if os.geteuid() != 0:  # root reads everything
        locked = write_csv(public_frame.head(2), tmp_path / "locked.csv")
        locked.chmod(0)
        p = _job("--input", str(locked), "--out", str(tmp_path / "c"), "--quarantine", str(tmp_path / "q"))
        assert p.returncode == 2 and "locked.csv" in p.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    p = _job("--input", str(empty), "--out", str(tmp_path / "c"), "--quarantine", str(tmp_path / "q"))
    assert p.returncode == 2 and "empty.csv" in p.stderr and "empty" in p.stderr


# ---- mock -> ingest, end to end through real Spark -------------------------------------------
@pytest.fixture(scope="module")
def mock_main():
    """jobs/mock.py's main() in this process (the mock's model set-up is then made once per
    process, not once per run; tests/test_mock.py runs the command itself in a fresh process)."""
    spec = importlib.util.spec_from_file_location("mock_job", REPO / "jobs" / "mock.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.mark.parametrize("fmt", ["csv", "ascii"])
def test_mock_to_ingest(spark, tmp_path, fmt, survey, mock_main):
    out = tmp_path / ("mock.csv" if fmt == "csv" else "mock_ascii")
    assert mock_main(["--objects", "300", "--seed", "3", "--format", fmt, "--out", str(out), "--quiet"]) == 0
    m = I.run_ingest(str(out), tmp_path / "cat", tmp_path / "q", spark=spark, echo=_quiet)
    assert m["rows"]["read"] == 300
    assert m["rows"]["written"] + m["rows"]["quarantined"] == 300
    assert m["rows"]["written"] == 300, m["rows"]["quarantined_by_reason"]
    df = _read(spark, tmp_path / "cat")
    truth = [c.name for c in survey.truth]
    assert df.where(" AND ".join(f"{t} IS NULL" for t in truth)).count() == 0
    assert {int(f) for f in m["fields"]} <= set(survey.fields)


def test_survey_given_by_path_needs_no_survey_later(spark, tmp_path, public_frame):
    """Ingested with --survey PATH: the manifest keeps the file, so the catalogue's survey resolves
    without --survey (train, score, evaluate and reprocess all ask `catalogue_survey`)."""
    from galaxy_spark.io.manifest import catalogue_survey
    from galaxy_spark.survey import survey_file

    path = tmp_path / "elsewhere" / "my_survey.yaml"
    path.parent.mkdir()
    path.write_text(survey_file("alhambra").read_text().replace("name: alhambra", "name: my_survey", 1))
    src = write_csv(public_frame.head(20), tmp_path / "rows.csv")
    m = I.run_ingest(str(src), tmp_path / "cat", tmp_path / "q", survey=str(path), spark=spark, echo=_quiet)
    assert m["survey"] == "my_survey" and m["survey_file"]["path"] == str(path.resolve())
    assert catalogue_survey(str(tmp_path / "cat")).name == "my_survey"
