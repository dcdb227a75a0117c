"""Storage through Hadoop's FileSystem API (galaxy_spark/io/fs.py): the commit protocol, recovery
after a crash, manifests, lock and ledger on ``file://`` URIs, which go through the shared Spark
session's JVM FileSystem, not Python's `os`; then scoring and ingest with URI outputs against the
same jobs with plain paths.

Proof that the JVM did the writing: Hadoop's local file system is a checksummed one, so every file
it creates gets a ``.<name>.crc`` sidecar, which Python's `os` never writes."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from galaxy_spark.errors import InputError
from galaxy_spark.estimate import job as J
from galaxy_spark.io import commit as K
from galaxy_spark.io import arrow as AR
from galaxy_spark.io import fs as FS
from galaxy_spark.io import lock as L
from galaxy_spark.io.manifest import (
    MANIFEST,
    manifest_sha256,
    read_manifest,
    write_manifest,
)
from galaxy_spark.io.paths import check_job_paths


def uri(p: Path) -> str:
    """``file:///…`` for a local path: a string `os` cannot open (it would be a relative path
    starting with ``file:``)."""
    return p.absolute().as_uri()


def crc(p: Path) -> Path:
    return p.with_name(f".{p.name}.crc")


def visible(d: Path) -> list[str]:
    """Names in `d`, without Hadoop's checksum sidecars."""
    return sorted(n for n in os.listdir(d) if not n.endswith(".crc"))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in `tmp_path`: a ``file:`` URI handed to `os` by mistake would create ./file:/…"""
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert not (tmp_path / "file:").exists(), "a file:// URI was used as a plain path"


# ---- the store -----------------------------------------------------------------------------------
def test_a_uri_goes_to_hadoop_and_a_plain_path_to_os(spark, in_tmp):
    assert isinstance(FS.store(in_tmp / "x"), FS.LocalStore)
    assert isinstance(FS.store(str(in_tmp / "x")), FS.LocalStore)
    assert isinstance(FS.store(uri(in_tmp / "x")), FS.HadoopStore)
    assert isinstance(FS.store(in_tmp / "x", spark=spark), FS.HadoopStore)   # a session given: Hadoop too
    with pytest.raises(TypeError):
        os.fspath(FS.location(uri(in_tmp / "x")))          # a URI location is never handed to os

    s = FS.store(uri(in_tmp))
    d = FS.location(uri(in_tmp / "a" / "b"))
    s.mkdirs(d)
    s.write_atomic(d / "f.json", b'{"v": 1}')
    assert (in_tmp / "a" / "b" / "f.json").read_bytes() == b'{"v": 1}'
    assert crc(in_tmp / "a" / "b" / "f.json").exists()     # written by Hadoop's LocalFileSystem
    s.write_atomic(d / "f.json", b'{"v": 2}')                # replaces (rename with OVERWRITE)
    assert s.read_bytes(d / "f.json") == b'{"v": 2}' and visible(in_tmp / "a" / "b") == ["f.json"]
    assert s.is_dir(d) and s.is_file(d / "f.json") and not s.exists(d / "nope")
    assert [p.name for p in s.list(d)] == ["f.json"]                 # Hadoop hides its .crc files
    assert abs(s.mtime(d / "f.json") - os.stat(in_tmp / "a" / "b" / "f.json").st_mtime) < 1.5
    assert s.create_exclusive(d / "lock", b"1") and not s.create_exclusive(d / "lock", b"2")
    assert s.read_bytes(d / "lock") == b"1"
    s.append(d / "log", b"a\n")
    s.append(d / "log", b"b\n")
    assert (in_tmp / "a" / "b" / "log").read_bytes() == b"a\nb\n"
    s.rename(d / "log", d / "log2")
    with pytest.raises(FileExistsError):
        s.rename(d / "log2", d / "lock")                     # never into or over an existing target
    s.delete(d)
    assert not (in_tmp / "a" / "b").exists()
    s.delete(d)                                              # gone already: nothing


def test_a_store_that_cannot_be_reached_is_a_clear_error(spark):
    with pytest.raises(FS.StorageError, match=r"nosuch://h/x.*No FileSystem for scheme"):
        FS.store("nosuch://h/x").exists("nosuch://h/x")


def test_uri_paths_and_arrow_mapping():
    u = FS.location("hdfs://nn:8020/data/scores/")
    assert str(u) == "hdfs://nn:8020/data/scores" and u.name == "scores"
    assert str(u / "Field=2") == "hdfs://nn:8020/data/scores/Field=2" and (u / "Field=2").parent == u
    assert str(K.staging_dir(u, "tok")) == f"hdfs://nn:8020/data/scores.staging-{os.getpid()}-tok"
    assert FS.location("file:/tmp/x") == FS.location("file:///tmp/x")
    assert AR.arrow_uri("s3a://bucket/a/b") == "s3://bucket/a/b"
    assert AR.arrow_uri("abfs://c@acct.dfs.core.windows.net/a") == "abfs://c@acct.dfs.core.windows.net/a"
    assert not FS.is_uri("C:\\data") and not FS.is_uri("data/x") and FS.is_uri("s3a://b/k")


# ---- the commit protocol -------------------------------------------------------------------------
def _pair(tmp: Path, name: str, token: str = "tok"):
    """An old committed directory and its staged replacement, both as URIs."""
    (tmp / name).mkdir()
    (tmp / name / "v").write_text("old")
    st = K.staging_dir(uri(tmp / name), token)
    assert isinstance(st, FS.UriPath)
    local = Path(st.path)
    local.mkdir()
    (local / "v").write_text("new")
    return st, FS.location(uri(tmp / name))


def test_commit_together_on_uris(spark, in_tmp, monkeypatch):
    pairs = [_pair(in_tmp, "catalog"), _pair(in_tmp, "quarantine")]
    journals, real = [], FS.HadoopStore.write_atomic

    def spy(self, p, data):
        journals.append((FS.location(p).name, (in_tmp / FS.location(p).name).exists()))
        real(self, p, data)
        assert crc(in_tmp / FS.location(p).name).exists()        # written by Hadoop's LocalFileSystem

    monkeypatch.setattr(FS.HadoopStore, "write_atomic", spy)
    K.commit_together(pairs, "tok")
    assert journals == [("_commit-catalog-tok.json", False), ("_commit-quarantine-tok.json", False)]
    assert (in_tmp / "catalog" / "v").read_text() == "new" and (in_tmp / "quarantine" / "v").read_text() == "new"
    assert sorted(os.listdir(in_tmp)) == ["catalog", "quarantine"]    # journals deleted with their .crc


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_crash_mid_commit_on_uris_rolls_forward(spark, in_tmp, monkeypatch, fail_at):
    pairs = [_pair(in_tmp, "catalog"), _pair(in_tmp, "quarantine")]
    real, calls = FS.HadoopStore.rename, {"n": 0}

    def crashing(self, a, b):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise KeyboardInterrupt("simulated crash")
        real(self, a, b)

    monkeypatch.setattr(FS.HadoopStore, "rename", crashing)
    with pytest.raises(KeyboardInterrupt):
        K.commit_together(pairs, "tok")
    monkeypatch.setattr(FS.HadoopStore, "rename", real)
    assert calls["n"] == fail_at                                 # the renames did go through Hadoop
    notes = K.recover(uri(in_tmp / "quarantine"))
    assert any("finished the interrupted commit" in n for n in notes)
    assert (in_tmp / "catalog" / "v").read_text() == "new" and (in_tmp / "quarantine" / "v").read_text() == "new"
    assert visible(in_tmp) == ["catalog", "quarantine"]


def test_crash_before_the_journal_keeps_the_old_output_on_uris(spark, in_tmp):
    (in_tmp / "catalog").mkdir()
    (in_tmp / "catalog" / "v").write_text("old")
    (in_tmp / "catalog.staging-999999999-tok").mkdir()            # a dead process's staging
    notes = K.recover(uri(in_tmp / "catalog"))
    assert notes == ["removed stale staging directory catalog.staging-999999999-tok"]
    assert (in_tmp / "catalog" / "v").read_text() == "old" and visible(in_tmp) == ["catalog"]


def test_field_commit_interrupted_on_uris_is_rolled_forward(spark, in_tmp, monkeypatch):
    out = in_tmp / "scores"
    for f in (2, 3):
        (out / f"Field={f}").mkdir(parents=True)
        (out / f"Field={f}" / "part.parquet").write_text("old")
    staging = K.staging_dir(uri(out), "tok")
    (Path(staging.path) / "Field=2").mkdir(parents=True)
    (Path(staging.path) / "Field=2" / "part.parquet").write_text("new")
    real = FS.HadoopStore.rename

    def crash_on_rename_in(self, a, b):
        if FS.location(b).name == "Field=2":
            raise KeyboardInterrupt("simulated crash")
        real(self, a, b)

    monkeypatch.setattr(FS.HadoopStore, "rename", crash_on_rename_in)
    with pytest.raises(KeyboardInterrupt):
        J.commit_field(staging, uri(out), 2, "tok")
    monkeypatch.undo()
    assert not (out / "Field=2").exists() and (out / "_old-tok-Field=2").is_dir()
    notes = J.recover_scores(uri(out))
    assert any("finished the interrupted commit" in n for n in notes)
    assert (out / "Field=2" / "part.parquet").read_text() == "new"
    assert (out / "Field=3" / "part.parquet").read_text() == "old"
    assert visible(out) == ["Field=2", "Field=3"] and not Path(staging.path).exists()


# ---- manifests -----------------------------------------------------------------------------------
def test_manifest_round_trip_on_a_uri(spark, in_tmp):
    d = in_tmp / "cat"
    d.mkdir()
    assert read_manifest(uri(d)) is None and manifest_sha256(uri(d)) is None
    p = write_manifest(uri(d), {"rows": {"written": 3}}, "catalog")
    assert isinstance(p, FS.UriPath) and crc(d / MANIFEST).exists()
    assert read_manifest(uri(d)) == {"rows": {"written": 3}, "kind": "catalog"}
    assert json.loads((d / MANIFEST).read_text())["kind"] == "catalog"
    assert manifest_sha256(uri(d)) == hashlib.sha256((d / MANIFEST).read_bytes()).hexdigest()[:16]
    (d / MANIFEST).write_text("{not json")
    crc(d / MANIFEST).unlink()
    with pytest.raises(InputError, match="unreadable"):
        read_manifest(uri(d), "catalogue manifest")
    # the path guard reads the same manifests through the same store
    with pytest.raises(InputError, match="unreadable"):
        check_job_paths({}, {"--out": (uri(d), "catalog")})


def test_path_guard_on_uris(spark, in_tmp):
    cat = in_tmp / "cat"
    cat.mkdir()
    write_manifest(uri(cat), {"schema": "x", "inputs": []}, "catalog")
    with pytest.raises(InputError, match="lies inside the catalogue"):
        check_job_paths({}, {"--out": (uri(cat / "scores"), "scores")})
    with pytest.raises(InputError, match="lies inside --catalog"):          # a URI and a plain path
        check_job_paths({"--catalog": str(cat)}, {"--out": (uri(cat / "s"), "scores")})
    (in_tmp / "foreign").mkdir()
    (in_tmp / "foreign" / "x").write_text("x")
    with pytest.raises(InputError, match="not a galaxy_spark scores directory"):
        check_job_paths({}, {"--out": (uri(in_tmp / "foreign"), "scores")})
    check_job_paths({"--catalog": uri(cat)}, {"--out": (uri(in_tmp / "new"), "scores")})


# ---- lock and ledger -----------------------------------------------------------------------------
def test_lock_on_a_uri(spark, in_tmp):
    path = uri(in_tmp / "scores" / "_reprocess.lock")
    a = L.RunLock(path, "run-a", job="reprocess")
    b = L.RunLock(path, "run-b", job="reprocess")
    a.acquire()
    local = in_tmp / "scores" / "_reprocess.lock"
    assert json.loads(local.read_text())["run_id"] == "run-a" and crc(local).exists()
    with pytest.raises(L.LockHeldError, match="held by run run-a"):
        b.acquire()
    a.release()
    assert not local.exists()
    # a lock left by a dead process is broken (under the guard file) and taken
    local.write_text(json.dumps({"pid": 999999999, "host": os.uname().nodename, "run_id": "dead",
                                 "started_unix": 0}))
    notes = []
    c = L.RunLock(path, "run-c", echo=notes.append, job="reprocess")
    c.acquire()
    assert json.loads(local.read_text())["run_id"] == "run-c" and "recovered a stale lock" in notes[0]
    assert not (in_tmp / "scores" / "_reprocess.lock.guard").exists()        # the guard is released
    c.release()


def test_a_busy_guard_never_lets_two_runs_break_one_lock(spark, in_tmp):
    s = FS.store(uri(in_tmp))
    g = FS.location(uri(in_tmp / "l.guard"))
    with s.guard(g) as first:
        with s.guard(g) as second:
            assert first and not second
        assert s.exists(g)                      # the second one did not remove the first's guard
    assert not s.exists(g)


def test_ledger_on_a_uri(spark, in_tmp):
    led = L.Ledger(uri(in_tmp / "_ledger.jsonl"))
    assert led.read() == []
    led.append({"run_id": "r1", "field": 2, "action": "rescored"})
    led.append({"run_id": "r2", "field": 3, "action": "skipped"})
    assert [r["run_id"] for r in led.read()] == ["r1", "r2"]
    assert crc(in_tmp / "_ledger.jsonl").exists()
    with open(in_tmp / "_ledger.jsonl", "a") as fh:
        fh.write("{half a line\n")
    crc(in_tmp / "_ledger.jsonl").unlink()
    with pytest.raises(L.LedgerError, match="line 3"):
        led.read()


# ---- the jobs, end to end --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_env(tmp_path_factory, model_store, spark):
    from synthetic import canonical_frame, job_env, use_tracking_uri, write_partitioned

    from galaxy_spark.model.registry import resolve_model
    from galaxy_spark.survey import load_survey

    d = model_store(tmp_path_factory.mktemp("storage"))
    write_partitioned(canonical_frame(load_survey(), n=600, seed=11), d / "catalog")
    with use_tracking_uri(job_env(d)["MLFLOW_TRACKING_URI"]):
        resolve_model("models:/galaxy-ensemble@champion")
        yield d


def _scores(path: Path) -> pd.DataFrame:
    t = ds.dataset(str(path), format="parquet", partitioning="hive").to_table().to_pandas()
    return t.drop(columns=["scored_at"]).sort_values("ID").reset_index(drop=True)


def test_scoring_to_a_uri_equals_scoring_to_a_path(model_env, spark, tmp_path):
    def run(catalog, out):
        opts = J.JobOptions(catalog=catalog, out=out, model="models:/galaxy-ensemble@champion")
        return J.run_scoring(opts, spark=spark, echo=lambda m: None)

    plain = run(str(model_env / "catalog"), str(tmp_path / "plain"))
    via_uri = run(uri(model_env / "catalog"), uri(tmp_path / "viauri"))
    assert via_uri["rows_in"] == via_uri["rows_out"] == plain["rows_out"] == 600
    assert via_uri["fields"] == plain["fields"]
    pd.testing.assert_frame_equal(_scores(tmp_path / "viauri"), _scores(tmp_path / "plain"))
    out = tmp_path / "viauri"
    assert crc(out / MANIFEST).exists() and crc(out / J.SUCCESS).exists()          # committed by Hadoop
    assert not crc(tmp_path / "plain" / MANIFEST).exists()                          # and the plain one by os
    assert visible(tmp_path) == ["plain", "viauri"]                                 # no staging left
    man = read_manifest(uri(out))
    assert man["kind"] == "scores" and sorted(man["fields"]) == sorted(plain["fields"])
    # the next run starts with recovery on the URI and scores again into it
    again = run(uri(model_env / "catalog"), uri(out))
    assert again["rows_out"] == 600
    pd.testing.assert_frame_equal(_scores(out), _scores(tmp_path / "plain"))


def test_ingest_to_uris_equals_ingest_to_paths(spark, real_rows_path, tmp_path):
    from galaxy_spark.catalog import ingest as I

    a = I.run_ingest(str(real_rows_path), tmp_path / "cat", tmp_path / "q", spark=spark, echo=lambda m: None)
    b = I.run_ingest(str(real_rows_path), uri(tmp_path / "ucat"), uri(tmp_path / "uq"), spark=spark,
                     echo=lambda m: None)
    assert b["rows"] == a["rows"] and b["fields"] == a["fields"] and b["schema"] == a["schema"]
    assert b["output"] == uri(tmp_path / "ucat")
    assert crc(tmp_path / "ucat" / MANIFEST).exists() and crc(tmp_path / "uq" / MANIFEST).exists()
    assert read_manifest(uri(tmp_path / "uq"))["commit"] == b["commit"]
    assert visible(tmp_path) == ["cat", "q", "ucat", "uq"]
    left = spark.read.parquet(str(tmp_path / "cat")).orderBy("ID").toPandas()
    right = spark.read.parquet(uri(tmp_path / "ucat")).orderBy("ID").toPandas()
    pd.testing.assert_frame_equal(left.drop(columns=["source_file"], errors="ignore"),
                                  right.drop(columns=["source_file"], errors="ignore"))
