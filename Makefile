# galaxy_spark — every target creates .venv and installs the project into it when missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MLFLOW_TRACKING_URI ?= sqlite:///mlflow.db
export PYSPARK_PYTHON := $(abspath $(PY))
# spark-submit finds Spark through SPARK_HOME; the pip package is the Spark distribution
export SPARK_HOME := $(abspath $(VENV))/lib/python3.11/site-packages/pyspark
# conf/log4j2.properties: Spark logs warnings only
export SPARK_CONF_DIR := $(abspath conf)
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))
SPARK_SUBMIT := $(VENV)/bin/spark-submit --master local[2] --driver-memory 6g
# Full-size run by default; `make run OBJECTS=20000` for a quick one.
OBJECTS ?= 446343
SEED ?= 42

.PHONY: help setup run mock ingest mock-validate test bench clean check-java

help:
	@echo "make run    - the whole pipeline on the embedded mock catalogue ($(OBJECTS) objects)"
	@echo "make test   - the test suite (real Spark, real MLflow)"
	@echo "make bench  - benchmarks (ingest vs pyarrow, mock generation)"
	@echo "make mock-validate - compare the mock with the 817 real ALHAMBRA rows"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; galaxy_spark needs Python 3.11" >&2; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) check-java

check-java: $(STAMP)
	@$(PY) -m galaxy_spark.spark --check-java

data/raw/alhambra_mock.csv: | setup
	$(PY) jobs/mock.py --objects $(OBJECTS) --seed $(SEED) --format csv --out $@

mock: setup
	$(PY) jobs/mock.py --objects $(OBJECTS) --seed $(SEED) --format csv --out data/raw/alhambra_mock.csv

ingest: setup
	$(SPARK_SUBMIT) jobs/ingest.py --input data/raw/alhambra_mock.csv --out data/catalog --quarantine data/quarantine

run: setup mock ingest

mock-validate: setup
	$(PY) jobs/mock.py --validate --real ../shared/data/alhambra_f02_vizier_sample.csv --objects 60000 --seed $(SEED) --out reports/mock-validation

test: setup
	$(PY) -m pytest tests

bench: setup
	$(PY) -m galaxy_spark.bench --objects $(OBJECTS) --out reports/bench

clean:
	rm -rf data reports spark-warehouse mlartifacts mlflow.db
