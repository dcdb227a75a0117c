"""Everything survey-specific comes from the survey files: no survey name, band name, catalogue
column name or file label of any packaged survey file is written as a string in the code.

Canonical names (the leading catalogue columns every survey file maps its labels onto, and the mock's
truth columns) are the code's own vocabulary and allowed. Prose (docstrings, comments) may cite a
survey; a string the code *uses* may not.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from galaxy_spark.model.heads import TRUTH_COLUMNS
from galaxy_spark.survey import survey_file

ROOT = Path(__file__).resolve().parents[1]
SURVEY_DIR = survey_file("alhambra").parent


def survey_names() -> tuple[set[str], set[str]]:
    """(names that must not appear in code, canonical names that may)."""
    banned, canonical = set(), set(TRUTH_COLUMNS.values())
    for f in sorted(SURVEY_DIR.glob("*.yaml")):
        raw = yaml.safe_load(f.read_text())
        banned.add(raw["name"])
        cols = raw["columns"]
        canonical |= {c["name"] for c in cols["leading"]}
        canonical |= {c["name"] for c in cols.get("truth", [])}
        for b in raw["bands"]:
            banned |= {b["name"], f"{cols['error_prefix']}{b['name']}"}
            banned |= {v for v in (b.get("vizier") or {}).values() if isinstance(v, str)}
        for c in cols["leading"]:
            banned.add(c.get("vizier") or c["name"])
        for c in cols["trailing"] + cols.get("csv_extra", []):
            banned |= {c["name"]} | ({c["vizier"]} if c.get("vizier") else set())
            canonical |= {c["mock"]} if c.get("mock") else set()     # the mock's quantity names
        banned |= {v for v in raw["labels"].values() if isinstance(v, str)}
        banned |= set((raw["sentinels"].get("null_values") or {}))
    return banned - canonical, canonical


def code_strings(path: Path):
    """(line, word) of every word of every string constant the code uses: docstrings left out,
    f-string literal parts included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for word in re.findall(r"[A-Za-z_][A-Za-z0-9_*/]*", node.value):
                yield node.lineno, word, word == node.value.strip()


def code_files():
    return sorted((ROOT / "galaxy_spark").rglob("*.py")) + sorted((ROOT / "jobs").glob("*.py"))


def test_the_grep_would_catch_a_survey_name(tmp_path):
    banned, _ = survey_names()
    assert {"alhambra", "jplus", "jpas", "F814W", "zb_1", "Odds_1", "rSDSS", "J0378", "PHOTOZ", "Stellar_Flag"} <= banned
    sample = tmp_path / "x.py"
    sample.write_text('"""ALHAMBRA in a docstring is prose."""\nBAND = "F814W"\nmsg = f"{x} zb_1"\nc = "zb_1"\n')
    found = [(ln, s) for ln, s, _ in code_strings(sample) if s in banned]
    assert sorted(found) == [(2, "F814W"), (3, "zb_1"), (4, "zb_1")]


def test_no_survey_specific_name_in_code():
    banned, _ = survey_names()
    surveys = {yaml.safe_load(f.read_text())["name"].lower() for f in SURVEY_DIR.glob("*.yaml")}
    hits = []
    for f in code_files():
        for line, s, whole in code_strings(f):
            # one- and two-letter band names (J, H, KS) only as a whole string: as words they are prose
            if (s in banned and (len(s) > 2 or whole)) or s.lower() in surveys:
                hits.append(f"{f.relative_to(ROOT)}:{line}: {s!r}")
    assert not hits, "survey-specific names in code (put them in the survey file):\n" + "\n".join(hits)
