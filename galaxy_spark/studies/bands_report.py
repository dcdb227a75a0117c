"""The band-count study's report directory: accuracy_vs_bands.png, metrics.json, report.html."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from galaxy_spark.studies.bands import ESTIMATORS, study_table
from galaxy_spark.io.commit import staged_replace
from galaxy_spark.drawing import plots as P
from galaxy_spark.drawing.html import img_html, page, table_html, write_metrics_json, write_report_manifest


def write_bands_report(result: dict, out) -> Path:
    """Write the report directory `out` (replaced atomically); returns the path of report.html."""
    out = Path(out)
    with staged_replace(out) as staging:
        plot = P.accuracy_vs_bands(result, staging / "accuracy_vs_bands.png")
        write_metrics_json(staging, result)
        write_report_manifest(staging)
        by_mag = []
        for name, r in result["surveys"].items():
            for est in ESTIMATORS:
                for row in r[est]["by_mag"]:
                    by_mag.append({"survey": name, "estimator": est, "mag": f"{row['lo']:g}-{row['hi']:g}",
                                   "n": row["count"], "sigma_nmad": row["sigma_nmad"],
                                   "outlier_frac": row["outlier_frac"]})
        timing = pd.DataFrame({k: {"bands": v["bands"], "detected": v["detected"], "train rows": v["train_rows"],
                                   **{f"{s} s": t for s, t in v["seconds"].items()},
                                   "network objects/s": v["network_objects_per_s"],
                                   "BPZ objects/s": v.get("bpz_objects_per_s")}
                               for k, v in result["surveys"].items()}).T
        body = (f"<p>{result['objects_drawn']:,} galaxies drawn once (seed {result['seed']}, to "
                f"{result['depth_limit']:g} in {result['magnitude_band']}) and observed through each survey file; "
                f"metrics against the true redshift on the <b>{result['same_objects']:,}</b> test-split galaxies "
                f"every survey detects. Network: the preset's redshift network trained on the "
                f"{result['network_labels']}; template fit: the survey's own BPZ labels (the mock's templates); bpz: "
                "the evaluation's baseline (desc-bpz CWW+Kinney templates, HDF-N prior), as a user would run it. "
                "Surveys with approximate response curves say so in their files.</p>"
                + img_html(plot, "accuracy vs number of bands") + "<h2>Same objects</h2>"
                + table_html(study_table(result), index=False)
                + f"<h2>By {result['magnitude_band']} (true)</h2>" + table_html(pd.DataFrame(by_mag), index=False)
                + "<h2>Detections and time</h2>" + table_html(timing))
        (staging / "report.html").write_text(page("Accuracy vs number of bands", body), encoding="utf-8")
    return out / "report.html"
