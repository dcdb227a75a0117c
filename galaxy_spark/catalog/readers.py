"""Catalogue readers: public ASCII, CSV and VizieR CSV -> one raw DataFrame of string columns.

Every reader works the same way, so that all three formats share one fast, UDF-free path:

1. The driver resolves the input (file, directory or glob) and reads each file's *header* only
   (`inspect_file`): it detects the format, matches the header names case-insensitively against the
   survey's column names (``zb_min_1``/``zb_Min_1``, ``id``/``ID``…) and fails with an
   `InputError` naming the file and column when a required column is missing.
2. Spark reads the files as text (`spark.read.text`, no schema inference), drops blank lines,
   ``#`` lines and the CSV header line, and splits each line with SQL ``split`` (on ``,`` for the
   CSV flavours, on whitespace for the public ASCII).
3. Each canonical column is picked from the split array by its position in *that file's* header,
   as a trimmed string; files with the same layout are read in one scan, different layouts are
   unioned by name.

Each raw row carries `source_file`, `line_number` (1-based physical line in its file),
`raw_line` (the line as read), `n_fields` / `expected_fields` and `input_format`. Typing,
sentinel decoding and validation happen in `galaxy_spark.catalog.cleaning`.

The Spark scan itself (exact line numbers, duplicate IDs, one pass per layout) is
`galaxy_spark.catalog.scan`.
"""
from __future__ import annotations

import glob as _glob
import codecs
import gzip
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from galaxy_spark.errors import InputError
from galaxy_spark.survey import Column, Survey

FORMATS = ("ascii", "csv", "vizier")

# Meta columns of the raw frame
SOURCE_FILE = "source_file"
LINE_NUMBER = "line_number"
RAW_LINE = "raw_line"
N_FIELDS = "n_fields"
EXPECTED_FIELDS = "expected_fields"
INPUT_FORMAT = "input_format"
META_COLUMNS = (SOURCE_FILE, LINE_NUMBER, INPUT_FORMAT, N_FIELDS, EXPECTED_FIELDS, RAW_LINE)

# How many bytes of a file the driver reads at most to find its header
_HEADER_PEEK_BYTES = 4 << 20


def limit_flag_column(band: str) -> str:
    """Raw column holding a VizieR limit flag (``l_X``: '<' = not detected) for `band`."""
    return f"{band}_limflag"


# ---- column sets ---------------------------------------------------------------------------
def raw_value_columns(survey: Survey) -> list[Column]:
    """Every value column a raw frame carries (strings), in canonical order."""
    return survey.csv_columns() + list(survey.truth)


def limit_flag_bands(survey: Survey) -> list[str]:
    """Bands whose VizieR table has a limit-flag column."""
    return [b.name for b in survey.bands if b.vizier.get("limit_flag")]


def raw_columns(survey: Survey) -> list[str]:
    """All columns of a raw frame, in order: meta, values, limit flags."""
    return (list(META_COLUMNS) + [c.name for c in raw_value_columns(survey)]
            + [limit_flag_column(b) for b in limit_flag_bands(survey)])


def _required(survey: Survey, fmt: str) -> list[str]:
    """Canonical names of the columns a file of this format must have."""
    return [c.name for c in survey.public_columns()]


def _label_map(survey: Survey, fmt: str) -> dict[str, str]:
    """lower-cased file label -> canonical raw column name, for one format."""
    out: dict[str, str] = {}
    if fmt == "vizier":
        for c in survey.leading + survey.trailing:
            out[(c.vizier or c.name).lower()] = c.name
        for b in survey.bands:
            v = b.vizier
            out[(v.get("magnitude") or b.name).lower()] = b.name
            out[(v.get("error") or survey.error_column(b.name)).lower()] = survey.error_column(b.name)
            if v.get("limit_flag"):
                out[v["limit_flag"].lower()] = limit_flag_column(b.name)
        for c in list(survey.csv_extra) + list(survey.truth):
            out.setdefault((c.vizier or c.name).lower(), c.name)
    else:
        for c in raw_value_columns(survey):
            out[c.name.lower()] = c.name
    return out


def _vizier_label(survey: Survey, name: str) -> str:
    """The VizieR label of a canonical raw column (for error messages)."""
    for c in survey.leading + survey.trailing + survey.csv_extra + survey.truth:
        if c.name == name:
            return c.vizier or c.name
    for b in survey.bands:
        if name == b.name:
            return b.vizier.get("magnitude") or name
        if name == survey.error_column(b.name):
            return b.vizier.get("error") or name
        if name == limit_flag_column(b.name):
            return b.vizier.get("limit_flag") or name
    return name


# ---- input resolution ----------------------------------------------------------------------
def resolve_inputs(spec: str | os.PathLike | list) -> list[str]:
    """A file, a directory (its visible regular files) or a glob -> sorted absolute file paths.

    Raises InputError naming the input when nothing is found or a file cannot be read.
    """
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    files: list[str] = []
    for s in specs:
        s = str(s)
        if s.startswith("file://"):
            s = urlparse(s).path
        elif s.startswith("file:"):
            s = s[len("file:"):]
        p = Path(s)
        if any(ch in s for ch in "*?["):
            hits = sorted(h for h in _glob.glob(s) if Path(h).is_file())
            if not hits:
                raise InputError(f"no input file matches {s!r}")
            files += hits
        elif p.is_dir():
            hits = sorted(str(q) for q in p.iterdir()
                          if q.is_file() and not q.name.startswith((".", "_")))
            if not hits:
                raise InputError(f"input directory {s!r} holds no files")
            files += hits
        elif p.exists():
            if not p.is_file():
                raise InputError(f"input {s!r} is not a regular file")
            files.append(s)
        else:
            raise InputError(f"input not found: {s!r}")
    out = []
    for f in files:
        a = os.path.abspath(f)
        if not os.access(a, os.R_OK):
            raise InputError(f"input file is not readable: {a!r}")
        if a not in out:
            out.append(a)
    return out


def _open_text(path: str):
    # utf-8-sig: a byte-order mark (a spreadsheet's "CSV UTF-8" export) is not part of the header
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace")
    return open(path, encoding="utf-8-sig", errors="replace")


NEWLINE = b"\n"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def check_text(path: str, chunk: int = 8 << 20) -> None:
    """InputError naming the file unless it is UTF-8 (or ASCII) text: a NUL byte, a UTF-16/32
    byte-order mark or bytes that are not UTF-8 mean a binary or wrongly encoded file, whose
    lines would otherwise be quarantined one by one as garbage. Reads the whole file (gzip:
    decompressed) in chunks; about 1 s per GB."""
    opener = gzip.open if path.endswith(".gz") else open
    dec = codecs.getincrementaldecoder("utf-8")()
    offset, line = 0, 1
    try:
        with opener(path, "rb") as fh:
            while True:
                b = fh.read(chunk)
                if offset == 0 and b.startswith(_UTF16_BOMS):
                    enc = "UTF-32" if b[:4] in _UTF16_BOMS[2:] else "UTF-16"
                    raise InputError(f"input file {path!r} is {enc} encoded; save it as UTF-8 "
                                     f"(a spreadsheet's 'CSV UTF-8', or iconv -f {enc} -t UTF-8)")
                nul = b.find(b"\x00")
                if nul >= 0:
                    at = line + b.count(NEWLINE, 0, nul)
                    raise InputError(f"input file {path!r} is not a text file: NUL byte at byte {offset + nul} "
                                     f"(line {at}); is it a binary or compressed file?")
                try:
                    dec.decode(b, final=not b)
                except UnicodeDecodeError as e:
                    # the decoder may hold up to 3 bytes of the previous chunk: positions are approximate
                    at = line + e.object.count(NEWLINE, 0, e.start)
                    raise InputError(f"input file {path!r} is not UTF-8 text: byte 0x{e.object[e.start]:02x} "
                                     f"near byte {offset + e.start} (line {at}) cannot be decoded; "
                                     "save it as UTF-8") from None
                if not b:
                    return
                line += b.count(NEWLINE)
                offset += len(b)
    except OSError as e:
        raise InputError(f"cannot read input file {path!r}: {e.strerror or e}") from None
    except (EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"cannot read input file {path!r}: {e}") from None


def _peek(path: str, max_lines: int = 2000) -> list[tuple[int, str]]:
    """Up to the first data line: [(line_number, text)] of leading comment/blank lines + 1 more."""
    lines: list[tuple[int, str]] = []
    read = 0
    try:
        with _open_text(path) as fh:
            for i, line in enumerate(fh, start=1):
                read += len(line)
                line = line.rstrip("\r\n")
                lines.append((i, line))
                s = line.strip()
                if s and not s.startswith("#"):
                    # the first non-comment line; for CSV take the one after it too
                    nxt = fh.readline()
                    if nxt:
                        lines.append((i + 1, nxt.rstrip("\r\n")))
                    break
                if i >= max_lines or read > _HEADER_PEEK_BYTES:
                    break
    except OSError as e:
        raise InputError(f"cannot read input file {path!r}: {e.strerror or e}") from None
    except (EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"cannot read input file {path!r}: {e}") from None
    return lines


# ---- format detection and header parsing ---------------------------------------------------
@dataclass(frozen=True)
class FileLayout:
    """What the driver learnt from one file's header."""

    path: str
    format: str                                 # ascii | csv | vizier
    n_fields: int                               # fields per data line
    header_line: int                            # 1-based line number of a CSV header, 0 if none
    positions: tuple[tuple[str, int], ...]      # canonical raw column -> 0-based field index
    ignored: tuple[str, ...] = ()               # header names that are not survey columns

    @property
    def group_key(self):
        """Files with equal keys are read in one Spark scan."""
        return (self.format, self.n_fields, self.positions)


_SEX_LINE = re.compile(r"^#+\s*(\d+)\s+(\S+)")


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def sniff_format(path: str, survey: Survey, lines: list[tuple[int, str]] | None = None) -> str:
    """ascii | csv | vizier from the file's first lines (and its name as a hint)."""
    lines = _peek(path) if lines is None else lines
    first = next((t for _, t in lines if t.strip()), None)
    if first is None:
        raise InputError(f"input file {path!r} is empty")
    if first.lstrip().startswith("#"):
        return "ascii"
    if "," not in first:
        return "ascii"
    tokens = [t.strip().lower() for t in first.split(",")]
    if all(_is_number(t) for t in tokens if t):
        raise InputError(f"input file {path!r} looks like a CSV without a header line; "
                         "CSV input needs a header (give --format ascii for headerless ASCII)")
    public = set(_label_map(survey, "csv"))
    vizier = set(_label_map(survey, "vizier"))
    n_pub = sum(t in public for t in tokens)
    n_viz = sum(t in vizier for t in tokens)
    flags = {b.vizier["limit_flag"].lower() for b in survey.bands if b.vizier.get("limit_flag")}
    if n_viz > n_pub or any(t in flags for t in tokens):
        return "vizier"
    return "csv"


def _ascii_header_names(comment_lines: list[str], n_data: int) -> list[str] | None:
    """Column names from an ASCII header: the last one-line name list, else SExtractor lines."""
    for text in reversed(comment_lines):
        body = text.lstrip("#").strip()
        if not body:
            continue
        toks = body.split()
        if len(toks) == n_data and not _SEX_LINE.match(text):
            return toks
        break
    numbered: dict[int, str] = {}
    for text in comment_lines:
        m = _SEX_LINE.match(text)
        if m:
            numbered[int(m.group(1))] = m.group(2)
    if numbered:
        n = max(max(numbered), n_data)
        return [numbered.get(i, f"_unnamed_{i}") for i in range(1, n + 1)]
    return None


def inspect_file(path: str, survey: Survey, fmt: str = "auto") -> FileLayout:
    """Read one file's header on the driver and map its columns; InputError names what's wrong."""
    lines = _peek(path)
    if fmt == "auto":
        fmt = sniff_format(path, survey, lines)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r} (expected auto, {', '.join(FORMATS)})")
    data = [(i, t) for i, t in lines if t.strip() and not t.lstrip().startswith("#")]
    header_line = 0
    if fmt == "ascii":
        comments = [t for _, t in lines if t.lstrip().startswith("#")]
        n_data = len(data[0][1].split()) if data else 0
        names = _ascii_header_names(comments, n_data)
        if names is None:
            # no header: the fixed public order, optionally followed by the truth columns (or
            # their first ones: files of older mocks carry fewer)
            fixed = [c.name for c in survey.public_columns()]
            extra = n_data - len(fixed)
            names = fixed + [c.name for c in survey.truth][:extra] if 0 < extra <= len(survey.truth) else fixed
    else:
        if not data:
            raise InputError(f"input file {path!r} has no header line")
        header_line, head = data[0]
        names = [t.strip().strip('"') for t in head.split(",")]
    labels = _label_map(survey, fmt)
    positions: dict[str, int] = {}
    ignored = []
    for i, n in enumerate(names):
        canon = labels.get(n.lower())
        if canon is None:
            ignored.append(n)
        elif canon in positions:
            raise InputError(f"input file {path!r}: column {n!r} appears twice in the header")
        else:
            positions[canon] = i
    missing = [c for c in _required(survey, fmt) if c not in positions]
    if missing:
        shown = [_vizier_label(survey, c) if fmt == "vizier" else c for c in missing]
        more = f" (and {len(shown) - 5} more)" if len(shown) > 5 else ""
        raise InputError(f"input file {path!r} ({fmt}): missing required column"
                         f"{'s' if len(shown) > 1 else ''} {', '.join(shown[:5])}{more}")
    if fmt == "vizier":
        for b in limit_flag_bands(survey):
            if limit_flag_column(b) not in positions:
                raise InputError(f"input file {path!r} (vizier): missing required column "
                                 f"{survey.band(b).vizier['limit_flag']}")
    order = {c: k for k, c in enumerate(raw_columns(survey))}
    pos = tuple(sorted(positions.items(), key=lambda kv: order.get(kv[0], 1 << 30)))
    return FileLayout(path=path, format=fmt, n_fields=len(names), header_line=header_line,
                      positions=pos, ignored=tuple(ignored))


# ---- Spark side ----------------------------------------------------------------------------
def vizier_frame_to_public(vz, survey: Survey):
    """A VizieR table (pandas, all strings) -> the public column set with ColorPro sentinels.

    '<' + limit -> magnitude = not-detected sentinel, error = the limit; both empty -> the
    not-observed sentinel and error. Returns a pandas DataFrame of strings in public order.
    """
    import pandas as pd

    s = survey.sentinels
    nd, no, noe = (s["not_detected_magnitude"], s["not_observed_magnitude"],
                   s["not_observed_error"])
    lower = {c.lower(): c for c in vz.columns}

    def col(label):
        c = lower.get(label.lower())
        if c is None:
            raise KeyError(f"VizieR table lacks column {label!r}")
        return vz[c].astype(str).str.strip()

    out = {}
    for c in survey.leading:
        out[c.name] = col(c.vizier or c.name)
    for b in survey.bands:
        m = col(b.vizier.get("magnitude") or b.name)
        e = col(b.vizier.get("error") or survey.error_column(b.name))
        flag = col(b.vizier["limit_flag"]) if b.vizier.get("limit_flag") else pd.Series("", index=vz.index)
        lim = flag == "<"
        empty = (m == "") & (e == "")
        mag = m.where(~lim, f"{nd:g}").where(~empty, f"{no:g}")
        err = e.where(~lim, m).where(~empty, f"{noe:g}")
        out[b.name] = mag
        out[survey.error_column(b.name)] = err
    for c in survey.trailing:
        out[c.name] = col(c.vizier or c.name)
    return pd.DataFrame(out)
