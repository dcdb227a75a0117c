"""Nothing lost, ever: paths and inputs that used to destroy a catalogue or scores, or end in a
stack trace, are refused before any work or handled with nothing lost."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from galaxy_spark.catalog import ingest as I
from galaxy_spark.errors import InputError
from galaxy_spark.io import commit as K
from galaxy_spark.io.manifest import MANIFEST
from galaxy_spark.io.paths import check_job_paths, manifest_kind
from tests.conftest import write_csv

REPO = Path(__file__).resolve().parent.parent


def _quiet(_msg):
    pass


def _rows(spark, path) -> int:
    return spark.read.parquet(str(path)).count()


def _job(name, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "jobs" / f"{name}.py"), *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def good_template(spark, tmp_path_factory, public_frame):
    """One committed catalogue + quarantine of 40 real rows (ingested once per module)."""
    d = tmp_path_factory.mktemp("good")
    src = write_csv(public_frame.head(40), d / "good.csv")
    m = I.run_ingest(str(src), d / "cat", d / "q", spark=spark, echo=_quiet)
    assert m["rows"]["written"] == 40
    return d


@pytest.fixture()
def good(good_template, tmp_path):
    """A private copy of the template: the CSV, its catalogue and quarantine."""
    for name in ("good.csv", "cat", "q"):
        src = good_template / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    return {"csv": tmp_path / "good.csv", "cat": tmp_path / "cat", "q": tmp_path / "q",
            "manifest": (tmp_path / "cat" / MANIFEST).read_text(), "template": good_template}


def _unchanged(spark, good):
    assert (good["cat"] / MANIFEST).read_text() == good["manifest"]
    assert _rows(spark, good["cat"]) == 40
    leftovers = [p.name for p in good["cat"].parent.iterdir()
                 if ".staging-" in p.name or p.name.startswith(("_old-", K.JOURNAL_PREFIX)) or ".old-" in p.name]
    assert leftovers == []


# ---- 1. outputs inside inputs, inputs inside outputs, overlapping outputs ---------------------
def test_scores_inside_the_catalogue_are_refused_before_any_work(good, tmp_path):
    p = _job("score", "--catalog", str(good["cat"]), "--out", str(good["cat"] / "scores"))
    assert p.returncode == 2, p.stderr
    assert "error:" in p.stderr and "inside" in p.stderr and "Traceback" not in p.stderr
    assert not (good["cat"] / "scores").exists()
    p = _job("score", "--catalog", str(good["cat"]), "--out", str(good["cat"].parent))
    assert p.returncode == 2 and "replace the input" in p.stderr


def test_ingest_into_an_existing_catalogue_subdirectory_is_refused(spark, good):
    with pytest.raises(InputError, match="inside the catalogue"):
        I.run_ingest(str(good["csv"]), good["cat"] / "nested", good["q"].parent / "q2", spark=spark, echo=_quiet)
    with pytest.raises(InputError, match="inside"):
        I.run_ingest(str(good["csv"]), good["cat"], good["cat"] / "quarantine", spark=spark, echo=_quiet)
    with pytest.raises(InputError, match="same path"):
        I.run_ingest(str(good["csv"]), good["cat"], good["cat"], spark=spark, echo=_quiet)
    _unchanged(spark, good)


def test_input_inside_output_is_refused(spark, good):
    inside = write_csv(__import__("pandas").read_csv(good["csv"], dtype=str).head(3), good["cat"] / "x.csv")
    try:
        with pytest.raises(InputError, match="replace the input"):
            I.run_ingest(str(inside), good["cat"], good["q"], spark=spark, echo=_quiet)
    finally:
        inside.unlink()
    _unchanged(spark, good)


def test_output_of_the_wrong_kind_is_refused(spark, good, tmp_path):
    # the quarantine given as the catalogue and the reverse
    with pytest.raises(InputError, match="is a quarantine, not a catalogue"):
        I.run_ingest(str(good["csv"]), good["q"], tmp_path / "q3", spark=spark, echo=_quiet)
    # a directory galaxy_spark did not write
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    with pytest.raises(InputError, match="not a galaxy_spark catalogue"):
        I.run_ingest(str(good["csv"]), mine, tmp_path / "q4", spark=spark, echo=_quiet)
    assert (mine / "chapter1.tex").read_text() == "precious"
    _unchanged(spark, good)


def test_out_naming_an_existing_regular_file_is_refused(spark, good, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    p = _job("ingest", "--input", str(good["csv"]), "--out", str(f), "--quarantine", str(tmp_path / "qq"))
    assert p.returncode == 2 and "not a directory" in p.stderr and "Traceback" not in p.stderr
    assert f.read_text() == "keep me" and sorted(x.name for x in tmp_path.iterdir() if "notes" in x.name) == ["notes.txt"]


def test_path_guard_unit_cases(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "_manifest.json").write_text(json.dumps({"kind": "catalog"}))
    assert manifest_kind(tmp_path / "cat") == "catalog"
    check_job_paths({"--catalog": tmp_path / "cat"}, {"--out": (tmp_path / "scores", "scores")})
    with pytest.raises(InputError, match="outputs must not overlap"):
        check_job_paths({}, {"--out": (tmp_path / "a", "catalog"), "--quarantine": (tmp_path / "a" / "b", "quarantine")})
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_text("x")
    check_job_paths({"--input": str(tmp_path / "raw" / "*.csv")}, {"--out": (tmp_path / "raw" / "c", "catalog")})
    with pytest.raises(InputError, match="matches --input's pattern"):    # the next run would read it
        check_job_paths({"--input": str(tmp_path / "raw" / "*")}, {"--out": (tmp_path / "raw" / "c", "catalog")})
    with pytest.raises(InputError, match="replace the input"):            # a file the glob matches
        check_job_paths({"--input": str(tmp_path / "*" / "*.csv")}, {"--out": (tmp_path / "raw", "catalog")})
    legacy = tmp_path / "old_scores"
    legacy.mkdir()
    (legacy / "_manifest.json").write_text(json.dumps({"manifest_version": 1, "fields": {"2": {"model": {}}}}))
    assert manifest_kind(legacy) == "scores"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "_manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="unreadable"):
        check_job_paths({}, {"--out": (tmp_path / "broken", "scores")})


# ---- 2. an input with no valid rows, or far fewer rows, never empties a catalogue -------------
def test_header_only_input_does_not_empty_the_catalogue(spark, good, public_frame, tmp_path):
    header = write_csv(public_frame.head(0), tmp_path / "header_only.csv")
    with pytest.raises(I.ShrinkRefused, match=r"no valid row: 0 rows read.*now holds 40 rows.*--replace"):
        I.run_ingest(str(header), good["cat"], good["q"], spark=spark, echo=_quiet)
    _unchanged(spark, good)


def test_all_rows_quarantined_is_refused_and_says_why(spark, good, public_frame, tmp_path):
    bad = public_frame.head(5).copy()
    bad["RA"] = "not-a-number"
    src = write_csv(bad, tmp_path / "bad.csv")
    with pytest.raises(I.ShrinkRefused, match="5 quarantined.*non_numeric"):
        I.run_ingest(str(src), good["cat"], good["q"], spark=spark, echo=_quiet)
    _unchanged(spark, good)
    # --replace commits it: an empty catalogue (its manifest says so) and the 5 rows in quarantine
    m = I.run_ingest(str(src), good["cat"], good["q"], spark=spark, echo=_quiet, replace=True)
    assert m["rows"] == {**m["rows"], "read": 5, "written": 0, "quarantined": 5}
    assert _rows(spark, good["q"]) == 5 and json.loads((good["cat"] / MANIFEST).read_text())["rows"]["written"] == 0


def test_large_drop_needs_replace(spark, good, public_frame, tmp_path):
    few = write_csv(public_frame.head(10), tmp_path / "few.csv")
    with pytest.raises(I.ShrinkRefused, match="would hold 10 rows but .* holds 40.*30 rows \\(75%\\) would be lost"):
        I.run_ingest(str(few), good["cat"], good["q"], spark=spark, echo=_quiet)
    _unchanged(spark, good)
    m = I.run_ingest(str(few), good["cat"], good["q"], spark=spark, echo=_quiet, replace=True)
    assert m["rows"]["written"] == 10 and _rows(spark, good["cat"]) == 10


def test_binary_file_is_an_error_naming_it(spark, good, tmp_path):
    junk = tmp_path / "catalogue.csv"
    junk.write_bytes(bytes(range(256)) * 300)
    with pytest.raises(InputError, match=r"catalogue.csv.*not a text file: NUL byte"):
        I.run_ingest(str(junk), good["cat"], good["q"], spark=spark, echo=_quiet)
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(good["csv"].read_bytes().replace(b"\n", "\n# caf\u00e9\n".encode("latin-1"), 1))
    with pytest.raises(InputError, match=r"latin1.csv.*not UTF-8 text.*line 2"):
        I.run_ingest(str(latin), good["cat"], good["q"], spark=spark, echo=_quiet)
    _unchanged(spark, good)


# ---- 4. byte-order marks -------------------------------------------------------------------------
def test_utf8_bom_is_accepted_and_utf16_is_refused_clearly(spark, good, tmp_path, fixture_writers, public_frame):
    bom = tmp_path / "excel.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + good["csv"].read_bytes())
    m = I.run_ingest(str(bom), tmp_path / "c_bom", tmp_path / "q_bom", spark=spark, echo=_quiet)
    assert m["rows"] == {"read": 40, "written": 40, "quarantined": 0, "quarantined_by_reason": {}}
    asc = fixture_writers["ascii"](public_frame.head(12), tmp_path / "a.cat")
    asc_bom = tmp_path / "bom.cat"
    asc_bom.write_bytes(b"\xef\xbb\xbf" + asc.read_bytes())
    m = I.run_ingest(str(asc_bom), tmp_path / "c_abom", tmp_path / "q_abom", spark=spark, echo=_quiet)
    assert (m["rows"]["read"], m["rows"]["written"]) == (12, 12)
    u16 = tmp_path / "utf16.csv"
    u16.write_bytes(good["csv"].read_text().encode("utf-16"))
    with pytest.raises(InputError, match="utf16.csv.*UTF-16 encoded; save it as UTF-8"):
        I.run_ingest(str(u16), tmp_path / "c16", tmp_path / "q16", spark=spark, echo=_quiet)


# ---- the catalogue and its quarantine are one unit ------------------------------------------------
def test_manifests_name_each_other_and_one_commit(good_template):
    d = good_template
    cat = json.loads((d / "cat" / MANIFEST).read_text())
    q = json.loads((d / "q" / MANIFEST).read_text())
    assert cat["kind"] == "catalog" and q["kind"] == "quarantine"
    assert cat["commit"] == q["commit"] and cat["quarantine"] == str(d / "q") and q["catalog"] == str(d / "cat")


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_crash_mid_commit_rolls_the_pair_forward(tmp_path, monkeypatch, fail_at):
    pairs = []
    for name in ("catalog", "quarantine"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "v").write_text("old")
        st = K.staging_dir(tmp_path / name, "tok")
        st.mkdir()
        (st / "v").write_text("new")
        pairs.append((st, tmp_path / name))
    calls = {"n": 0}
    real = os.rename

    def crashing_rename(a, b):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise KeyboardInterrupt("simulated crash")
        real(a, b)

    monkeypatch.setattr(K.os, "rename", crashing_rename)
    with pytest.raises(KeyboardInterrupt):
        K.commit_together(pairs, "tok")
    monkeypatch.setattr(K.os, "rename", real)
    # the same process restarting: its own staging directories count as stale only without a journal
    K.recover(tmp_path / "quarantine")
    assert (tmp_path / "catalog" / "v").read_text() == "new"
    assert (tmp_path / "quarantine" / "v").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog", "quarantine"]


def test_crash_before_the_journal_keeps_the_old_pair(tmp_path):
    for name in ("catalog", "quarantine"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "v").write_text("old")
        st = tmp_path / f"{name}.staging-999999999-tok"      # a dead process's staging
        st.mkdir()
        (st / "v").write_text("new")
    K.recover(tmp_path / "catalog")
    K.recover(tmp_path / "quarantine")
    assert (tmp_path / "catalog" / "v").read_text() == "old" and (tmp_path / "quarantine" / "v").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog", "quarantine"]


# ---- 5. every option of every job has help text and shows its default ---------------------------
JOBS = ["ingest", "score", "train", "evaluate", "reprocess", "realdata_check", "mock"]


def _parser_of(job: str, monkeypatch) -> argparse.ArgumentParser:
    seen = {}

    def capture(self, args=None, namespace=None):
        seen["parser"] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    spec = importlib.util.spec_from_file_location(f"job_{job}", REPO / "jobs" / f"{job}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    entry = getattr(mod, "parse_args", None)
    with pytest.raises(SystemExit):
        if entry is not None:
            entry([])
        else:
            mod.main.__wrapped__([]) if hasattr(mod.main, "__wrapped__") else mod.main([])
    return seen["parser"]


@pytest.mark.parametrize("job", JOBS)
def test_every_option_has_help_and_its_default(job, monkeypatch):
    from galaxy_spark.cli import HelpFormatter

    p = _parser_of(job, monkeypatch)
    assert p.formatter_class is HelpFormatter
    for a in p._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        assert a.help and a.help.strip(), f"{job} {a.option_strings}: no help text"
    monkeypatch.undo()
    text = p.format_help()
    for a in p._actions:
        if a.default not in (None, False, argparse.SUPPRESS) and not isinstance(a, argparse._HelpAction):
            # argparse wraps long defaults (even at hyphens): compare without whitespace
            assert f"(default:{a.default})".replace(" ", "") in "".join(text.split()), f"{job} {a.option_strings}"


# ---- the probe's smaller defects: clear errors before any work, no side effects -----------------
def test_bad_batch_size_is_a_usage_error_before_spark(good, tmp_path):
    for bad in ("-5", "0", "many"):
        p = _job("score", "--catalog", str(good["cat"]), "--out", str(tmp_path / "s"), "--batch-size", bad)
        assert p.returncode == 2 and "--batch-size" in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert not (tmp_path / "s").exists()


def test_missing_tracking_store_is_named_and_not_created(good, tmp_path):
    """Run from a directory without the store: the job names the store it looked in and leaves no
    empty mlflow.db behind."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(REPO)
    p = subprocess.run([sys.executable, str(REPO / "jobs" / "score.py"), "--catalog", str(good["cat"]),
                        "--out", str(tmp_path / "s")], capture_output=True, text=True, env=env, cwd=tmp_path,
                       timeout=300)
    assert p.returncode == 2, p.stderr
    assert p.stdout.splitlines()[0] == "score: MLflow tracking store sqlite:///mlflow.db"
    assert "sqlite:///mlflow.db does not exist" in p.stderr and str(tmp_path / "mlflow.db") in p.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "s").exists()
