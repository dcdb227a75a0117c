"""Property-based tests of the readers and ingest (Hypothesis): whatever bytes, row mutations or
encodings arrive, every data line is accounted for (read = written + quarantined) or the input is
refused with a clear error, and a committed catalogue is never lost."""
from __future__ import annotations

import json
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galaxy_spark.io.manifest import MANIFEST
from galaxy_spark.catalog import ingest as I
from galaxy_spark.errors import GalaxySparkError
from tests.conftest import write_csv

# Each example is a real Spark ingest (a few seconds): few examples, no deadline.
SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


def _quiet(_msg):
    pass


@pytest.fixture(scope="module")
def base(spark, tmp_path_factory, public_frame):
    """20 real rows as CSV text, and a committed catalogue of them to protect."""
    d = tmp_path_factory.mktemp("props")
    src = write_csv(public_frame.head(20), d / "base.csv")
    I.run_ingest(str(src), d / "cat", d / "q", spark=spark, echo=_quiet)
    return {"dir": d, "lines": src.read_text().splitlines(), "manifest": (d / "cat" / MANIFEST).read_text()}


def _fresh_copy(base, tmp):
    for name in ("cat", "q"):
        shutil.rmtree(tmp / name, ignore_errors=True)
        shutil.copytree(base["dir"] / name, tmp / name)
    return tmp / "cat", tmp / "q"


def _data_lines(text: str) -> int:
    """Lines that are neither blank nor '#' comments, minus the CSV header."""
    n = sum(1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    return max(n - 1, 0)


def _ingest_or_refuse(spark, path, cat, q, base, **kw):
    """Run an ingest; on refusal the previous catalogue must be intact. Returns the manifest or None."""
    try:
        return I.run_ingest(str(path), cat, q, spark=spark, echo=_quiet, **kw)
    except GalaxySparkError as e:
        assert str(e).strip(), "an error must say what is wrong"
        assert (cat / MANIFEST).read_text() == base["manifest"], "a refused ingest changed the catalogue"
        return None


@settings(max_examples=6, **SETTINGS)
@given(data=st.one_of(st.binary(max_size=3000), st.text(max_size=1500).map(lambda t: t.encode("utf-8"))))
def test_random_bytes_are_refused_or_fully_accounted(spark, base, tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("bytes")
    cat, q = _fresh_copy(base, tmp)
    f = tmp / "random.csv"
    f.write_bytes(data)
    m = _ingest_or_refuse(spark, f, cat, q, base)
    if m is not None:
        r = m["rows"]
        assert r["read"] == r["written"] + r["quarantined"]
        assert json.loads((cat / MANIFEST).read_text())["rows"] == r


MUTATIONS = ("drop_field", "extra_field", "garbage", "blank_value", "duplicate", "truncate", "comment", "nan")


@settings(max_examples=8, **SETTINGS)
@given(ops=st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(1, 20), st.integers(0, 112)),
                    min_size=1, max_size=6))
def test_mutated_rows_are_counted_exactly(spark, base, tmp_path_factory, ops):
    tmp = tmp_path_factory.mktemp("mut")
    lines = list(base["lines"])
    for op, row, col in ops:
        row = min(row, len(lines) - 1)
        fields = lines[row].split(",")
        col = col % len(fields)
        if op == "drop_field":
            del fields[col]
        elif op == "extra_field":
            fields.insert(col, "1.0")
        elif op == "garbage":
            fields[col] = "x\u00e9#?"
        elif op == "blank_value":
            fields[col] = ""
        elif op == "nan":
            fields[col] = "nan"
        elif op == "duplicate":
            lines.append(lines[row])
            continue
        elif op == "truncate":
            lines[row] = lines[row][: max(1, len(lines[row]) // 3)]
            continue
        elif op == "comment":
            lines.insert(row, "# a comment line")
            continue
        lines[row] = ",".join(fields)
    text = "\n".join(lines) + "\n"
    f = tmp / "mutated.csv"
    f.write_text(text, encoding="utf-8")
    m = I.run_ingest(str(f), tmp / "cat", tmp / "q", spark=spark, echo=_quiet, replace=True)
    r = m["rows"]
    assert r["read"] == _data_lines(text)
    assert r["read"] == r["written"] + r["quarantined"]
    assert sum(r["quarantined_by_reason"].values()) == r["quarantined"]
    quarantined = spark.read.parquet(str(tmp / "q"))
    assert quarantined.count() == r["quarantined"]
    assert quarantined.where("reason IS NULL OR line_number < 2").count() == 0


ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252")


@settings(max_examples=7, **SETTINGS)
@given(encoding=st.sampled_from(ENCODINGS))
def test_encodings_are_read_or_refused_clearly(spark, base, tmp_path_factory, encoding):
    tmp = tmp_path_factory.mktemp("enc")
    cat, q = _fresh_copy(base, tmp)
    text = "\n".join(base["lines"][:1] + ["# observed at Calar Alto, 3.5 m telescope, caf\u00e9 \u00c5ngstr\u00f6m"]
                     + base["lines"][1:]) + "\n"
    f = tmp / f"{encoding}.csv"
    f.write_bytes(text.encode(encoding))
    m = _ingest_or_refuse(spark, f, cat, q, base, replace=True)
    if encoding in ("utf-8", "utf-8-sig"):
        assert m is not None and m["rows"]["read"] == m["rows"]["written"] == 20
    else:
        assert m is None
