# galaxy_spark — `make run` and `make test` create .venv and install everything they need.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
# spark-submit finds Spark through SPARK_HOME; the pip package is the Spark distribution
export SPARK_HOME := $(abspath $(VENV))/lib/python3.11/site-packages/pyspark
# conf/log4j2.properties: Spark logs warnings only
export SPARK_CONF_DIR := $(abspath conf)
export TF_CPP_MIN_LOG_LEVEL ?= 2
export SPARK_LOCAL_IP ?= 127.0.0.1
MASTER ?= local[2]
SPARK_SUBMIT := $(VENV)/bin/spark-submit --master $(MASTER) --driver-memory 8g
# Full size by default; `make run OBJECTS=20000` for a quick look.
OBJECTS ?= 446343
SEED ?= 42
PRESET ?= default
# Which survey file (galaxy_spark/conf/surveys/<name>.yaml, or a path): `make run SURVEY=jplus`.
# Another survey's data, reports and registered model live apart from the default's.
SURVEY ?= alhambra
SURVEY_NAME := $(basename $(notdir $(SURVEY)))
ifeq ($(SURVEY_NAME),alhambra)
DATA := data
REPORT ?= reports/latest
MODEL_NAME := galaxy-ensemble
else
DATA := data/$(SURVEY_NAME)
REPORT ?= reports/$(SURVEY_NAME)
MODEL_NAME := galaxy-ensemble-$(SURVEY_NAME)
endif
RAW := $(DATA)/raw/$(SURVEY_NAME)_mock.csv
SPEC := $(DATA)/raw/$(SURVEY_NAME)_mock.specz.csv
CATALOG := $(DATA)/catalog
SCORES := $(DATA)/scores
# What the networks learn from: spec+catalogue (pretrain on the catalogue's template-fit labels,
# fine-tune on the spectroscopic sample) by default; `make train LABELS=catalogue` is the thesis'
# emulator of the survey's values.
LABELS ?= spec+catalogue

.PHONY: help setup check-java run mock ingest train train-paper train-catalogue score evaluate realdata-check \
        mock-validate bands-study reprocess ui serve pyfiles cluster-demo test bench clean

help:
	@echo "make run            whole pipeline on the embedded mock ($(OBJECTS) objects): mock, ingest, train, score, evaluate"
	@echo "make run SURVEY=jplus   the same for another survey file (jplus, splus, jpas, or a path to a YAML file)"
	@echo "make test           the test suite (real Spark, real MLflow, headless Chromium)"
	@echo "make bench          benchmarks -> reports/bench/"
	@echo "make ui             MLflow UI on http://127.0.0.1:5000"
	@echo "make train-paper    the thesis' four networks (for comparison)"
	@echo "make train-catalogue  the default networks emulating the catalogue's values (the thesis' task)"
	@echo "make bands-study    accuracy vs number of bands (J-PLUS, ALHAMBRA, J-PAS) on the same simulated galaxies"
	@echo "make mock-validate  compare the mock with the 817 real ALHAMBRA rows"
	@echo "make serve          REST endpoint of the champion model on 127.0.0.1:5001 (mlflow models serve)"
	@echo "make pyfiles        dist/galaxy_spark.zip for spark-submit --py-files (executors without the package)"
	@echo "make cluster-demo   score on a Spark standalone master + worker started from the pip package"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; galaxy_spark needs Python 3.11" >&2; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) check-java

check-java: $(STAMP)
	@$(PY) -m galaxy_spark.spark --check-java

mock: setup
	$(PY) jobs/mock.py --survey $(SURVEY) --objects $(OBJECTS) --seed $(SEED) --format csv --out $(RAW)

ingest: setup
	$(SPARK_SUBMIT) jobs/ingest.py --survey $(SURVEY) --input $(RAW) --out $(CATALOG) --quarantine $(DATA)/quarantine

train: setup
	$(SPARK_SUBMIT) jobs/train.py --survey $(SURVEY) --catalog $(CATALOG) --preset $(PRESET) --labels $(LABELS) --spec $(SPEC) --register $(MODEL_NAME)

train-paper: setup
	$(SPARK_SUBMIT) jobs/train.py --survey $(SURVEY) --catalog $(CATALOG) --preset paper --spec $(SPEC) --register $(MODEL_NAME)

train-catalogue: setup
	$(SPARK_SUBMIT) jobs/train.py --survey $(SURVEY) --catalog $(CATALOG) --preset $(PRESET) --labels catalogue --spec $(SPEC) --register $(MODEL_NAME)

score: setup
	$(SPARK_SUBMIT) jobs/score.py --survey $(SURVEY) --catalog $(CATALOG) --out $(SCORES) --model models:/$(MODEL_NAME)@champion --coverage

evaluate: setup
	$(SPARK_SUBMIT) jobs/evaluate.py --survey $(SURVEY) --scores $(SCORES) --catalog $(CATALOG) --spec $(SPEC) --out $(REPORT)

run: setup
	$(MAKE) --no-print-directory mock ingest train score evaluate

REAL ?= tests/data/alhambra_f02_vizier_sample.csv
# K-fold fine-tuning of the redshift network on the real rows (0 = off)
FOLDS ?= 5
realdata-check: setup
	$(PY) jobs/realdata_check.py --input $(REAL) --out reports/realdata --finetune-folds $(FOLDS)

mock-validate: setup
	$(PY) jobs/mock.py --validate --real tests/data/alhambra_f02_vizier_sample.csv --objects 60000 --seed $(SEED) --out reports/mock-validation

reprocess: setup
	$(SPARK_SUBMIT) jobs/reprocess.py --survey $(SURVEY) --catalog $(CATALOG) --scores $(SCORES) --model models:/$(MODEL_NAME)@champion

# One simulated population observed through several survey files (pipeline.yaml's bands_study)
bands-study: setup
	$(PY) jobs/bands_study.py --objects $(if $(filter 446343,$(OBJECTS)),60000,$(OBJECTS)) --seed $(SEED) --out reports/bands

ui: setup
	@$(PY) -m galaxy_spark.model.tracking http://127.0.0.1:5000
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

# The code for executors that do not have galaxy_spark: spark-submit --py-files dist/galaxy_spark.zip
pyfiles: setup
	$(PY) -m galaxy_spark.deploy pyfiles dist/galaxy_spark.zip

# REST: POST {"dataframe_split": {"columns": [...], "data": [...]}} to http://127.0.0.1:5001/invocations
MODEL ?= models:/galaxy-ensemble@champion
serve: setup
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/mlflow models serve -m $(MODEL) --env-manager local -h 127.0.0.1 -p 5001

cluster-demo: setup
	$(PY) -m pytest -q -s tests/test_cluster.py

test: setup
	@bash scripts/install_browser.sh
	$(PY) -m pytest --durations=15 tests

bench: setup
	@mkdir -p reports/bench
	$(PY) benchmarks/bench_mock.py --objects $(OBJECTS) --keep $(RAW) --out reports/bench/mock.json
	$(PY) benchmarks/bench_ingest.py --input $(RAW) --out .bench/ingest --json reports/bench/ingest.json
	$(PY) benchmarks/bench_scoring.py --objects $(OBJECTS) --scale 10 --out reports/bench/scoring.json
	$(PY) benchmarks/bench_reprocess.py --out reports/bench/reprocess.json
	$(PY) benchmarks/bench_sed.py --catalog $(CATALOG) --model models:/$(MODEL_NAME)@champion --out reports/bench/sed.json
	$(PY) benchmarks/bench_served.py --catalog $(CATALOG) --scores $(SCORES) --model models:/$(MODEL_NAME)@champion --out reports/bench/served.json

clean:
	rm -rf data reports spark-warehouse mlartifacts mlruns mlflow.db .bench
