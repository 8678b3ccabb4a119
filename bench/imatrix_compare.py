#!/usr/bin/env python3
"""Compare two GGUF imatrix files (e.g. llamapack's and llama-imatrix's) with gguf-py.

    PYTHONPATH=$LLAMA/gguf-py python bench/imatrix_compare.py ours.gguf theirs.gguf [--json OUT]

Checks that both have the same keys (general.type, imatrix.*), the same tensor names in the same
order with the same shapes and types, then per weight compares the mean squared activation
E[x²] = in_sum2 / counts column by column: the max relative difference |a-b| / b over columns
(columns with b == 0 are compared absolutely), and whether the counts are equal. Prints one line
per weight and a summary; exit status 1 when the layouts differ.
"""
import json
import sys

import gguf
import numpy as np


def load(path):
    r = gguf.GGUFReader(path)
    keys = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = [(t.name, [int(x) for x in t.shape], t.tensor_type.name, np.array(t.data, dtype=np.float32).reshape(-1)) for t in r.tensors]
    return keys, tensors


def main():
    a_path, b_path = sys.argv[1], sys.argv[2]
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    ka, ta = load(a_path)
    kb, tb = load(b_path)
    ok = True
    for k in sorted(set(ka) | set(kb)):
        same = ka.get(k) == kb.get(k)
        if k != "imatrix.datasets" and not same:
            ok = False
        print(f"key {k}: {ka.get(k)!r} vs {kb.get(k)!r}{'' if same else '  DIFFERENT'}")
    la = [(n, s, t) for n, s, t, _ in ta]
    lb = [(n, s, t) for n, s, t, _ in tb]
    if la != lb:
        ok = False
        print("tensor layout DIFFERS:")
        for x, y in zip(la, lb):
            if x != y:
                print(f"  {x} vs {y}")
        if len(la) != len(lb):
            print(f"  {len(la)} vs {len(lb)} tensors")
    da = {n: d for n, _, _, d in ta}
    db = {n: d for n, _, _, d in tb}
    rows = []
    for name in sorted(n[: -len(".in_sum2")] for n in da if n.endswith(".in_sum2") and n in db):
        sa, sb = da[name + ".in_sum2"], db[name + ".in_sum2"]
        ca, cb = da[name + ".counts"], db[name + ".counts"]
        ma, mb = sa / ca[0], sb / cb[0]
        denom = np.where(mb > 0, mb, 1.0)
        rel = np.abs(ma - mb) / denom
        j = int(np.argmax(rel))
        rows.append(dict(tensor=name, cols=int(sa.size), counts=[float(ca[0]), float(cb[0])],
                         max_rel=float(rel[j]), at=j, mean_rel=float(rel.mean())))
    w = max(len(r["tensor"]) for r in rows)
    print(f"\n{'tensor':<{w}} {'cols':>5} {'count a':>8} {'count b':>8} {'max rel Δ':>10} {'col':>5} {'mean rel Δ':>10}")
    for r in rows:
        print(f"{r['tensor']:<{w}} {r['cols']:>5} {r['counts'][0]:>8.0f} {r['counts'][1]:>8.0f} {r['max_rel']:>10.3e} {r['at']:>5} {r['mean_rel']:>10.3e}")
    worst = max(rows, key=lambda r: r["max_rel"])
    counts_equal = all(r["counts"][0] == r["counts"][1] for r in rows)
    print(f"\n{len(rows)} weights compared; layout {'identical' if ok else 'DIFFERENT'}; counts {'equal' if counts_equal else 'DIFFERENT'}")
    print(f"max relative difference of E[x²]: {worst['max_rel']:.3e} ({worst['tensor']} column {worst['at']}); "
          f"median over weights of the per-weight max: {float(np.median([r['max_rel'] for r in rows])):.3e}; "
          f"mean over all columns: {float(np.mean([r['mean_rel'] for r in rows])):.3e}")
    if out:
        json.dump(dict(layout_identical=ok, counts_equal=counts_equal, rows=rows), open(out, "w"), indent=1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
