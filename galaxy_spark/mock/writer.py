"""Writers for the mock: one CSV with header, or the 48-file public ASCII layout, and the
spectroscopic sample next to either (X.csv -> X.specz.csv; directory D -> D.specz.csv).

Formats (as the public files): RA/Dec %.4f, x/y %.3f, magnitudes and errors %.3f, flags %i,
BPZ values %.3f. Rows are formatted with one `%` operation per row (≈10 µs), which keeps a
446k-row file to seconds.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from galaxy_spark.errors import InputError

def column_formats(survey, names) -> list[str]:
    """printf formats of `names`: the survey file's `format:` where it gives one, else by type
    (ints %i, strings %s, doubles — band magnitudes and errors included — %.3f)."""
    cols = {c.name: c for c in survey.csv_columns() + list(survey.truth)}
    out = []
    for n in names:
        c = cols[n]
        if c.format:
            out.append(c.format)
        elif c.type in ("int", "long"):
            out.append("%i")
        elif c.type == "string":
            out.append("%s")
        else:
            out.append("%.3f")
    return out


def csv_names(survey) -> list[str]:
    return [c.name for c in survey.csv_columns()] + [c.name for c in survey.truth]


def ascii_names(survey) -> list[str]:
    return [c.name for c in survey.public_columns()] + [c.name for c in survey.truth]


def format_rows(cols: dict, names, fmts, sep: str) -> str:
    fmt = sep.join(fmts) + "\n"
    data = []
    for n, f in zip(names, fmts):
        v = cols[n]
        if f == "%i":
            data.append(np.asarray(v).astype(np.int64).tolist())
        elif f == "%s":
            data.append(list(v))
        else:
            data.append(np.asarray(v, float).tolist())
    return "".join(fmt % row for row in zip(*data))


def _describe(survey, name):
    described = {c.name: c.description for c in survey.csv_columns() + list(survey.truth) if c.description}
    if name in described:
        return described[name]
    if name in survey.band_names:
        return f"{name} AB magnitude (99 = not detected, -99 = not observed)"
    for b in survey.band_names:
        if name == survey.error_column(b):
            return f"{b} error (1-sigma limit if not detected, 0 if not observed)"
    return name


def ascii_header(survey, names, field, pointing, ccd, n, seed) -> str:
    lines = [
        f"## {survey.mock_config().title} (galaxy_spark), field {field} pointing {pointing} CCD {ccd}",
        "## Physically based simulation: kcorrect SED mixtures, Madau IGM, Calzetti dust, the survey",
        f"## file's filter curves; {n} objects, seed {seed}. Magnitudes AB; "
        f"{survey.sentinels['not_detected_magnitude']:g} = not detected (error = 1-sigma",
        f"## limiting magnitude), {survey.sentinels['not_observed_magnitude']:g} = not observed "
        f"(error {survey.sentinels['not_observed_error']:g}). Truth columns appended at the end.",
        "##",
    ]
    for i, name in enumerate(names, 1):
        lines.append(f"# {i:3d} {name:<18s} {_describe(survey, name)}")
    lines.append("# " + " ".join(names))
    return "\n".join(lines) + "\n"


def check_out_path(path: str, fmt: str) -> Path:
    from galaxy_spark.io.paths import check_job_paths

    check_job_paths({}, {"--out": (path, "file" if fmt == "csv" else "rawdir")})
    p = Path(path)
    if fmt == "csv":
        parent = p.parent if str(p.parent) else Path(".")
        if p.is_dir():
            raise InputError(f"--out {path}: is a directory; --format csv needs a file path")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"--out {path}: cannot create {parent}: {e.strerror}") from None
        if not os.access(parent, os.W_OK):
            raise InputError(f"--out {path}: directory {parent} is not writable")
    else:
        if p.exists() and not p.is_dir():
            raise InputError(f"--out {path}: exists and is not a directory; --format ascii writes 48 files into a directory")
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"--out {path}: cannot create directory: {e.strerror}") from None
        if not os.access(p, os.W_OK):
            raise InputError(f"--out {path}: directory is not writable")
    return p


def write_csv(survey, chunks, path: str) -> int:
    names = csv_names(survey)
    fmts = column_formats(survey, names)
    n = 0
    with _atomic_file(path, "--out ") as tmp, open(tmp, "w", newline="") as fh:
        fh.write(",".join(names) + "\n")
        for _, cols in chunks:
            fh.write(format_rows(cols, names, fmts, ","))
            n += len(cols[names[0]])
    return n


@contextlib.contextmanager
def _atomic_file(path, label: str = ""):
    """Yield a temporary sibling to write; it replaces `path` only when the block succeeds."""
    tmp = Path(str(path) + ".part")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise InputError(f"{label}{path}: cannot write: {e.strerror}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


# ---- the spectroscopic sample ----------------------------------------------------------------
SPEC_STREAM = 0x5BEC    # second entropy word of the sample's RNG: never touches the catalogue's streams


def spec_path(out: str, fmt: str) -> Path:
    """Where the spectroscopic sample of `--out` goes: X.csv -> X.specz.csv; a directory D -> D.specz.csv."""
    p = Path(out)
    if p.name in ("", ".", ".."):
        p = p.resolve()
    stem = p.name[:-4] if fmt == "csv" and p.name.lower().endswith(".csv") else p.name
    return p.with_name(stem + ".specz.csv")


def check_spec_path(out: str, fmt: str) -> Path:
    from galaxy_spark.io.paths import check_job_paths

    path = spec_path(out, fmt)
    check_job_paths({}, {"--out (spectroscopic sample)": (str(path), "file")})
    return path


class SpecCollector:
    """Pass CCD chunks through, keeping only the columns the spectroscopic draw needs."""

    def __init__(self, survey):
        self.names = [survey.id_column, "Field", survey.detection_band, "z_true", "is_star"]
        self.parts: list[dict] = []

    def tap(self, chunks):
        for key, cols in chunks:
            self.parts.append({k: np.asarray(cols[k]).copy() for k in self.names})
            yield key, cols

    def table(self) -> dict:
        return {k: np.concatenate([p[k] for p in self.parts]) for k in self.names}


def write_spec(survey, table: dict, path, seed: int) -> int:
    """Draw the spectroscopic sample of `table` with its own RNG stream and write it as CSV."""
    from galaxy_spark.catalog import spec

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPEC_STREAM]))
    sample = spec.draw_spec_sample(table, survey, rng)
    with _atomic_file(path) as tmp:
        sample.to_csv(tmp, index=False, columns=spec.spec_columns(survey), float_format="%.5f")
    return len(sample)


def write_ascii(survey, chunks, directory: str, seed: int) -> list[Path]:
    names = ascii_names(survey)
    fmts = column_formats(survey, names)
    written = []
    for (f, p, c), cols in chunks:
        path = Path(directory) / survey.ascii_file_pattern.format(field=f, pointing=p, ccd=c)
        n = len(cols[names[0]])
        try:
            with open(path, "w") as fh:
                fh.write(ascii_header(survey, names, f, p, c, n, seed))
                fh.write(format_rows(cols, names, fmts, " "))
        except OSError as e:
            raise InputError(f"{path}: cannot write: {e.strerror}") from None
        written.append(path)
    return written
