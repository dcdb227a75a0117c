"""python jobs/bands_study.py [--surveys A,B,C] [--objects 60000] --out reports/bands

How redshift accuracy grows with the number of bands, on the same simulated galaxies: the mock draws
one population (same seed, same objects) and observes it through each survey file — its curves,
depths, detection band and template-fit labels (galaxy_spark/studies/bands.py). Per survey a
redshift network of the preset learns from the true redshifts of its training split (simulation
only); the network and the survey's template fit are scored against the truth on the test-split
galaxies every survey detects. Writes report.html, metrics.json and accuracy_vs_bands.png to --out.
Needs no Spark.
"""
import argparse
import os
import sys

from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import cli_main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    from galaxy_spark.config import load_pipeline_config

    p.add_argument("--surveys", default=",".join(load_pipeline_config().get("bands_study") or []),
                   help="comma-separated survey names or YAML paths (default: pipeline.yaml's bands_study); the first "
                        "one's detection band sets the population's depth limit and the magnitude bins")
    p.add_argument("--objects", type=int, default=60000, help="candidate galaxies drawn (before detection)")
    p.add_argument("--seed", type=int, default=42, help="population seed: same seed, same galaxies")
    p.add_argument("--depth-limit", type=float, default=23.5,
                   help="draw galaxies to this magnitude (AB) in the first survey's detection band")
    p.add_argument("--preset", default="default", help="network preset (its redshift network and split)")
    p.add_argument("--max-epochs", type=int, default=None, help="cap the redshift network's epochs")
    p.add_argument("--out", default=os.path.join("reports", "bands"), help="report directory, replaced atomically")
    return p.parse_args(argv)


@cli_main
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from galaxy_spark.errors import InputError
    from galaxy_spark.studies.bands import bands_study, study_table
    from galaxy_spark.model.nets import load_preset
    from galaxy_spark.studies.bands_report import write_bands_report
    from galaxy_spark.survey import load_survey

    names = [s for s in args.surveys.split(",") if s.strip()]
    if len(names) < 2:
        raise InputError(f"--surveys {args.surveys!r}: name at least two surveys to compare")
    if args.objects < 1000:
        raise InputError(f"--objects {args.objects}: at least 1000 galaxies are needed to train and test")
    surveys = [load_survey(s.strip()) for s in names]       # every file checked before any work
    result = bands_study(surveys, load_preset(args.preset), args.objects, args.seed, args.depth_limit,
                         args.max_epochs)
    report = write_bands_report(result, args.out)
    print(f"report: {os.path.abspath(report)}")
    print(study_table(result).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0
