"""What every job's command line shares: each shared option defined once, with one help text, and
checked by argparse (before any Spark session starts)."""
from __future__ import annotations

import argparse

SURVEY_HELP = ("survey: a name in galaxy_spark/conf/surveys/ (or $GALAXY_SPARK_CONF_DIR/surveys/) or a path to "
               "a YAML file. Default: the one the catalogue's manifest or the model records, else pipeline.yaml's; "
               "when several are known they must agree (survey.resolve_survey)")
MODEL_HELP = ("any MLflow model URI: models:/name@alias (resolved to its version once, at the start), "
              "models:/name/version, models:/<model_id>, runs:/<run_id>/ensemble")
TRACKING_HELP = ("MLflow tracking store (default: $MLFLOW_TRACKING_URI, else pipeline.yaml's mlflow.tracking_uri); "
                 "jobs that only look models up never create it")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the job's docstring layout and shows every option's default."""


def int_at_least(minimum: int):
    """argparse type: an integer >= `minimum` (a clear usage error otherwise, before any work)."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {v}")
        return v
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def add_survey(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--survey", default=default, help=SURVEY_HELP)


def add_model(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--model", default=default, help=MODEL_HELP)


def add_master(p: argparse.ArgumentParser) -> None:
    p.add_argument("--master", default=None, help="Spark master (spark-submit --master works too)")


def add_tracking(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default=None, help=TRACKING_HELP)


def add_batch_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="rows per Arrow batch a worker scores at once (default 10,000; results do not depend on it)")


def add_scoring(p: argparse.ArgumentParser, scoring_cfg: dict) -> None:
    """The scoring options score and reprocess share: Monte Carlo, its seed, the few-bands flag."""
    p.add_argument("--mc-samples", type=non_negative_int, default=int(scoring_cfg.get("mc_samples", 0)),
                   help="Monte Carlo resamples of each object's photometry (0: off)")
    p.add_argument("--mc-seed", type=int, default=int(scoring_cfg.get("mc_seed", 0)),
                   help="seed mixed with each object's ID")
    p.add_argument("--min-bands", type=non_negative_int, default=int(scoring_cfg.get("min_bands", 5)),
                   help="flag 2 when fewer bands are detected")


def default_model(cfg: dict) -> str:
    """pipeline.yaml's scoring model, else its registered model's champion."""
    return (cfg.get("scoring") or {}).get("model", f"models:/{cfg['mlflow']['registered_model']}@champion")
