"""Generate a survey's mock catalogue (the survey file's bands, layout and columns; default
pipeline.yaml's survey), or validate it against real rows.

    python jobs/mock.py --objects 446343 --seed 42 --format csv --out data/raw/alhambra_mock.csv
    python jobs/mock.py --survey jplus --objects 20000 --out data/jplus/raw/jplus_mock.csv
    python jobs/mock.py --format ascii --out data/raw/mock_ascii          # one public-style file per CCD
        (each also writes its spectroscopic sample: alhambra_mock.specz.csv, mock_ascii.specz.csv)
    python jobs/mock.py --validate --real ../shared/data/alhambra_f02_vizier_sample.csv \
        --objects 60000 --seed 42 --out reports/mock-validation

Runs with plain python or under spark-submit; it does not need Spark.
"""
from __future__ import annotations

import argparse
import sys
import time


from galaxy_spark import cli
from galaxy_spark.cli import HelpFormatter
from galaxy_spark.errors import InputError, cli_main

DEFAULT_OBJECTS = 446_343


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, non-zero exit
        raise InputError(message)


def parse_args(argv):
    p = _Parser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--objects", type=str, default=str(DEFAULT_OBJECTS), help="number of objects")
    p.add_argument("--seed", type=str, default="42", help="random seed: same seed, same bytes")
    p.add_argument("--format", default="csv", help="csv (one file) or ascii (one public-style file per CCD catalogue of the survey, in a directory)")
    p.add_argument("--out", required=True, help="output file (csv) or directory (ascii, --validate)")
    cli.add_survey(p)
    p.add_argument("--validate", action="store_true", help="compare a mock with real rows instead of writing one")
    p.add_argument("--real", help="real VizieR CSV rows for --validate")
    p.add_argument("--no-spec", action="store_true",
                   help="do not write the spectroscopic sample (ID,z_spec,spec_class,z_spec_quality) "
                        "that goes next to --out as X.specz.csv (csv file X.csv) or D.specz.csv (ascii directory D)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        a.objects = int(a.objects)
    except ValueError:
        raise InputError(f"--objects must be a positive integer, got {a.objects!r}") from None
    if a.objects <= 0:
        raise InputError(f"--objects must be a positive integer, got {a.objects}")
    try:
        a.seed = int(a.seed)
    except ValueError:
        raise InputError(f"--seed must be an integer, got {a.seed!r}") from None
    if a.seed < 0:
        raise InputError(f"--seed must be non-negative, got {a.seed}")
    if a.format not in ("csv", "ascii"):
        raise InputError(f"--format must be 'csv' or 'ascii', got {a.format!r}")
    if a.validate and not a.real:
        raise InputError("--validate needs --real PATH (the VizieR CSV of real rows)")
    return a


@cli_main
def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    from galaxy_spark.survey import load_survey
    from galaxy_spark.mock import writer
    from galaxy_spark.mock.core import generate

    survey = load_survey(a.survey)
    t0 = time.time()
    if a.validate:
        from galaxy_spark.studies.mock_validation import run_validation

        out = run_validation(survey, a.real, a.objects, a.seed, a.out, progress=not a.quiet)
        print(f"validation written to {out}", file=sys.stderr)
        return 0
    spec_out = None if a.no_spec else writer.check_spec_path(a.out, a.format)
    if spec_out is not None:
        survey.spec_config()            # a survey without a spectroscopy: section fails before any work
    writer.check_out_path(a.out, a.format)
    chunks = generate(survey, a.objects, a.seed, progress=not a.quiet)
    collector = writer.SpecCollector(survey)
    if spec_out is not None:
        chunks = collector.tap(chunks)
    if a.format == "csv":
        n = writer.write_csv(survey, chunks, a.out)
        print(f"wrote {n} objects to {a.out} in {time.time() - t0:.1f} s", file=sys.stderr)
    else:
        files = writer.write_ascii(survey, chunks, a.out, a.seed)
        print(f"wrote {len(files)} files to {a.out} in {time.time() - t0:.1f} s", file=sys.stderr)
    if spec_out is not None:
        n_spec = writer.write_spec(survey, collector.table(), spec_out, a.seed)
        print(f"wrote {n_spec} spectroscopic redshifts to {spec_out}", file=sys.stderr)
    return 0

