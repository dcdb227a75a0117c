"""The building blocks of every report directory: a self-contained HTML page (inline CSS, PNGs
inlined as base64 data URIs, no scripts, no external references — it opens offline), number
formatting, tables, strict-JSON metrics and the report manifest. The evaluation report
(``report.evaluation``) and the real-data check's (``studies.realdata_report``) are made of these."""
from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0 1.2em 0;font-size:.86em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.kpi{display:inline-block;border:1px solid #ddd;border-radius:6px;padding:.5em .9em;margin:.3em;min-width:9em}
.kpi b{display:block;font-size:1.3em}.muted{color:#666;font-size:.9em}
nav a{margin-right:1em}code{background:#f6f6f6;padding:0 .2em}
"""


def fmt(v, digits: int = 4) -> str:
    """A value as short text for tables and the console: ``–`` for None/NaN/inf, integers with
    thousands separators, floats to ``digits`` significant digits (very large or small ones in
    e-notation), anything else HTML-escaped."""
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        if float(v).is_integer() and abs(v) >= 100:
            return f"{int(v):,}"
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def jsonable(x):
    """numpy/pandas → plain Python, recursively (DataFrames → lists of records); NaN/inf → None, so
    the result serialises as strict JSON."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, pd.DataFrame):
        return [jsonable(r) for r in x.to_dict(orient="records")]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    return x


def write_metrics_json(out: Path, metrics: dict) -> Path:
    """``out/metrics.json``: every number of the report, strict JSON (NaN → null)."""
    path = Path(out) / "metrics.json"
    path.write_text(json.dumps(jsonable(metrics), indent=1, allow_nan=False))
    return path


def write_report_manifest(out: Path) -> None:
    """Mark `out` as a report directory, so later jobs recognise it (galaxy_spark.io.paths)."""
    (Path(out) / "_manifest.json").write_text(json.dumps(
        {"kind": "report", "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}) + "\n")


def table_html(df: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as an HTML table, values through ``fmt`` ('no data' when empty)."""
    if df is None or df.empty:
        return "<p class='muted'>no data</p>"
    d = df if index else df.reset_index(drop=True)
    head = ([html.escape(str(d.index.name or ""))] if index else []) + [html.escape(str(c)) for c in d.columns]
    rows = []
    for idx, r in d.iterrows():
        cells = ([f"<td>{html.escape(str(idx))}</td>"] if index else []) + [f"<td>{fmt(v)}</td>" for v in r.tolist()]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def img_html(path: Path, alt: str) -> str:
    """A PNG inlined as a base64 data URI, with ``alt`` as its caption."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption class="muted">' \
           f"{html.escape(alt)}</figcaption></figure>"


def anchor(title: str) -> str:
    """The id of a section titled ``title`` (for the navigation links)."""
    return title.lower().replace(" ", "-").replace(":", "").replace("/", "-")


def section(title: str, body: str) -> str:
    """A ``<section>`` with an ``<h2>`` heading and an id from ``anchor``."""
    return f'<section id="{anchor(title)}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def page(title: str, body: str) -> str:
    """A whole HTML document: ``title`` as its title and ``<h1>``, inline CSS, ``body`` as is."""
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>" + body + "</body></html>\n")
