"""The built wheel carries its configuration: from a directory outside the repository, with only the
wheel's contents on the path, it loads the survey file, the pipeline defaults and the presets."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHECK = """
import json, galaxy_spark
from galaxy_spark.config import load_pipeline_config
from galaxy_spark.model.nets import load_preset
from galaxy_spark.survey import load_survey, survey_file
s = load_survey("alhambra")
print(json.dumps({"package": galaxy_spark.__file__, "survey": s.name, "bands": len(s.bands),
                  "survey_file": str(survey_file("alhambra")), "mlflow": load_pipeline_config()["mlflow"],
                  "presets": [load_preset(p)["name"] for p in ("default", "paper")],
                  "preset_file": load_preset("default")["_source"]}))
"""


def test_wheel_ships_surveys_pipeline_and_presets(tmp_path):
    # build from a copy, so that the build leaves nothing in the working tree (build/, egg-info)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    shutil.copytree(REPO / "galaxy_spark", src / "galaxy_spark", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    (wheel,) = dist.glob("galaxy_spark-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("galaxy_spark/conf/pipeline.yaml", "galaxy_spark/conf/surveys/alhambra.yaml",
              "galaxy_spark/conf/presets/default.yaml", "galaxy_spark/conf/presets/paper.yaml"):
        assert f in names, f"{f} missing from {wheel.name}"

    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GALAXY_SPARK_CONF_DIR")}
    env["PYTHONPATH"] = str(site)
    p = subprocess.run([sys.executable, "-P", "-c", CHECK], cwd=elsewhere, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    info = json.loads(p.stdout.strip().splitlines()[-1])
    for key in ("package", "survey_file", "preset_file"):
        assert Path(info[key]).is_relative_to(site), (key, info[key])
    assert info["survey"] == "alhambra" and info["bands"] == 24
    assert info["mlflow"]["registered_model"] == "galaxy-ensemble"
    assert info["presets"] == ["default", "paper"]
    # the console script is declared, and the jobs run from the installed package alone
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "galaxy-spark = galaxy_spark.commands:main" in zipfile.ZipFile(wheel).read(entry).decode()
    for job in ("score", "ingest", "train", "reprocess"):
        p = subprocess.run([sys.executable, "-P", "-m", "galaxy_spark.commands", job, "--help"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0 and "--help" in p.stdout, (job, p.stdout[-1500:], p.stderr[-1500:])
