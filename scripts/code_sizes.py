"""Functions over 80 lines and modules over 400 lines in galaxy_spark/ (the issue-23 yardstick).

    python scripts/code_sizes.py [ROOT]     # ROOT: a checkout (default: this one)
"""
import ast
import sys
from pathlib import Path

FUNCTION_LINES, MODULE_LINES = 80, 400


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    for p in sorted((root / "galaxy_spark").rglob("*.py")):
        src = p.read_text()
        n = src.count("\n")
        long = [f"{f.name} {f.end_lineno - f.lineno + 1}" for f in ast.walk(ast.parse(src))
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > FUNCTION_LINES]
        if n > MODULE_LINES or long:
            print(f"{p.relative_to(root)}: {n} lines" + (f"; functions {', '.join(long)}" if long else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
