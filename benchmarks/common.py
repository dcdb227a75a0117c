"""Shared by the benchmark scripts: print the result as JSON and keep a copy at --out."""
from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, out: str | None) -> int:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    return 0
