"""spark-submit jobs/train.py --catalog data/catalog --preset default|paper — train, track, register.

Spark reads the catalogue; the driver trains the networks of the preset (one per head of
model/heads.py), logs one parent run
with a nested run per network to MLflow and registers the ensemble (alias champion/challenger).
"""
import argparse
import os
import sys

from galaxy_spark.config import load_pipeline_config
from galaxy_spark import cli
from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import cli_main


def parse_args(argv):
    cfg = load_pipeline_config()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--catalog", default=cfg["paths"]["catalog"], help="partitioned Parquet catalogue (jobs/ingest.py)")
    cli.add_survey(p)
    cli.add_tracking(p)
    cli.add_master(p)
    p.add_argument("--preset", default="default",
                   help="network preset: default | paper (packaged: galaxy_spark/conf/presets/; "
                        "$GALAXY_SPARK_CONF_DIR/presets/ first) | a path to a YAML file")
    p.add_argument("--experiment", default=cfg["mlflow"]["experiment"], help="MLflow experiment for the training runs")
    p.add_argument("--register", default=cfg["mlflow"]["registered_model"],
                   help="registered model name ('' to skip registration)")
    p.add_argument("--max-epochs", type=int, default=None, help="cap every network's epochs (quick runs)")
    p.add_argument("--sample-fraction", type=float, default=1.0, help="use this fraction of the training split")
    p.add_argument("--labels", default="catalogue", choices=["catalogue", "spec", "spec+catalogue", "truth"],
                   help="what to learn from: the catalogue's values (the thesis: emulate the survey's "
                        "template fits), the spectroscopic sample only, catalogue pretraining then "
                        "spectroscopic fine-tuning, or the mock's truth (simulation studies)")
    p.add_argument("--spec", default=None,
                   help="spectroscopic sample (CSV or Parquet: ID, z_spec, optional spec_class, "
                        "z_spec_quality), joined by ID; needed by --labels spec and spec+catalogue")
    p.add_argument("--spec-min-quality", type=int, default=3,
                   help="spectroscopic redshifts with a quality flag below this are not used")
    p.add_argument("--promote", action="store_true", help="make this version champion even if not better")
    p.add_argument("--seed", type=int, default=42, help="seed of weight initialisation, shuffling and sampling")
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from galaxy_spark.errors import InputError
    from galaxy_spark.spark import get_spark
    from galaxy_spark.model.tracking import configure_tracking
    from galaxy_spark.train.driver import TrainOptions, train

    if args.spec and not os.path.exists(args.spec):
        raise InputError(f"--spec {args.spec}: file not found")
    uri = configure_tracking(args.tracking_uri, job="train")
    spark = get_spark("galaxy_spark-train", master=args.master)
    try:
        res = train(TrainOptions(catalog=args.catalog, preset=args.preset, experiment=args.experiment,
                                 register=args.register or None, max_epochs=args.max_epochs,
                                 sample_fraction=args.sample_fraction, label_source=args.labels,
                                 promote=args.promote, seed=args.seed, spec=args.spec,
                                 spec_min_quality=args.spec_min_quality, survey=args.survey), spark)
    finally:
        spark.stop()
    print(f"MLflow run {res['run_id']} ({uri}); model {res['model_uri']}")
    if res["registered"]:
        r = res["registered"]
        print(f"registered models:/{r['name']}@{r['alias']} (version {r['version']})")
    print(f"total {res['total_seconds']:.0f}s; per network: "
          + ", ".join(f"{k} {v:.0f}s" for k, v in res["seconds"].items()))
    return 0

