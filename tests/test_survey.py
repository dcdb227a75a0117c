"""Survey files (galaxy_spark/survey.py): validation errors name the file and the offending key;
the packaged files and the GALAXY_SPARK_CONF_DIR override (galaxy_spark/config.py)."""
from __future__ import annotations

import copy

import pytest
import yaml

from galaxy_spark.config import CONF_DIR_ENV, PRESETS, find_conf, load_pipeline_config
from galaxy_spark.errors import InputError
from galaxy_spark.model.nets import load_preset
from galaxy_spark.survey import SurveyConfigError, load_survey, parse_survey, survey_file

RAW = yaml.safe_load(survey_file("alhambra").read_text())


def _set(raw: dict, path: tuple, value):
    """A copy of `raw` with the key at `path` set to `value` (or deleted when value is ...)."""
    r = copy.deepcopy(raw)
    d = r
    for k in path[:-1]:
        d = d[k]
    if value is ...:
        del d[path[-1]]
    else:
        d[path[-1]] = value
    return r


@pytest.mark.parametrize("path, value, message", [
    (("name",), ..., r"name: missing required key"),
    (("bands", 3, "pivot_aa"), -1, r"bands\[3\]\.pivot_aa: expected a positive number, got -1"),
    (("bands", 0, "response", "scale"), "per-mille", r"bands\[0\]\.response\.scale: expected 'percent' or 'fraction'"),
    (("bands", 1, "name"), "F365W", r"bands: duplicate band names \['F365W'\]"),
    (("sentinels", "thesis_clip"), [27.0, 0.0], r"sentinels\.thesis_clip: expected \[low, high\] with low < high"),
    (("sentinels", "not_detected_magnitude"), "99", r"sentinels\.not_detected_magnitude: expected a number"),
    (("sentinels", "valid_error_range"), ..., r"sentinels\.valid_error_range: missing required key"),
    (("detection", "band"), "XYZ", r"detection\.band: 'XYZ' is not one of the bands"),
    (("layout", "pointings", 2), "one", r"layout\.pointings\.2: expected field number -> list of pointing numbers"),
    (("layout", "ccds"), [1, "2"], r"layout\.ccds: expected a list of integers"),
    (("columns", "leading", 1, "type"), "float", r"columns\.leading\[1\]\.type: expected one of"),
    (("id", "column"), "OBJID", r"id\.column: 'OBJID' is not among columns\.leading"),
    (("id", "digits"), "11", r"id\.digits: expected an integer"),
    (("labels", "redshift"), "zb_9", r"labels\.redshift: 'zb_9' is not a column of the survey"),
    (("columns", "csv_extra"), [{"name": "id", "type": "string"}], r"columns: column names clash"),
    (("bands", 2, "fwhm_aa"), ..., r"bands\[2\]\.fwhm_aa: missing required key"),
    (("bands", 0, "response", "file"), "nosuch.dat", r"bands\[0\]\.response\.file: no curve file 'nosuch.dat' in package"),
    (("detection", "bright_mag"), ..., r"detection\.bright_mag: missing required key"),
    (("layout", "ccds"), [1, 2, 12], r"layout\.ccds: \[12\] take more than the one ID digit each level has: IDs would overlap"),
    (("layout", "ccds"), [1, 2, 2], r"layout\.ccds: a number appears twice in \[1, 2, 2\]: two catalogues would share IDs"),
    (("id", "digits"), 6, r"id\.digits: 6 digits leave no room for field, pointing, CCD and a running number"),
])
def test_malformed_survey_names_the_key(path, value, message):
    with pytest.raises(SurveyConfigError, match=f"^x.yaml: {message}"):
        parse_survey(_set(RAW, path, value), "x.yaml")


def test_not_a_mapping_and_bad_yaml(tmp_path):
    with pytest.raises(SurveyConfigError, match=r"x.yaml: : expected a mapping, got list"):
        parse_survey([1, 2], "x.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SurveyConfigError, match="broken.yaml: not valid YAML"):
        load_survey(str(bad))
    with pytest.raises(SurveyConfigError, match="survey definition not found: .*missing.yaml"):
        load_survey(str(tmp_path / "missing.yaml"))
    with pytest.raises(SurveyConfigError, match=r"known surveys: alhambra"):
        load_survey("no_such_survey")


def test_the_shipped_survey_is_valid():
    s = parse_survey(RAW, "alhambra.yaml")
    assert s.name == "alhambra" and len(s.bands) == 24 and s.thesis_clip == (0.0, 27.0)


@pytest.mark.parametrize("name, n_bands, approximate", [("jplus", 12, True), ("splus", 12, True), ("jpas", 60, True)])
def test_the_other_shipped_surveys_are_valid(name, n_bands, approximate):
    """J-PLUS, S-PLUS, J-PAS: curves from the tables next to the survey file, marked approximate."""
    s = load_survey(name)
    assert len(s.bands) == n_bands and s.detection_band in s.band_names
    assert all(b.response["approximate"] is approximate and b.response["location"].is_file() for b in s.bands)


def test_unknown_curve_table_next_to_the_file(tmp_path):
    """Curve tables are looked up next to the survey file; a missing one names the band's key."""
    import shutil

    shutil.copytree(survey_file("jplus").parent / "curves" / "jplus", tmp_path / "curves" / "jplus")
    raw = yaml.safe_load(survey_file("jplus").read_text())
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(raw))
    assert len(load_survey(str(f)).bands) == 12
    raw["bands"][4]["response"]["file"] = "curves/jplus/J0999.dat"
    f2 = tmp_path / "mine2.yaml"
    f2.write_text(yaml.safe_dump(raw))
    with pytest.raises(SurveyConfigError, match=r"^mine2.yaml: bands\[4\]\.response\.file: no curve file "
                                                r"'curves/jplus/J0999.dat' \(looked at .*J0999.dat\)"):
        load_survey(str(f2))


def test_conf_dir_override(tmp_path, monkeypatch):
    """GALAXY_SPARK_CONF_DIR: a survey, pipeline.yaml or preset found there wins; what it lacks
    comes from the package; explicit paths are used as given."""
    (tmp_path / "surveys").mkdir()
    (tmp_path / "presets").mkdir()
    other = _set(RAW, ("name",), "othersurvey")
    (tmp_path / "surveys" / "othersurvey.yaml").write_text(yaml.safe_dump(other))
    preset = yaml.safe_load(find_conf(PRESETS, "default").read_text())
    preset["name"] = "mine"
    (tmp_path / "presets" / "mine.yaml").write_text(yaml.safe_dump(preset))
    pipeline = {**load_pipeline_config(), "survey": "othersurvey"}
    monkeypatch.setenv(CONF_DIR_ENV, str(tmp_path))
    assert load_survey("othersurvey").name == "othersurvey"
    assert load_survey("alhambra").name == "alhambra"                  # not overridden: the packaged one
    assert load_preset("mine")["name"] == "mine" and load_preset("paper")["name"] == "paper"
    assert load_pipeline_config()["survey"] == "alhambra"             # no pipeline.yaml there yet
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    assert load_pipeline_config()["survey"] == "othersurvey"
    with pytest.raises(InputError, match="known presets: default, mine, paper"):
        load_preset("nope")
    monkeypatch.delenv(CONF_DIR_ENV)
    with pytest.raises(SurveyConfigError, match="survey definition not found"):
        load_survey("othersurvey")
    assert load_survey(str(tmp_path / "surveys" / "othersurvey.yaml")).name == "othersurvey"


def test_one_survey_rule():
    """resolve_survey: --survey, the catalogue manifest's and the model's survey must agree; with
    nothing requested the recorded one is loaded; with nothing recorded, pipeline.yaml's default."""
    from galaxy_spark.survey import SurveyConfigError, load_survey, resolve_survey

    assert resolve_survey().name == load_survey().name
    assert resolve_survey(None, catalogue="jplus").name == "jplus"
    assert resolve_survey("jplus", catalogue="jplus", model="jplus").name == "jplus"
    with pytest.raises(SurveyConfigError, match="ingested as survey 'alhambra' but the model was trained on 'jplus'"):
        resolve_survey(None, catalogue="alhambra", model="jplus")
    with pytest.raises(SurveyConfigError, match="--survey jplus is survey 'jplus' but the model is from survey 'alhambra'"):
        resolve_survey("jplus", model="alhambra")
    with pytest.raises(SurveyConfigError, match="records survey 'my_survey', whose file is not found.*--survey PATH"):
        resolve_survey(None, catalogue="my_survey")


def test_a_survey_given_by_path_is_remembered(tmp_path):
    """The catalogue's manifest keeps the survey file (path, sha256, text): later jobs need no
    --survey; a changed file is refused by name; a file that is gone is read from the record."""
    from galaxy_spark.survey import SurveyConfigError, load_survey, resolve_survey, survey_record, survey_file

    text = survey_file("alhambra").read_text().replace("name: alhambra", "name: my_survey", 1)
    path = tmp_path / "my_survey.yaml"
    path.write_text(text)
    rec = survey_record(load_survey(str(path)))
    assert rec["path"] == str(path.resolve()) and rec["text"] == text
    assert resolve_survey(None, catalogue="my_survey", catalogue_file=rec).name == "my_survey"
    with pytest.raises(SurveyConfigError, match="trained on 'alhambra'"):
        resolve_survey(None, catalogue="my_survey", model="alhambra", catalogue_file=rec)
    path.write_text(text.replace("bright_mag:", "bright_mag: 21.0 #", 1))
    with pytest.raises(SurveyConfigError, match=f"survey file {path} changed since the catalogue was ingested"):
        resolve_survey(None, catalogue="my_survey", catalogue_file=rec)
    assert resolve_survey(str(path), catalogue="my_survey", catalogue_file=rec).name == "my_survey"   # explicit
    path.unlink()
    gone = resolve_survey(None, catalogue="my_survey", catalogue_file=rec)
    assert gone.name == "my_survey" and "the file is gone" in gone.source
    assert gone.band_names == load_survey("alhambra").band_names


def test_curve_in_nm_is_refused_naming_the_band(tmp_path):
    """A curve table in nm (read as Å its pivot is 10× too short) does not load silently: the
    declared pivot is checked against the curve's, within 2%."""
    import shutil

    import numpy as np

    shutil.copytree(survey_file("jplus").parent / "curves" / "jplus", tmp_path / "curves" / "jplus")
    raw = yaml.safe_load(survey_file("jplus").read_text())
    band = raw["bands"][1]
    curve = tmp_path / "curves" / "jplus" / "in_nm.dat"
    w, t = np.loadtxt(tmp_path / band["response"]["file"], unpack=True)
    np.savetxt(curve, np.column_stack([w / 10, t]))
    band["response"]["file"] = "curves/jplus/in_nm.dat"
    f = tmp_path / "nm.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(SurveyConfigError, match=rf"bands\[1\]\.pivot_aa: band {band['name']}: declared "
                                                rf"{band['pivot_aa']:g} Å but its curve's pivot is .* \(-90%\)"):
        load_survey(str(f))
