"""Compare two scores directories bit for bit (the refactor check: same model + catalogue → same
scores). Rows are matched by ID; every column except `scored_at` must be identical (NaN = NaN).

    python scripts/compare_scores.py OLD_SCORES NEW_SCORES [--fields 2,4]
"""
import argparse
import sys

import numpy as np
import pyarrow.dataset as ds


def load(path, fields):
    d = ds.dataset(path, format="parquet", partitioning="hive")
    flt = ds.field("Field").isin(fields) if fields else None
    return d.to_table(filter=flt).to_pandas().sort_values("ID", kind="mergesort").reset_index(drop=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--fields", default=None, help="comma-separated Fields (default: all)")
    a = p.parse_args()
    fields = [int(f) for f in a.fields.split(",")] if a.fields else None
    old, new = load(a.old, fields), load(a.new, fields)
    cols = [c for c in old.columns if c != "scored_at"]
    problems = []
    if len(old) != len(new) or not np.array_equal(old["ID"].to_numpy(), new["ID"].to_numpy()):
        problems.append(f"rows differ: {len(old)} vs {len(new)}")
    else:
        for c in cols:
            if c not in new:
                problems.append(f"column {c} missing in new")
                continue
            x, y = old[c].to_numpy(), new[c].to_numpy()
            if x.dtype.kind == "f":
                same = (x.view(np.uint64 if x.dtype.itemsize == 8 else np.uint32)
                        == y.astype(x.dtype).view(np.uint64 if x.dtype.itemsize == 8 else np.uint32)) | (np.isnan(x) & np.isnan(y))
            else:
                same = (x == y) | (old[c].isna().to_numpy() & new[c].isna().to_numpy())
            if not same.all():
                problems.append(f"{c}: {int((~same).sum())} rows differ")
    extra = sorted(set(new.columns) - set(old.columns))
    print(f"compared {len(old)} rows, {len(cols)} columns (scored_at excluded); new-only columns: {extra or 'none'}")
    print("\n".join(problems) if problems else "identical to the last bit")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
