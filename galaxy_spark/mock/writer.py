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

# formats of the non-band columns; band magnitudes/errors are %.3f, ints %i, other doubles %.3f
SPECIAL_FORMATS = {"RA": "%.4f", "Dec": "%.4f", "area": "%.0f", "fwhm": "%.2f", "stell": "%.2f",
                   "ell": "%.4f", "theta": "%.1f", "rk": "%.2f", "s2n": "%.2f", "Stellar_Flag": "%.2f",
                   "z_true": "%.4f"}

DESCRIPTIONS = {
    "ID": "Object ID (814·10^8 + Field·10^7 + Pointing·10^6 + CCD·10^5 + number)",
    "Field": "ALHAMBRA field", "Pointing": "Pointing within the field", "CCD": "LAICA CCD",
    "RA": "Right ascension (J2000, deg)", "Dec": "Declination (J2000, deg)",
    "x": "x position on the detection image (pixels)", "y": "y position on the detection image (pixels)",
    "area": "Isophotal area (pixels)", "fwhm": "FWHM (pixels)", "stell": "SExtractor CLASS_STAR",
    "ell": "Ellipticity 1 - b/a", "a": "Major-axis rms (pixels)", "b": "Minor-axis rms (pixels)",
    "theta": "Position angle (deg)", "rk": "Kron factor", "rf": "Flux radius (pixels)",
    "s2n": "S/N in the AUTO aperture (detection image)", "photoflag": "SExtractor flags",
    "F814W_3arcs": "F814W in a 3 arcsec aperture", "dF814W_3arcs": "its error",
    "F814W_3arcs_corr": "F814W in 3 arcsec, corrected (-99 = none)",
    "nfobs": "Bands with a detection", "xray": "X-ray counterpart", "PercW": "Weight percentage",
    "Satur_Flag": "Saturated", "Stellar_Flag": "Statistical star/galaxy flag (0 galaxy, 0.5 unknown, 1 star)",
    "DupliDet_Flag": "Duplicate detection", "zb_1": "BPZ redshift (first peak)",
    "zb_Min_1": "Lower 95% limit of zb_1", "zb_Max_1": "Upper 95% limit of zb_1",
    "Tb_1": "BPZ spectral type (1-11)", "Odds_1": "BPZ odds", "z_ml": "Maximum-likelihood redshift",
    "t_ml": "Maximum-likelihood type", "Chi2": "Reduced chi2 (99 = none)",
    "Stell_Mass_1": "log10 stellar mass (Msun)", "M_Abs_1": "Absolute B magnitude (AB)",
    "MagPrior": "Magnitude used for the BPZ prior (F814W)",
    "irms_OPT_Flag": "Optical bands with irms < 0.8", "irms_NIR_Flag": "NIR bands with irms < 0.8",
    "F814W_Image": "Detection image", "z_true": "[mock truth] redshift (0 for stars)",
    "type_true": "[mock truth] spectral type on the BPZ 1-11 scale (0 for stars)",
    "logmass_true": "[mock truth] log10 stellar mass (0 for stars)", "is_star": "[mock truth] 1 = star",
}


def column_formats(survey, names) -> list[str]:
    types = {c.name: c.type for c in survey.csv_columns() + list(survey.truth)}
    bands = set(survey.band_names) | {survey.error_column(b) for b in survey.band_names}
    out = []
    for n in names:
        t = types[n]
        if n in SPECIAL_FORMATS:
            out.append(SPECIAL_FORMATS[n])
        elif t in ("int", "long"):
            out.append("%i")
        elif t == "string":
            out.append("%s")
        elif n in bands:
            out.append("%.3f")
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
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    if name in survey.band_names:
        return f"{name} AB magnitude (99 = not detected, -99 = not observed)"
    for b in survey.band_names:
        if name == survey.error_column(b):
            return f"{b} error (1-sigma limit if not detected, 0 if not observed)"
        if name == f"irms_{b}":
            return f"{b} weight-image value (0-1)"
    return name


def ascii_header(survey, names, field, pointing, ccd, n, seed) -> str:
    lines = [
        f"## ALHAMBRA-like mock catalogue (galaxy_spark), field {field} pointing {pointing} CCD {ccd}",
        "## Physically based simulation: kcorrect SED mixtures, Madau IGM, Calzetti dust, real ALHAMBRA",
        f"## filter curves; {n} objects, seed {seed}. Magnitudes AB; 99 = not detected (error = 1-sigma",
        "## limiting magnitude), -99 = not observed (error 0). Truth columns appended at the end.",
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
