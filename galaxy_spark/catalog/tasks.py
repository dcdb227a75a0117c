"""The ingest's data path: text byte ranges → Arrow → validated → Parquet, in Python tasks.

Spark schedules the work (one task per unit, retried on failure, spread over the cluster) but is
not in the data path, as in the scoring job (estimate/tasks.py): per-row SQL over ~113 string
columns (split, typing, ~3,000 validation nodes, Arrow round trips) cost 25-45x a plain pyarrow
read + write of the same CSV.

1. `index_inputs` (driver, one sequential read of every input, which the file fingerprint needs
   anyway): SHA-256, physical line counts, data lines, the byte ranges of the work units (cut at
   line starts, each with the number of its first line, so line numbers stay exact), and the IDs
   that occur on more than one data line.
2. `ingest_unit` (task): reads its byte range, splits the lines (`bytes.splitlines`: \\n, \\r\\n
   and \\r, as Hadoop's line reader), parses the fields with pyarrow, validates the Arrow batch
   (`cleaning.validate_batch`), marks duplicate IDs and writes Parquet (below).
   Each unit writes one file per Field it holds (rows sorted by ID) with that file's content
   hash (`content_hash`), and one quarantine file (sorted by line) if it rejected any row.
Every file appears under its final name only when complete (written as ``.tmp-…``, then renamed),
so a retried task attempt replaces it whole.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import time
from dataclasses import dataclass, field

import numpy as np

from galaxy_spark.catalog import cleaning as C
from galaxy_spark.catalog import readers as R
from galaxy_spark.catalog import schema as S
from galaxy_spark.features import splitmix64
from galaxy_spark.io.arrow import write_parquet_atomically
from galaxy_spark.survey import Survey

UNIT_BYTES = 16 << 20           # text per task: ~22,000 ALHAMBRA rows; 20 units for the full mock
# Parquet row groups of the catalogue: about 16 MB (~18,000 ALHAMBRA rows), so a scoring task can
# take a few row groups and two cores get equal shares without decoding any row group twice
# (estimate/tasks.py); Spark's default (128 MB) made one row group per Field.
ROW_GROUP_BYTES = 16 << 20
BOM = b"\xef\xbb\xbf"
JAVA_SPACE = b" \t\n\x0b\x0c\r"  # Java's \\s: what a data-line test skips and ASCII splits on


@dataclass(frozen=True)
class TextUnit:
    """Lines of one input file: bytes [start, end) (end -1: to the end; a gzip file is one unit),
    starting at a line start whose physical line number is `first_line`."""
    index: int
    layout: R.FileLayout
    start: int
    end: int
    first_line: int


@dataclass
class InputIndex:
    units: list[TextUnit]
    # path -> {"lines": n, "data_lines": n, + "no_final_newline": line number of a last data line
    # without a newline (a copy cut short looks exactly like this)}
    stats: dict
    fingerprints: dict                                  # path -> {"path", "size", "mtime", "sha256"}
    duplicate_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def _open_binary(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def is_data_line(line: bytes) -> bool:
    """Not blank and not a '#' comment (leading whitespace ignored)."""
    s = line.lstrip(JAVA_SPACE)
    return bool(s) and s[:1] != b"#"


def count_fields(line: bytes, fmt: str) -> int:
    """Fields of a line: `,`-separated for the CSV flavours, whitespace runs for the public ASCII."""
    return len(line.split()) if fmt == "ascii" else line.count(b",") + 1


def _id_field(line: bytes, fmt: str, n_fields: int, pos: int) -> bytes | None:
    """The raw ID field of a line with the right field count (typed by `cleaning.typed_ids`)."""
    if fmt == "ascii":
        fields = line.split()
        return fields[pos] if len(fields) == n_fields else None
    return line.split(b",", pos + 1)[pos] if line.count(b",") == n_fields - 1 else None


def index_inputs(layouts: list[R.FileLayout], survey: Survey, unit_bytes: int = UNIT_BYTES,
                 chunk: int = 8 << 20) -> InputIndex:
    """One sequential read of every input (see the module docstring)."""
    import datetime as _dt

    import pyarrow as pa

    units, stats, prints, id_fields = [], {}, {}, []
    for lay in layouts:
        pos = dict(lay.positions).get(survey.id_column)
        h = hashlib.sha256()
        line_no, data_lines, offset, unit_start, unit_line = 0, 0, 0, 0, 1
        carry, unterminated = b"", None
        gz = lay.path.endswith(".gz")
        with _open_binary(lay.path) as fh:
            while True:
                block = fh.read(min(chunk, unit_bytes))
                if not gz:
                    h.update(block)
                data = carry + block
                cut = data.rfind(b"\n") + 1 if block else len(data)   # whole lines only, \r\n kept together
                complete, carry = data[:cut], data[cut:]
                lines = complete.splitlines()
                if not block and complete and not complete.endswith((b"\n", b"\r")) and is_data_line(lines[-1]):
                    unterminated = line_no + len(lines)
                if line_no == 0 and lines and lines[0].startswith(BOM):
                    lines[0] = lines[0][len(BOM):]
                for i, line in enumerate(lines, start=line_no + 1):
                    if i != lay.header_line and is_data_line(line):
                        data_lines += 1
                        if pos is not None:
                            v = _id_field(line, lay.format, lay.n_fields, pos)
                            if v is not None:
                                id_fields.append(v)
                line_no += len(lines)
                offset += len(complete)
                if not gz and offset - unit_start >= unit_bytes and block:
                    units.append(TextUnit(len(units), lay, unit_start, offset, unit_line))
                    unit_start, unit_line = offset, line_no + 1
                if not block:
                    break
        if offset > unit_start or unit_start == 0:      # the rest of the file (gzip: all of it)
            units.append(TextUnit(len(units), lay, unit_start, -1, unit_line))
        st = os.stat(lay.path)
        if gz:
            with open(lay.path, "rb") as fh:
                for b in iter(lambda: fh.read(chunk), b""):
                    h.update(b)
        prints[lay.path] = {"path": lay.path, "size": st.st_size, "sha256": h.hexdigest(),
                            "mtime": _dt.datetime.fromtimestamp(st.st_mtime, tz=_dt.timezone.utc).isoformat()}
        stats[lay.path] = {"lines": line_no, "data_lines": data_lines}
        if unterminated is not None:
            stats[lay.path]["no_final_newline"] = unterminated
    typed = C.typed_ids(pa.array(id_fields, pa.binary()).cast(pa.string()))
    uniq, counts = np.unique(typed.drop_null().to_numpy(), return_counts=True)
    return InputIndex(units, stats, prints, uniq[counts > 1])


# ---- one unit: text -> raw Arrow batch -------------------------------------------------------
def read_unit_lines(unit: TextUnit) -> list[bytes]:
    """The physical lines of `unit` (a UTF-8 byte-order mark removed from a file's first line)."""
    with _open_binary(unit.layout.path) as fh:
        if unit.start:
            fh.seek(unit.start)
        data = fh.read() if unit.end < 0 else fh.read(unit.end - unit.start)
    lines = data.splitlines()
    if unit.start == 0 and lines and lines[0].startswith(BOM):
        lines[0] = lines[0][len(BOM):]
    return lines


def raw_batch(lines: list[bytes], unit: TextUnit, survey: Survey):
    """The data lines of a unit as a raw Arrow batch (`readers.raw_columns`: meta columns, then
    every value as the trimmed string read, null where the file has no such column or the line
    has the wrong number of fields)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    lay = unit.layout
    numbers, texts, counts, good = [], [], [], []
    for i, line in enumerate(lines, start=unit.first_line):
        if i == lay.header_line or not is_data_line(line):
            continue
        k = count_fields(line, lay.format)
        numbers.append(i)
        texts.append(line)
        counts.append(k)
        if k == lay.n_fields:
            good.append(line if lay.format != "ascii" else b",".join(line.split()))
    n_fields = np.asarray(counts, np.int32)
    ok = n_fields == lay.n_fields
    order = np.concatenate([np.flatnonzero(ok), np.flatnonzero(~ok)])      # parsed rows first
    pos = dict(lay.positions)
    wanted = sorted(set(pos.values()))
    table = None
    if good:
        table = pcsv.read_csv(
            pa.py_buffer(b"\n".join(good) + b"\n"),
            read_options=pcsv.ReadOptions(column_names=[f"c{k}" for k in range(lay.n_fields)],
                                          block_size=64 << 20),
            parse_options=pcsv.ParseOptions(delimiter=",", quote_char=False, escape_char=False,
                                            ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(column_types={f"c{k}": pa.string() for k in wanted},
                                                include_columns=[f"c{k}" for k in wanted],
                                                strings_can_be_null=False))
    bad = int((~ok).sum())
    n = len(numbers)
    meta = {R.SOURCE_FILE: pa.array([lay.path] * n, pa.string()),
            R.LINE_NUMBER: pa.array(np.asarray(numbers, np.int64)[order]),
            R.INPUT_FORMAT: pa.array([lay.format] * n, pa.string()),
            R.N_FIELDS: pa.array(n_fields[order]),
            R.EXPECTED_FIELDS: pa.array(np.full(n, lay.n_fields, np.int32)),
            R.RAW_LINE: pa.array([texts[k].decode("utf-8", "replace") for k in order], pa.string())}
    cols = []
    for name in R.raw_columns(survey):
        if name in meta:
            cols.append(meta[name])
        elif name in pos and table is not None:
            v = pc.utf8_trim(table.column(f"c{pos[name]}").combine_chunks(), " ")
            cols.append(pa.concat_arrays([v, pa.nulls(bad, pa.string())]) if bad else v)
        else:
            cols.append(pa.nulls(n, pa.string()))
    return pa.RecordBatch.from_arrays(cols, names=R.raw_columns(survey))


# ---- one unit: the task ------------------------------------------------------------------------
def ingest_unit(unit: TextUnit, survey: Survey, duplicate_ids: np.ndarray, out_staging: str,
                q_staging: str, token: str, thesis_clip: bool = False, quarantine_line: int | None = None) -> dict:
    """One unit (see the module docstring): returns rows read, rows per Field written, rows
    quarantined, the fragment files and where the time went. `quarantine_line`: a line of this
    unit's file quarantined as `no_final_newline` (--strict)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    lines = read_unit_lines(unit)
    t1 = time.perf_counter()
    raw = raw_batch(lines, unit, survey)
    t2 = time.perf_counter()
    v = C.mark_duplicates(C.validate_batch(raw, survey, C.convention_for(unit.layout.format)), duplicate_ids, survey)
    if quarantine_line is not None:
        line_numbers = raw.column(raw.schema.get_field_index(R.LINE_NUMBER)).to_numpy()
        v = C.mark_rows(v, line_numbers == quarantine_line, "no_final_newline",
                        lambda r: f"line {quarantine_line} is the last and has no final newline: the file may be truncated")
    t3 = time.perf_counter()
    rejected = np.asarray(v.column(v.schema.get_field_index(C.REASON)).is_valid())
    good = C.to_canonical(v.filter(pa.array(~rejected)), survey, thesis_clip)
    res = {"index": unit.index, "rows": raw.num_rows, "fields": {}, "quarantined": int(rejected.sum())}
    fields = good.column(S.PARTITION_COLUMN).to_numpy(zero_copy_only=False)
    for f in np.unique(fields):
        part = good.filter(pc.equal(good.column(S.PARTITION_COLUMN), pa.scalar(int(f), pa.int32())))
        ids = part.column(survey.id_column).to_numpy()
        if len(ids) > 1 and (np.diff(ids) < 0).any():      # files are usually in ID order already
            part = part.take(pc.sort_indices(part, [(survey.id_column, "ascending")]))
        part = part.drop_columns([S.PARTITION_COLUMN])       # in the directory name, as Spark writes it
        per_row = max(1, part.nbytes // max(part.num_rows, 1))
        write_parquet_atomically(part, f"{out_staging}/{S.PARTITION_COLUMN}={int(f)}/part-{unit.index:05d}-{token}.parquet",
                          row_group_size=max(1000, ROW_GROUP_BYTES // per_row))
        res["fields"][int(f)] = {"rows": part.num_rows, "hash": content_hash(part)}
    if rejected.any():
        bad = C.to_quarantine(v.filter(pa.array(rejected)), survey)
        bad = bad.take(pc.sort_indices(bad, [(R.LINE_NUMBER, "ascending")]))
        write_parquet_atomically(bad, f"{q_staging}/part-{unit.index:05d}-{token}.parquet")
        reasons = bad.column(C.REASON).to_pylist()
        res["by_reason"] = {r: reasons.count(r) for r in set(reasons)}
    res["seconds"] = {"read": round(t1 - t0, 4), "parse": round(t2 - t1, 4), "validate": round(t3 - t2, 4),
                      "write": round(time.perf_counter() - t3, 4)}
    return res


# ---- content fingerprint -----------------------------------------------------------------------
def content_hash(table, exclude: tuple[str, ...] = (S.SOURCE_COLUMN,)) -> int:
    """Order-independent hash of a table's content: the sum over rows (mod 2^64) of a SplitMix64
    chain over every column's value (null distinct from every value); `exclude`d columns skipped."""
    import pandas as pd
    import pyarrow as pa

    n = table.num_rows
    h = np.zeros(n, np.uint64)
    null_mark = np.uint64(0x7FF8DEADBEEF0001)
    with np.errstate(over="ignore"):
        for k, name in enumerate(table.column_names):
            if name in exclude:
                continue
            col = table.column(name).combine_chunks()
            nulls = np.asarray(col.is_null())
            if pa.types.is_string(col.type):
                bits = pd.util.hash_array(np.asarray(col.fill_null("").to_pylist(), dtype=object))
            elif pa.types.is_floating(col.type):
                bits = col.fill_null(0.0).to_numpy(zero_copy_only=False).view(np.uint64)
            else:
                bits = col.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
            bits = np.where(nulls, null_mark, bits)
            h = splitmix64(h ^ splitmix64(bits + np.uint64(k)))
        return int(h.sum(dtype=np.uint64))
