"""Write the approximate response-curve tables a survey file points to.

For every band whose `response:` is marked `approximate: true`, writes the table at `response.file`
(relative to the survey file) from the band's `pivot_aa` and `fwhm_aa` with the shape documented in
galaxy_spark.filters.approximate_throughput (flat top, raised-cosine edges). Replace a table by the
survey's official curve by pointing `response.file` at it and dropping `approximate`.

    python scripts/make_curves.py galaxy_spark/conf/surveys/jplus.yaml
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from galaxy_spark.filters import EDGE_FRACTION, approximate_curve


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("survey_files", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for path in args.survey_files:
        raw = yaml.safe_load(path.read_text())
        written = 0
        for band in raw["bands"]:
            resp = band.get("response") or {}
            if not resp.get("approximate"):
                continue
            out = path.parent / resp["file"]
            out.parent.mkdir(parents=True, exist_ok=True)
            wave, thr = approximate_curve(float(band["pivot_aa"]), float(band["fwhm_aa"]))
            header = (f"APPROXIMATE response of {raw['name']} {band['name']}: centre {band['pivot_aa']} A, "
                      f"FWHM {band['fwhm_aa']} A, flat top with raised-cosine edges {EDGE_FRACTION} FWHM wide\n"
                      f"(scripts/make_curves.py). Not the official curve: replace with the survey's.\n"
                      f"wavelength_aa throughput")
            np.savetxt(out, np.column_stack([wave, thr]), fmt=["%.1f", "%.5f"], header=header)
            written += 1
        print(f"{path}: {written} approximate curves written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
