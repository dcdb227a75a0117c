"""The executor side of the scoring job: Parquet → NumPy → Parquet, one work unit per Spark task.

Spark schedules the work (one task per unit, retried on failure, spread over the cluster) but is
not in the data path: a Python worker reads its unit's row groups with pyarrow (only the columns
the model needs), scores each Arrow batch (`batch.score_record_batch`) and writes a Parquet file
into the job's staging directory. Going through Spark's own reader and writer instead
(``mapInArrow``) converted every value to a JVM row and back twice, and cost more CPU than the
networks (benchmarks/bench_scoring.py measured it at a third of this path's throughput on two
cores).

- `plan_units`: the catalogue's row groups of the chosen Fields, packed into units of about
  `UNIT_ROWS` rows (a row group is never split: its column chunks are decoded once).
- `score_unit`: one unit, file to file; returns its accounting (rows and order-independent ID
  checksum of what it read and of what it wrote, per Field) and where its time went. The output
  file appears under its final name only when complete (written as ``.tmp-…``, then renamed), so a
  retried or speculative attempt replaces it whole.

Both read and write through `pyarrow.fs` (`galaxy_spark.io.fs.arrow_fs`): a Python task has no
py4j, so the Spark session's Hadoop FileSystem is out of reach there; a plain path is local.
"""
from __future__ import annotations

import os
import posixpath
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from galaxy_spark.errors import InputError
from galaxy_spark.io.arrow import arrow_data_files, arrow_fs, arrow_move_over
from galaxy_spark.estimate.batch import PARTITION, ScoreOptions, arrow_schema, score_record_batch
from galaxy_spark.features import splitmix64
from galaxy_spark.model.ensemble import Ensemble

UNIT_ROWS = 40_000          # rows per task: small enough to balance two cores, large enough to amortise
BATCH_ROWS = 10_000         # rows per Arrow batch (--batch-size); measured in benchmarks/bench_scoring.py


@dataclass
class Unit:
    """A piece of work: row groups of one catalogue file, all in one Field, or rows
    [start, stop) of one large row group (`row_slice`)."""
    index: int
    field: int
    path: str
    row_groups: list[int]
    rows: int
    row_slice: tuple[int, int] | None = None


@dataclass
class UnitResult:
    index: int
    field: int
    rows_in: int = 0
    rows_out: int = 0
    idsum_in: int = 0
    idsum_out: int = 0
    file: str | None = None
    seconds: dict = field(default_factory=dict)


def id_checksum(ids) -> int:
    """Order-independent checksum of int64 IDs: the sum of SplitMix64(ID) modulo 2^64."""
    with np.errstate(over="ignore"):
        return int(splitmix64(np.asarray(ids, np.int64).astype(np.uint64)).sum(dtype=np.uint64))


def _parquet_file(path: str):
    """pyarrow's ParquetFile of `path` (a plain path or a URI)."""
    import pyarrow.parquet as pq

    fs, p = arrow_fs(path)
    return pq.ParquetFile(fs.open_input_file(p))


def _halve(u: Unit) -> list[Unit]:
    """Two units doing `u`'s work: its row groups split in two, or its rows (one group) in two slices."""
    if len(u.row_groups) > 1:
        meta = _parquet_file(u.path).metadata
        h = len(u.row_groups) // 2
        return [Unit(0, u.field, u.path, gs, sum(meta.row_group(g).num_rows for g in gs))
                for gs in (u.row_groups[:h], u.row_groups[h:])]
    a, b = u.row_slice or (0, u.rows)
    m = (a + b) // 2
    return [Unit(0, u.field, u.path, u.row_groups, m - a, (a, m)), Unit(0, u.field, u.path, u.row_groups, b - m, (m, b))]


def plan_units(catalog: str | Path, fields: list[int], unit_rows: int | None = None,
               min_units: int = 1) -> tuple[list[Unit], dict[int, int]]:
    """Work units over the ``Field=N`` partitions of `catalog` named in `fields`, from the Parquet
    footers alone; also the rows per Field the footers hold (the accounting's reference). Row
    groups are packed into units of up to `unit_rows` rows; a row group of more than twice that
    is cut into slices of about `unit_rows` (the ingest writes row groups small enough that this
    is rare: each slice decodes its whole row group); then the largest units are halved until
    there are `min_units` (every core gets work on a small catalogue)."""
    import pyarrow.parquet as pq

    unit_rows = unit_rows or UNIT_ROWS
    units: list[Unit] = []
    rows_per_field: dict[int, int] = {}
    for f in sorted(fields):
        rows_per_field[f] = 0
        part = f"{str(catalog).rstrip('/')}/{PARTITION}={f}"
        fs, root, infos = arrow_data_files(part)
        for info in infos:
            if not info.path.endswith(".parquet"):
                continue
            # units name the file as the catalogue does (a URI stays a URI for the executors)
            path = f"{part}/{posixpath.relpath(info.path, root)}"
            try:
                meta = pq.ParquetFile(fs.open_input_file(info.path)).metadata
            except (OSError, ValueError) as e:     # pyarrow's ArrowInvalid is a ValueError
                raise InputError(f"catalogue file {path} is not readable Parquet: {e}") from None
            rows_per_field[f] += meta.num_rows
            groups, rows = [], 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if n > 2 * unit_rows:       # sliced: each slice decodes the row group, but two cores stay busy
                    k = -(-n // unit_rows)
                    edges = [n * i // k for i in range(k + 1)]
                    units += [Unit(0, f, str(path), [g], b - a, (a, b)) for a, b in zip(edges, edges[1:])]
                    continue
                if groups and rows + n > unit_rows:
                    units.append(Unit(len(units), f, str(path), groups, rows))
                    groups, rows = [], 0
                groups.append(g)
                rows += n
            if groups:
                units.append(Unit(len(units), f, str(path), groups, rows))
    while units and len(units) < min_units:
        units.sort(key=lambda u: -u.rows)
        if units[0].rows < 2:
            break
        units[:1] = _halve(units[0])
    # largest first: Spark hands tasks out in order, so the long ones do not come last
    units.sort(key=lambda u: -u.rows)
    for i, u in enumerate(units):
        u.index = i
    return units, rows_per_field


# ---- per-worker cache of the broadcast ensemble ------------------------------------------------
_ENSEMBLES: dict[str, Ensemble] = {}


def worker_ensemble(key: str, parts_bc) -> Ensemble:
    """The Ensemble for model `key`, rebuilt from the broadcast once per Python worker process."""
    ens = _ENSEMBLES.get(key)
    if ens is None:
        doc, arrays = parts_bc.value
        ens = Ensemble.from_parts(doc, arrays)
        _ENSEMBLES.clear()           # one model per job: drop any previous job's
        _ENSEMBLES[key] = ens
    return ens


def output_schema(id_column: str, detection_band: str, table):
    """What a unit's file holds: `batch.arrow_schema` (the estimates of the head table `table`)
    without the partition column (it is the directory name) plus the provenance columns."""
    import pyarrow as pa

    base = arrow_schema(id_column, detection_band, table)
    fields = [f for f in base if f.name != PARTITION]
    fields += [pa.field("model_name", pa.string()), pa.field("model_version", pa.string()),
               pa.field("model_run_id", pa.string()), pa.field("scored_at", pa.timestamp("us", tz="UTC"))]
    return pa.schema(fields)


def score_unit(unit: Unit, ens: Ensemble, opts: ScoreOptions, columns: list[str], staging: str,
               provenance: dict, token: str, batch_rows: int = BATCH_ROWS) -> UnitResult:
    """Score `unit` into ``<staging>/Field=N/part-<index>-<token>.parquet``; see the module
    docstring. `columns`: the catalogue columns to read (partition column excluded);
    `provenance`: model_name, model_version, model_run_id, scored_at (a datetime)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    res = UnitResult(unit.index, unit.field)
    timer: dict = {}
    t0 = time.perf_counter()
    spec = ens.feature_spec
    schema = output_schema(opts.id_column, spec.detection_band, ens.output_table())
    fs, root = arrow_fs(staging)
    out_dir = f"{root.rstrip('/')}/{PARTITION}={unit.field}"
    fs.create_dir(out_dir, recursive=True)
    final = f"{out_dir}/part-{unit.index:05d}-{token}.parquet"
    tmp = f"{out_dir}/.tmp-{posixpath.basename(final)}-{os.getpid()}"
    pf = _parquet_file(unit.path)
    file_cols = [c for c in columns if c != PARTITION]
    consts = {k: pa.scalar(provenance[k], schema.field(k).type) for k in
              ("model_name", "model_version", "model_run_id", "scored_at")}
    t_read = 0.0
    with pq.ParquetWriter(tmp, schema, compression="snappy", filesystem=fs) as writer:
        it = pf.iter_batches(batch_size=batch_rows, row_groups=unit.row_groups, columns=file_cols)
        seen = 0
        while True:
            t1 = time.perf_counter()
            rb = next(it, None)
            if rb is not None and unit.row_slice is not None:      # keep rows [a, b) of the group
                a, b = unit.row_slice
                start, seen = seen, seen + rb.num_rows
                if start >= b:
                    rb = None                                       # past the slice: done
                else:
                    lo, hi = max(a - start, 0), min(b - start, rb.num_rows)
                    if hi <= lo:                                    # before the slice
                        t_read += time.perf_counter() - t1
                        continue
                    rb = rb.slice(lo, hi - lo)
            t_read += time.perf_counter() - t1
            if rb is None:
                break
            n = rb.num_rows
            rb = rb.append_column(PARTITION, pa.array(np.full(n, unit.field, np.int32)))
            ids = rb.column(opts.id_column).to_numpy(zero_copy_only=False)
            res.rows_in += n
            res.idsum_in = (res.idsum_in + id_checksum(ids)) % (1 << 64)
            scored = score_record_batch(ens, rb, opts, timer)
            t1 = time.perf_counter()
            cols = [scored.column(scored.schema.get_field_index(f.name)) if f.name in scored.schema.names
                    else pa.repeat(consts[f.name], n) for f in schema]
            table = pa.Table.from_arrays(cols, schema=schema)
            res.rows_out += table.num_rows
            res.idsum_out = (res.idsum_out + id_checksum(table.column(opts.id_column).to_numpy())) % (1 << 64)
            writer.write_table(table)
            timer["write"] = timer.get("write", 0.0) + time.perf_counter() - t1
    arrow_move_over(fs, tmp, final)
    res.file = final
    timer["read"] = t_read
    timer["total"] = time.perf_counter() - t0
    res.seconds = {k: round(v, 4) for k, v in timer.items()}
    return res


def run_units(units_iter, key: str, parts_bc, opts: ScoreOptions, columns: list[str], staging: str,
              provenance: dict, token: str, batch_rows: int = BATCH_ROWS):
    """The function a Spark task runs (``mapPartitions``): score each unit it is given, yield
    each `UnitResult` as a dict."""
    ens = worker_ensemble(key, parts_bc)
    for unit in units_iter:
        yield asdict(score_unit(unit, ens, opts, columns, staging, provenance, token, batch_rows))
