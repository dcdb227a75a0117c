"""A survey as code sees it: the validated `Survey` (bands, columns, sentinels, layout, labels,
spectroscopy, mock recipe) and the canonical band-state constants. Reading and validating a survey
file is galaxy_spark.survey; this module imports nothing of the project, so every layer (and the
registered model's shipped code) can use it.
"""
from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path

SPARK_TYPES = ("long", "int", "double", "string")

# Band states in the canonical catalogue (the `<band>_state` columns).
DETECTED = 0
NOT_DETECTED = 1
NOT_OBSERVED = 2

# `labels:` keys that are settings, not column names
LABEL_SETTINGS = ("star_threshold", "spectral_type_range", "absolute_magnitude_filter")


def lim_column(band: str) -> str:
    """Canonical column with the 1-sigma limiting magnitude of a non-detection."""
    return f"{band}_lim"


def state_column(band: str) -> str:
    """Canonical column with the band's state (DETECTED / NOT_DETECTED / NOT_OBSERVED)."""
    return f"{band}_state"


class SurveyConfigError(ValueError):
    """A survey YAML file is missing a key or has a value of the wrong kind."""


@dataclass(frozen=True)
class Column:
    """A catalogue column: canonical name, Spark type, VizieR label; for the mock, the quantity it
    holds (`mock`, see galaxy_spark.mock.columns.MOCK_QUANTITIES), the band it belongs to, its text
    format and its description in the ASCII header."""
    name: str
    type: str
    vizier: str | None = None
    mock: str | None = None
    band: str | None = None
    format: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class MockConfig:
    """The `mock:` section: survey facts the simulated catalogue needs beyond bands and depths."""
    star_fraction: float              # share of the detected objects that are stars
    candidate_limit_mag: float        # galaxies are drawn to this detection-band magnitude before the cut
    saturation_mag: float             # stars brighter than this (detection band) are saturated
    stellar_flag_mag: float           # the statistical star flag is 0.5 (unknown) at and beyond this
    field_centres: dict[int, tuple[float, float]]   # field -> (RA, Dec) J2000 degrees
    image_pattern: str                # detection image name, {field} {pointing} {ccd} {band}
    title: str                        # first line of the mock's ASCII headers


@dataclass(frozen=True)
class Band:
    """One band of the survey file: filter (pivot, FWHM in Å; response curve), 5σ depth (AB mag)."""
    name: str
    pivot_aa: float
    fwhm_aa: float
    depth_5sigma: float
    response: dict | None
    synthetic: bool
    vizier: dict
    noise_depth_5sigma: float | None = None   # mock noise depth; see the survey file's comment


@dataclass(frozen=True)
class SpecSource:
    """One spectroscopic survey's completeness: fraction / (1 + exp((m - mag_50) / mag_width))."""
    survey: str
    fraction: float
    mag_50: float
    mag_width: float


@dataclass(frozen=True)
class Spectroscopy:
    """The `spectroscopy:` section: how the mock draws its spectroscopic sample (galaxy_spark.catalog.spec)."""
    target_size: int
    reference_objects: int
    deep_fields: dict[int, SpecSource]
    shallow: SpecSource
    star_factor: float
    quality_mags: tuple[float, ...]
    quality_fractions: dict[int, tuple[float, ...]]
    wrong_rate: dict[int, float]
    line_confusion: float
    uniform_range: tuple[float, float]
    line_pairs_aa: tuple[tuple[float, float], ...]
    z_error: float


@dataclass(frozen=True)
class Survey:
    """One validated survey file (`load_survey`); code asks it for bands, columns and sentinels."""
    name: str
    source: str
    id_column: str
    id_prefix: int
    id_digits: int
    pointings: dict[int, tuple[int, ...]]
    ccds: tuple[int, ...]
    area_deg2: float
    ascii_file_pattern: str
    sentinels: dict
    detection_band: str
    detection_min_snr: float
    completeness_mag: float
    bright_mag: float           # the headline bright / faint split (detection band, AB mag)
    bands: tuple[Band, ...]
    leading: tuple[Column, ...]
    trailing: tuple[Column, ...]
    error_prefix: str
    csv_extra: tuple[Column, ...]
    truth: tuple[Column, ...]
    labels: dict = field(default_factory=dict)
    spectroscopy: Spectroscopy | None = None
    mock: MockConfig | None = None
    file: str = ""              # the absolute path it was read from ("" when built in code)

    def mock_config(self) -> MockConfig:
        """The validated `mock:` section; SurveyConfigError when the survey has none."""
        if self.mock is None:
            raise SurveyConfigError(f"{self.source}: mock: missing section (needed to simulate this survey)")
        return self.mock

    def label(self, role: str) -> str | None:
        """The column holding the catalogue's label `role` (labels: section), None when it has none."""
        v = self.labels.get(role)
        return v if isinstance(v, str) else None

    def detection_label(self) -> str:
        """Axis label for the detection band, e.g. 'rSDSS (detection)'."""
        return f"{self.detection_band} (detection)"

    def spec_config(self) -> Spectroscopy:
        """The validated `spectroscopy:` section; SurveyConfigError when the survey has none."""
        if self.spectroscopy is None:
            raise SurveyConfigError(f"{self.source}: spectroscopy: missing section (needed for the mock's spectroscopic sample)")
        return self.spectroscopy

    # ---- bands -------------------------------------------------------------------------
    @property
    def band_names(self) -> list[str]:
        """Band names in survey-file order (the order of the magnitude/error pairs in the files)."""
        return [b.name for b in self.bands]

    @property
    def observed_bands(self) -> list[Band]:
        """Bands with a real filter curve (the synthetic detection band excluded)."""
        return [b for b in self.bands if not b.synthetic]

    def band(self, name: str) -> Band:
        """The band called `name` (KeyError when the survey has none)."""
        for b in self.bands:
            if b.name == name:
                return b
        raise KeyError(f"survey {self.name!r} has no band {name!r}")

    def error_column(self, band: str) -> str:
        """The column holding the magnitude error of `band` (error_prefix + band)."""
        return f"{self.error_prefix}{band}"

    # ---- fields ------------------------------------------------------------------------
    @property
    def fields(self) -> list[int]:
        """The survey's field numbers, sorted."""
        return sorted(self.pointings)

    def ccd_catalogues(self) -> list[tuple[int, int, int]]:
        """(field, pointing, ccd) of every CCD catalogue of the survey."""
        return [(f, p, c) for f in self.fields for p in self.pointings[f] for c in self.ccds]

    def make_id(self, field: int, pointing: int, ccd: int, n: int) -> int:
        """The survey's object ID of running number `n` in (field, pointing, ccd):
        prefix·10^k + field·10^(k-1) + pointing·10^(k-2) + ccd·10^(k-3) + n, k = digits − len(prefix)."""
        scale = 10 ** (self.id_digits - len(str(self.id_prefix)))
        return self.id_prefix * scale + field * scale // 10 + pointing * scale // 100 + ccd * scale // 1000 + n

    # ---- columns -----------------------------------------------------------------------
    def public_columns(self) -> list[Column]:
        """The public ASCII column list, in file order."""
        cols = list(self.leading)
        for b in self.bands:
            cols.append(Column(b.name, "double", b.vizier.get("magnitude")))
            cols.append(Column(self.error_column(b.name), "double", b.vizier.get("error")))
        cols.extend(self.trailing)
        return cols

    def csv_columns(self) -> list[Column]:
        """The CSV column list: the public ASCII columns, then the CSV-only extras."""
        return self.public_columns() + list(self.csv_extra)

    @property
    def thesis_clip(self) -> tuple[float, float]:
        """sentinels.thesis_clip: the [low, high] range (AB mag) the thesis clipped every magnitude
        to (see galaxy_spark.features.ThesisClip)."""
        lo, hi = self.sentinels["thesis_clip"]
        return float(lo), float(hi)


def response_location(response: dict, base=None):
    """Where a band's `response:` table is: `{package, file}` a resource the package ships under
    data/responses/, `{file}` a path relative to `base` (the survey file's directory) or absolute.
    The returned object has `.is_file()` and `.open()`."""
    if response.get("package"):
        return importlib.resources.files(response["package"]) / "data" / "responses" / response["file"]
    path = Path(response["file"])
    return path if path.is_absolute() or base is None else base / response["file"]
