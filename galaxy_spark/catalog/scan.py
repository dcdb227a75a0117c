"""The Spark side of the catalogue readers: scan the files `readers.inspect_file` described, in one
pass per layout, into one raw DataFrame of string columns with exact line numbers.

Line numbers are exact and cheap: one light pass (`scan_index`) counts the lines of every file
split (``_metadata.file_block_start``) and the driver turns those counts into per-split offsets,
which a broadcast join adds to ``monotonically_increasing_id()`` (contiguous within a split). The
same pass reads the ID field of every line and returns the IDs that occur more than once, so the
ingest needs no separate duplicate scan.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from galaxy_spark.catalog.readers import (EXPECTED_FIELDS, INPUT_FORMAT, LINE_NUMBER, META_COLUMNS, N_FIELDS,
                                          RAW_LINE, SOURCE_FILE, FileLayout, inspect_file,
                                          raw_columns, resolve_inputs)
from galaxy_spark.survey import Survey


def _uri_to_path(uri: str) -> str:
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def _split_sql(fmt: str, line: str) -> str:
    """SQL: the fields of a line (`,` for the CSV flavours, whitespace for the public ASCII)."""
    if fmt == "ascii":
        return f"split(regexp_replace({line}, '^\\\\s+|\\\\s+$', ''), '\\\\s+', -1)"
    return f"split({line}, ',', -1)"


def id_sql(fields: str, n_fields: int, id_pos: int | None) -> str:
    """SQL: the typed ID of a split line, exactly as `cleaning.validate` types it (null when the
    line has the wrong field count or the ID is not 1-18 digits)."""
    if id_pos is None:
        return "CAST(NULL AS BIGINT)"
    x = f"trim(get({fields}, {id_pos}))"
    return (f"CASE WHEN size({fields}) = {n_fields} AND {x} RLIKE '^[0-9]{{1,18}}$' "
            f"THEN try_cast({x} AS BIGINT) END")


def _scan_text(spark, files: list[str]):
    """The text scan both passes share: line, file URI, split start, monotonically_increasing_id
    (contiguous within a split, so min(_mid) per split + a per-split offset = line number)."""
    from pyspark.sql import functions as F

    value = F.col("value")
    # a UTF-8 byte-order mark starts the first line of some files (check_text admits only UTF-8)
    value = F.when(F.startswith(value, F.lit("\ufeff")), F.substring(value, 2, 1 << 30)).otherwise(value)
    return (spark.read.text(files)
            .select(value.alias("value"),
                    F.col("_metadata.file_path").alias("_uri"),
                    F.col("_metadata.file_block_start").alias("_blk"),
                    F.monotonically_increasing_id().alias("_mid")))


@dataclass
class LineIndex:
    """What the one light pass over the text learnt (see `scan_index`)."""

    offsets: dict                 # group_key -> small DataFrame (_uri, _blk, _off, source_file, _hdr)
    stats: dict                   # path -> {"lines": n, "data_lines": n}
    duplicate_ids: list           # typed IDs that occur on more than one data line (all inputs)


def scan_index(spark, groups: list[list[FileLayout]], survey: Survey | None = None) -> LineIndex:
    """One light pass over every input: per file split the offset that turns
    monotonically_increasing_id into a 1-based line number, the line counts, and (with `survey`)
    the IDs that occur more than once (read from the ID field only; same typing as validation).

    The narrow per-line frame (no text) is cached so both aggregations share one scan."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    frames = []
    for group in groups:
        fmt, n_fields, positions = group[0].group_key
        pos = dict(positions)
        id_pos = pos.get(survey.id_column) if survey is not None else None
        txt = _scan_text(spark, [lay.path for lay in group])
        # a header line's ID field is the column label, never digits: no header test needed
        if fmt == "ascii" or id_pos is None:
            idx = id_sql(_split_sql(fmt, "value"), n_fields, id_pos)
        else:
            # CSV: count the commas and cut out the ID field; no need to split the whole line
            x = f"trim(substring_index(substring_index(value, ',', {id_pos + 1}), ',', -1))"
            idx = (f"CASE WHEN length(value) - length(replace(value, ',', '')) = {n_fields - 1} "
                   f"AND {x} RLIKE '^[0-9]{{1,18}}$' THEN try_cast({x} AS BIGINT) END")
        frames.append(txt.selectExpr(
            "`_uri`", "`_blk`", "`_mid`", f"{_is_data_line_sql('value')} AS `_data`",
            f"CASE WHEN {_is_data_line_sql('value')} THEN {idx} END AS `_id`"))
    narrow = frames[0]
    for f in frames[1:]:
        narrow = narrow.unionByName(f)
    narrow = narrow.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        blocks = (narrow.groupBy("_uri", "_blk")
                  .agg(F.min("_mid").alias("_m0"), F.count(F.lit(1)).alias("_n"),
                       F.sum(F.col("_data").cast("long")).alias("_nd"))
                  .collect())
        dups = []
        if survey is not None:
            dups = [r[0] for r in narrow.where(F.col("_id").isNotNull()).groupBy("_id").count()
                    .where(F.col("count") > 1).select("_id").collect()]
    finally:
        narrow.unpersist()
    header_lines = {lay.path: lay.header_line for g in groups for lay in g}
    by_file: dict[str, list] = {}
    for r in blocks:
        by_file.setdefault(r["_uri"], []).append(r)
    rows_by_path, stats = {}, {}
    for uri, rs in by_file.items():
        path = _uri_to_path(uri)
        before, rows = 0, []
        for r in sorted(rs, key=lambda r: r["_blk"]):
            rows.append((uri, int(r["_blk"]), before - int(r["_m0"]) + 1, path,
                         int(header_lines.get(path, 0))))
            before += int(r["_n"])
        rows_by_path[path] = rows
        nd = sum(int(r["_nd"] or 0) for r in rs)
        stats[path] = {"lines": before, "data_lines": nd - (1 if header_lines.get(path) else 0)}
    schema = "_uri string, _blk long, _off long, source_file string, _hdr long"
    offsets = {}
    for group in groups:
        rows = [row for lay in group for row in rows_by_path.get(lay.path, [])]
        offsets[group[0].group_key] = spark.createDataFrame(rows, schema)
    return LineIndex(offsets=offsets, stats=stats, duplicate_ids=dups)


# Java's \s: the characters a data-line test skips before looking for text or '#'
_WS = " \t\n\u000b\f\r"


def _is_data_line_sql(value: str) -> str:
    """SQL: not blank and not a '#' comment (leading whitespace ignored). No regex."""
    ws = "".join(f"\\u{ord(c):04x}" for c in _WS)
    s = f"trim(LEADING '{ws}' FROM {value})"
    return f"({s} != '' AND NOT startswith({s}, '#'))"


def read_group(spark, layouts: list[FileLayout], survey: Survey, index: LineIndex | None = None):
    """One Spark scan over files sharing a layout -> raw DataFrame (see module docstring).

    `index`: the result of `scan_index` over these files (computed here when not given).
    Returns (DataFrame, {path: line statistics}).
    """
    from pyspark.sql import functions as F

    fmt, n_fields, positions = layouts[0].group_key
    files = [lay.path for lay in layouts]
    if index is None:
        index = scan_index(spark, [layouts])
    offsets = index.offsets[layouts[0].group_key]
    stats = {p: index.stats[p] for p in files if p in index.stats}
    txt = _scan_text(spark, files).withColumnRenamed("value", RAW_LINE)
    df = txt.join(F.broadcast(offsets), on=["_uri", "_blk"], how="inner")
    df = df.selectExpr(f"`{SOURCE_FILE}`", f"`_mid` + `_off` AS `{LINE_NUMBER}`", f"`{RAW_LINE}`",
                       "`_hdr`")
    df = df.where(f"{_is_data_line_sql(_quote(RAW_LINE))} AND `{LINE_NUMBER}` != `_hdr`")
    df = df.selectExpr(f"`{SOURCE_FILE}`", f"`{LINE_NUMBER}`", f"`{RAW_LINE}`",
                       f"{_split_sql(fmt, _quote(RAW_LINE))} AS `_f`")
    pos = dict(positions)
    ok = f"size(`_f`) = {n_fields}"
    exprs = [f"`{SOURCE_FILE}`", f"`{LINE_NUMBER}`", f"'{fmt}' AS `{INPUT_FORMAT}`",
             f"size(`_f`) AS `{N_FIELDS}`", f"{n_fields} AS `{EXPECTED_FIELDS}`", f"`{RAW_LINE}`"]
    for name in raw_columns(survey)[len(META_COLUMNS):]:
        if name in pos:
            exprs.append(f"CASE WHEN {ok} THEN trim(get(`_f`, {pos[name]})) END AS `{name}`")
        else:
            exprs.append(f"CAST(NULL AS STRING) AS `{name}`")
    return df.selectExpr(*exprs), stats


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def group_layouts(layouts: list[FileLayout]) -> list[list[FileLayout]]:
    """Files with the same format, field count and column positions, grouped (one scan each)."""
    groups: dict = {}
    for lay in layouts:
        groups.setdefault(lay.group_key, []).append(lay)
    return list(groups.values())


def read_groups(spark, spec, survey: Survey, fmt: str = "auto"):
    """Resolve `spec`, inspect every file (driver, header only) and plan one scan per layout.

    Returns ([(format, [FileLayout], raw DataFrame)], {path: line statistics}).
    """
    layouts = [inspect_file(p, survey, fmt) for p in resolve_inputs(spec)]
    out, stats = [], {}
    for group in group_layouts(layouts):
        df, st = read_group(spark, group, survey)
        out.append((group[0].format, group, df))
        stats.update(st)
    return out, stats


def read_catalogue(spark, spec, survey: Survey, fmt: str = "auto"):
    """All inputs as one raw DataFrame (layouts unioned by name): -> (DataFrame, layouts, stats)."""
    groups, stats = read_groups(spark, spec, survey, fmt)
    raw = groups[0][2]
    for _, _, df in groups[1:]:
        raw = raw.unionByName(df)
    return raw, [lay for _, g, _ in groups for lay in g], stats


# ---- VizieR -> public convention (pure pandas; used to build fixtures and benchmark input) --
