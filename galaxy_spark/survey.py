"""Survey definitions loaded from surveys/<name>.yaml (packaged in galaxy_spark/conf/surveys/;
see galaxy_spark.config for the GALAXY_SPARK_CONF_DIR override).

Everything that is specific to a survey (bands, sentinels, column names per format, the field
layout) lives in that file; code asks the Survey object (galaxy_spark.survey_types, re-exported
here). Loading validates the file and names the offending key in every error, e.g. ``alhambra.yaml: bands[3].pivot_aa: expected a positive number``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from galaxy_spark.config import SURVEYS, conf_names, find_conf, is_yaml_path, searched
from galaxy_spark.survey_types import (  # noqa: F401  (the survey's types, re-exported)
    DETECTED, LABEL_SETTINGS, NOT_DETECTED, NOT_OBSERVED, SPARK_TYPES, Band, Column, MockConfig, SpecSource,
    Spectroscopy, Survey, SurveyConfigError, lim_column, response_location, state_column)


def _response(raw: Any, src: str, path: str, base) -> dict:
    _get(raw, "file", src, path, "str")
    package = _get(raw, "package", src, path, "str", required=False)
    scale = _get(raw, "scale", src, path, "str")
    if scale not in ("percent", "fraction"):
        raise _err(src, f"{path}.scale", f"expected 'percent' or 'fraction', got {scale!r}")
    try:
        location = response_location(raw, base)
        found = location.is_file()
    except ModuleNotFoundError:
        raise _err(src, f"{path}.package", f"package {package!r} is not installed") from None
    if not found:
        raise _err(src, f"{path}.file", f"no curve file {raw['file']!r} "
                   + (f"in package {package!r}" if package else f"(looked at {location})"))
    return {**raw, "location": location, "approximate": bool(raw.get("approximate", False))}


def _err(src: str, key: str, msg: str) -> SurveyConfigError:
    return SurveyConfigError(f"{src}: {key}: {msg}")


def _get(d: Any, key: str, src: str, path: str, kind=None, required=True, default=None):
    if not isinstance(d, dict):
        raise _err(src, path, f"expected a mapping, got {type(d).__name__}")
    full = f"{path}.{key}" if path else key
    if key not in d or d[key] is None:
        if required:
            raise _err(src, full, "missing required key")
        return default
    v = d[key]
    if kind == "number":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _err(src, full, f"expected a number, got {v!r}")
    elif kind == "positive":
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise _err(src, full, f"expected a positive number, got {v!r}")
    elif kind == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise _err(src, full, f"expected an integer, got {v!r}")
    elif kind == "str":
        if not isinstance(v, str) or not v:
            raise _err(src, full, f"expected a non-empty string, got {v!r}")
    elif kind == "list":
        if not isinstance(v, list) or not v:
            raise _err(src, full, f"expected a non-empty list, got {v!r}")
    elif kind == "dict":
        if not isinstance(v, dict):
            raise _err(src, full, f"expected a mapping, got {v!r}")
    return v


def _optional_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _columns(raw: Any, src: str, path: str) -> tuple[Column, ...]:
    if not isinstance(raw, list):
        raise _err(src, path, f"expected a list of columns, got {raw!r}")
    out = []
    for i, c in enumerate(raw):
        p = f"{path}[{i}]"
        name = _get(c, "name", src, p, "str")
        typ = _get(c, "type", src, p, "str")
        if typ not in SPARK_TYPES:
            raise _err(src, f"{p}.type", f"expected one of {SPARK_TYPES}, got {typ!r}")
        fmt = c.get("format")
        if fmt is not None and (not isinstance(fmt, str) or not fmt.startswith("%")):
            raise _err(src, f"{p}.format", f"expected a printf format such as '%.3f', got {fmt!r}")
        for k in ("mock", "band", "description"):
            if c.get(k) is not None and not isinstance(c.get(k), str):
                raise _err(src, f"{p}.{k}", f"expected a string, got {c.get(k)!r}")
        out.append(Column(name, typ, c.get("vizier"), c.get("mock"), c.get("band"), fmt, c.get("description")))
    return tuple(out)


def _mock_config(raw: Any, src: str, fields: list[int]) -> MockConfig:
    P = "mock"
    centres = {}
    for f, rd in (_get(raw, "field_centres", src, P, "dict")).items():
        if f not in fields:
            raise _err(src, f"{P}.field_centres.{f}", f"not a field of the survey {fields}")
        centres[f] = tuple(_numbers({f: rd}, f, src, f"{P}.field_centres", 2))
    missing = sorted(set(fields) - set(centres))
    if missing:
        raise _err(src, f"{P}.field_centres", f"no centre for fields {missing}")
    return MockConfig(star_fraction=_fraction(raw, "star_fraction", src, P),
                      candidate_limit_mag=float(_get(raw, "candidate_limit_mag", src, P, "positive")),
                      saturation_mag=float(_get(raw, "saturation_mag", src, P, "positive")),
                      stellar_flag_mag=float(_get(raw, "stellar_flag_mag", src, P, "positive")),
                      field_centres=centres, image_pattern=_get(raw, "image_pattern", src, P, "str"),
                      title=_get(raw, "title", src, P, "str"))


def _fraction(d: Any, key: str, src: str, path: str) -> float:
    v = _get(d, key, src, path, "number")
    if not 0 <= v <= 1:
        raise _err(src, f"{path}.{key}", f"expected a number in [0, 1], got {v!r}")
    return float(v)


def _spec_source(d: Any, src: str, path: str) -> SpecSource:
    return SpecSource(survey=_get(d, "survey", src, path, "str"), fraction=_fraction(d, "fraction", src, path),
                      mag_50=float(_get(d, "mag_50", src, path, "positive")),
                      mag_width=float(_get(d, "mag_width", src, path, "positive")))


def _numbers(d: Any, key: str, src: str, path: str, n: int | None = None) -> list[float]:
    v = _get(d, key, src, path, "list")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v) or (n is not None and len(v) != n):
        want = f"{n} numbers" if n is not None else "a list of numbers"
        raise _err(src, f"{path}.{key}", f"expected {want}, got {v!r}")
    return [float(x) for x in v]


def _per_quality(d: Any, key: str, src: str, path: str) -> dict:
    v = _get(d, key, src, path, "dict")
    if set(v) != {1, 2, 3, 4}:
        raise _err(src, f"{path}.{key}", f"expected the quality flags 1, 2, 3, 4 as keys, got {sorted(v, key=str)}")
    return v


def _spectroscopy(raw: Any, src: str, fields: list[int]) -> Spectroscopy:
    P = "spectroscopy"
    deep_raw = _get(raw, "deep_fields", src, P, "dict")
    deep = {}
    for f, d in deep_raw.items():
        if f not in fields:
            raise _err(src, f"{P}.deep_fields.{f}", f"not a field of the survey {fields}")
        deep[f] = _spec_source(d, src, f"{P}.deep_fields.{f}")
    q = _get(raw, "quality", src, P, "dict")
    mags = _numbers(q, "anchor_mags", src, f"{P}.quality")
    if any(b <= a for a, b in zip(mags, mags[1:])):
        raise _err(src, f"{P}.quality.anchor_mags", f"expected increasing magnitudes, got {mags}")
    fr = {}
    for k, v in _per_quality(q, "fractions", src, f"{P}.quality").items():
        fr[k] = tuple(_numbers({k: v}, k, src, f"{P}.quality.fractions", len(mags)))
        if any(not 0 <= x <= 1 for x in fr[k]):
            raise _err(src, f"{P}.quality.fractions.{k}", f"expected fractions in [0, 1], got {v!r}")
    for i, m in enumerate(mags):
        total = sum(fr[k][i] for k in fr)
        if abs(total - 1) > 1e-6:
            raise _err(src, f"{P}.quality.fractions", f"fractions at anchor_mags[{i}] = {m} sum to {total:.4g}, not 1")
    wrong = {k: _fraction(q["wrong_rate"], k, src, f"{P}.quality.wrong_rate")
             for k in _per_quality(q, "wrong_rate", src, f"{P}.quality")}
    w = _get(raw, "wrong_z", src, P, "dict")
    lo, hi = _numbers(w, "uniform_range", src, f"{P}.wrong_z", 2)
    if not 0 <= lo < hi:
        raise _err(src, f"{P}.wrong_z.uniform_range", f"expected [low, high] with 0 <= low < high, got {[lo, hi]}")
    pairs = _get(w, "line_pairs_aa", src, f"{P}.wrong_z", "list")
    for i, pr in enumerate(pairs):
        if (not isinstance(pr, list) or len(pr) != 2
                or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0 for x in pr)):
            raise _err(src, f"{P}.wrong_z.line_pairs_aa[{i}]", f"expected [true_aa, mistaken_for_aa] > 0, got {pr!r}")
    target = _get(raw, "target_size", src, P, "int")
    ref = _get(raw, "reference_objects", src, P, "int")
    for k, v in (("target_size", target), ("reference_objects", ref)):
        if v <= 0:
            raise _err(src, f"{P}.{k}", f"expected a positive integer, got {v!r}")
    return Spectroscopy(
        target_size=target, reference_objects=ref, deep_fields=deep,
        shallow=_spec_source(_get(raw, "shallow", src, P, "dict"), src, f"{P}.shallow"),
        star_factor=_fraction(raw, "star_factor", src, P), quality_mags=tuple(mags), quality_fractions=fr,
        wrong_rate=wrong, line_confusion=_fraction(w, "line_confusion", src, f"{P}.wrong_z"),
        uniform_range=(lo, hi), line_pairs_aa=tuple((float(a), float(b)) for a, b in pairs),
        z_error=float(_get(raw, "z_error", src, P, "positive")),
    )


def _check_id_scheme(src: str, id_: dict, pointings: dict, ccds: list) -> None:
    """IDs are prefix, field, pointing and CCD digits, then a running number (Survey.make_id): a
    number with more than one digit, or no room left for the running number, would make the IDs
    of two catalogues overlap."""
    prefix = _get(id_, "prefix", src, "id", "int")
    digits = _get(id_, "digits", src, "id", "int")
    if prefix <= 0:
        raise _err(src, "id.prefix", f"expected a positive integer, got {prefix}")
    if digits - len(str(prefix)) < 4:
        raise _err(src, "id.digits", f"{digits} digits leave no room for field, pointing, CCD and a running "
                   f"number after the {len(str(prefix))}-digit prefix {prefix}: IDs would overlap")
    if digits > 18:
        raise _err(src, "id.digits", f"{digits} digits do not fit a 64-bit integer")
    for key, values in (("layout.pointings", list(pointings)),
                        *((f"layout.pointings.{f}", list(ps)) for f, ps in pointings.items()),
                        ("layout.ccds", list(ccds))):
        bad = [v for v in values if not 0 <= v <= 9]
        if bad:
            raise _err(src, key, f"{bad} take more than the one ID digit each level has: IDs would overlap")
        if len(set(values)) != len(values):
            raise _err(src, key, f"a number appears twice in {values}: two catalogues would share IDs")


def parse_survey(raw: Any, src: str = "<survey>", base=None) -> Survey:
    """Validate a parsed YAML document and build a Survey; errors name the offending key.
    `base`: the survey file's directory, where relative response-curve paths are looked up."""
    name = _get(raw, "name", src, "", "str")
    id_ = _get(raw, "id", src, "", "dict")
    layout, pointings, ccds = _layout(raw, src)
    sent = _sentinels(raw, src)
    det = _get(raw, "detection", src, "", "dict")
    bands = _bands(raw, src, base)
    names = [b.name for b in bands]
    det_band = _get(det, "band", src, "detection", "str")
    if det_band not in names:
        raise _err(src, "detection.band", f"{det_band!r} is not one of the bands {names}")
    cols = _get(raw, "columns", src, "", "dict")
    leading = _columns(_get(cols, "leading", src, "columns", "list"), src, "columns.leading")
    trailing = _columns(_get(cols, "trailing", src, "columns", "list"), src, "columns.trailing")
    id_col = _get(id_, "column", src, "id", "str")
    if id_col not in [c.name for c in leading]:
        raise _err(src, "id.column", f"{id_col!r} is not among columns.leading")
    for required in ("Field", "Pointing", "CCD"):
        if required not in [c.name for c in leading]:
            raise _err(src, "columns.leading", f"needs a {required!r} column")
    _check_id_scheme(src, id_, pointings, ccds)
    spec_raw = _get(raw, "spectroscopy", src, "", "dict", required=False)
    mock_raw = _get(raw, "mock", src, "", "dict", required=False)
    survey = Survey(
        name=name, source=src, id_column=id_col,
        id_prefix=int(_get(id_, "prefix", src, "id", "int")),
        id_digits=int(_get(id_, "digits", src, "id", "int")),
        pointings=pointings, ccds=tuple(ccds),
        area_deg2=float(_get(layout, "area_deg2", src, "layout", "positive")),
        ascii_file_pattern=_get(layout, "ascii_file_pattern", src, "layout", "str"),
        sentinels=sent, detection_band=det_band,
        detection_min_snr=float(_get(det, "min_snr", src, "detection", "positive")),
        completeness_mag=float(_get(det, "completeness_mag", src, "detection", "positive")),
        bright_mag=float(_get(det, "bright_mag", src, "detection", "positive")),
        bands=tuple(bands), leading=leading, trailing=trailing,
        error_prefix=_get(cols, "error_prefix", src, "columns", "str"),
        csv_extra=_columns(cols.get("csv_extra") or [], src, "columns.csv_extra"),
        truth=_columns(cols.get("truth") or [], src, "columns.truth"),
        labels=_get(raw, "labels", src, "", "dict", required=False, default={}) or {},
        spectroscopy=None if spec_raw is None else _spectroscopy(spec_raw, src, sorted(pointings)),
        mock=None if mock_raw is None else _mock_config(mock_raw, src, sorted(pointings)),
    )
    _check_column_names(survey, src, names)
    return survey


def _layout(raw: Any, src: str) -> tuple[dict, dict, list]:
    """(the layout section, field → pointings, CCD numbers)."""
    layout = _get(raw, "layout", src, "", "dict")
    pointings = {}
    for f, ps in _get(layout, "pointings", src, "layout", "dict").items():
        if not isinstance(f, int) or not isinstance(ps, list) or not all(isinstance(p, int) for p in ps):
            raise _err(src, f"layout.pointings.{f}", f"expected field number -> list of pointing numbers, got {ps!r}")
        pointings[f] = tuple(ps)
    ccds = _get(layout, "ccds", src, "layout", "list")
    if not all(isinstance(c, int) for c in ccds):
        raise _err(src, "layout.ccds", f"expected a list of integers, got {ccds!r}")
    return layout, pointings, ccds


def _sentinels(raw: Any, src: str) -> dict:
    sent = _get(raw, "sentinels", src, "", "dict")
    for k in ("not_detected_magnitude", "not_observed_magnitude", "not_observed_error"):
        _get(sent, k, src, "sentinels", "number")
    for k in ("valid_magnitude_range", "valid_error_range", "thesis_clip"):
        v = _get(sent, k, src, "sentinels", "list")
        if len(v) != 2 or not all(isinstance(x, (int, float)) for x in v) or v[0] >= v[1]:
            raise _err(src, f"sentinels.{k}", f"expected [low, high] with low < high, got {v!r}")
    return sent


def _bands(raw: Any, src: str, base) -> list[Band]:
    bands = []
    for i, b in enumerate(_get(raw, "bands", src, "", "list")):
        p = f"bands[{i}]"
        synthetic = bool(b.get("synthetic", False)) if isinstance(b, dict) else False
        resp = _get(b, "response", src, p, "dict", required=not synthetic)
        if resp is not None:
            resp = _response(resp, src, f"{p}.response", base)
        bands.append(Band(
            name=_get(b, "name", src, p, "str"),
            pivot_aa=float(_get(b, "pivot_aa", src, p, "positive")),
            fwhm_aa=float(_get(b, "fwhm_aa", src, p, "positive")),
            depth_5sigma=float(_get(b, "depth_5sigma", src, p, "positive")),
            response=resp, synthetic=synthetic,
            vizier=_get(b, "vizier", src, p, "dict", required=False, default={}) or {},
            noise_depth_5sigma=_optional_float(_get(b, "noise_depth_5sigma", src, p, "positive",
                                                    required=False, default=None)),
        ))
    names = [b.name for b in bands]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise _err(src, "bands", f"duplicate band names {sorted(dupes)}")
    for i, b in enumerate(bands):
        _check_pivot(b, src, f"bands[{i}]")
    return bands


PIVOT_TOLERANCE = 0.02      # a declared pivot this far from its curve's is an error (nm read as Å: 90%)


def _check_pivot(band: Band, src: str, path: str) -> None:
    """The declared pivot wavelength against the one computed from the band's curve: more than
    `PIVOT_TOLERANCE` apart is an error naming the band (a curve in nm read as Å, the wrong file or
    the wrong column)."""
    if band.response is None:
        return
    from galaxy_spark.filters import load_response

    try:
        pivot = load_response(band).pivot_aa
    except (ValueError, OSError) as e:
        raise _err(src, f"{path}.response", f"cannot read the curve: {e}") from None
    if abs(pivot / band.pivot_aa - 1) > PIVOT_TOLERANCE:
        raise _err(src, f"{path}.pivot_aa", f"band {band.name}: declared {band.pivot_aa:g} Å but its curve's pivot is "
                                            f"{pivot:.0f} Å ({pivot / band.pivot_aa - 1:+.0%}); a curve in nm read as Å, "
                                            f"or the wrong file or column?")


def _check_column_names(survey: Survey, src: str, band_names: list[str]) -> None:
    """Every column's band exists, no two names clash (case-insensitively), every label names a
    column."""
    for c in survey.csv_columns():
        if c.band is not None and c.band not in band_names:
            raise _err(src, "columns", f"column {c.name!r}: band {c.band!r} is not one of the bands {band_names}")
    all_names = [c.name.lower() for c in survey.csv_columns() + list(survey.truth)]
    clash = {n for n in all_names if all_names.count(n) > 1}
    if clash:
        raise _err(src, "columns", f"column names clash (case-insensitively): {sorted(clash)}")
    for role, col in survey.labels.items():
        if role in LABEL_SETTINGS:
            continue
        if isinstance(col, str) and col.lower() not in all_names:
            raise _err(src, f"labels.{role}", f"{col!r} is not a column of the survey")


def survey_file(name_or_path: str | os.PathLike | None = None):
    """The survey file to read: an explicit path to a .yaml/.yml file as given, else
    surveys/<name>.yaml from $GALAXY_SPARK_CONF_DIR or the package. SurveyConfigError when
    there is none (naming where it looked and the surveys it knows). None: pipeline.yaml's default."""
    if name_or_path is None or name_or_path == "":
        from galaxy_spark.config import default_survey

        name_or_path = default_survey()
        if not name_or_path:
            raise SurveyConfigError("no survey named and pipeline.yaml has no `survey:` default")
    if is_yaml_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise SurveyConfigError(f"survey definition not found: {path}")
        return path
    found = find_conf(SURVEYS, str(name_or_path))
    if found is None:
        raise SurveyConfigError(f"survey definition not found: {searched(SURVEYS, str(name_or_path))} "
                                f"(known surveys: {', '.join(conf_names(SURVEYS)) or 'none'})")
    return found


_LOADED: dict[str, Survey] = {}


def _load_survey(path) -> Survey:
    key = str(path)
    if key not in _LOADED:
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise SurveyConfigError(f"{path.name}: not valid YAML: {e}") from None
        _LOADED[key] = replace(parse_survey(raw, src=path.name, base=path.parent), file=str(path.resolve()))
    return _LOADED[key]


def survey_record(survey: Survey) -> dict | None:
    """What a catalogue's manifest keeps of the survey file it was ingested with: its path, SHA-256
    and text, so later jobs need no --survey and notice a changed file (None for a survey not read
    from a file)."""
    if not survey.file:
        return None
    text = Path(survey.file).read_text()
    return {"path": survey.file, "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text}


def _recorded_survey(rec: dict) -> Survey:
    """The survey a catalogue's manifest recorded: the file at its path when unchanged (a changed
    file is refused, naming it), its recorded text when the file is gone."""
    path = Path(rec["path"])
    if path.is_file():
        sha = hashlib.sha256(path.read_text().encode()).hexdigest()
        if sha != rec["sha256"]:
            raise SurveyConfigError(
                f"survey file {path} changed since the catalogue was ingested (sha256 {rec['sha256'][:12]} -> "
                f"{sha[:12]}): ingest the catalogue again with it, or pass --survey {path} to use it as it is now")
        return _load_survey(path)
    try:
        raw = yaml.safe_load(rec["text"])
    except yaml.YAMLError as e:
        raise SurveyConfigError(f"{path.name} (as recorded in the catalogue manifest): not valid YAML: {e}") from None
    return parse_survey(raw, src=f"{path.name} (as recorded in the catalogue manifest; the file is gone)",
                        base=path.parent)


def load_survey(name_or_path: str | None = None) -> Survey:
    """Load and validate a survey file (`survey_file`: a packaged name, a path to a YAML file, or
    None for pipeline.yaml's default). Errors name the file and the offending key. Cached per file."""
    return _load_survey(survey_file(name_or_path))


def resolve_survey(requested: str | None = None, catalogue: str | None = None, model: str | None = None,
                   catalogue_file: dict | None = None) -> Survey:
    """The one survey rule of every job. `requested`: the job's --survey (a name or a YAML file);
    `catalogue`, `model`: the survey names the catalogue's manifest and the model record (None:
    not known to this job).

    - Recorded names must agree with each other, and a requested survey must be the one they name.
    - Without --survey: the file the catalogue was ingested with (`catalogue_file`,
      `survey_record`: used when unchanged, refused by name when changed, its recorded text when
      the file is gone); else the recorded name; with nothing recorded, pipeline.yaml's default.
    SurveyConfigError (the jobs print it as one `error:` line, exit 2) on any disagreement."""
    recorded = {k: v for k, v in (("catalogue", catalogue), ("model", model)) if v}
    if len(set(recorded.values())) > 1:
        raise SurveyConfigError(f"the catalogue was ingested as survey {catalogue!r} but the model was trained on "
                         f"{model!r}: score a catalogue of the model's survey")
    name = next(iter(recorded.values()), None)
    if requested is None and catalogue_file:
        survey = _recorded_survey(catalogue_file)
        if model and survey.name != model:
            raise SurveyConfigError(f"the catalogue was ingested as survey {survey.name!r} but the model was trained "
                                    f"on {model!r}: score a catalogue of the model's survey")
        return survey
    if requested is None and name is not None:
        try:
            return load_survey(name)
        except (SurveyConfigError, FileNotFoundError) as e:
            where = " and ".join(f"the {k}" for k in recorded)
            raise SurveyConfigError(f"{where} records survey {name!r}, whose file is not found ({e}); "
                             f"pass --survey PATH to its YAML file") from None
    survey = load_survey(requested)
    for k, v in recorded.items():
        if survey.name != v:
            raise SurveyConfigError(f"--survey {requested} is survey {survey.name!r} but the {k} is from survey {v!r}")
    return survey
