#!/usr/bin/env python3
"""Per-tensor quantization error of two GGUFs (ours, theirs) against the same f16/f32 source GGUF,
dequantized with gguf-py (llama.cpp's numpy reference). Compares only tensors that got the same
type in both; prints a per-kind summary, counts byte-identical tensors, and the overall RMSE ratio.

    PYTHONPATH=$LLAMA/gguf-py python bench/tensor_rmse.py SOURCE.gguf OURS.gguf THEIRS.gguf [--json OUT]
"""
import collections
import json
import re
import sys

import numpy as np
import gguf
from gguf.quants import dequantize


def load(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def deq(t):
    return dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)


def main():
    src, ours, theirs = (load(p) for p in sys.argv[1:4])
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    per_kind = collections.defaultdict(lambda: [0.0, 0.0, 0, 0, 0])  # sq ours, sq theirs, n, tensors, identical
    types = collections.Counter()
    differing = collections.Counter()
    rows = []
    for name, o in ours.items():
        th = theirs[name]
        if o.tensor_type != th.tensor_type:
            differing[(o.tensor_type.name, th.tensor_type.name)] += 1
            continue
        if o.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            continue
        w = deq(src[name])
        eo, et = deq(o) - w, deq(th) - w
        so, st = float(np.dot(eo, eo)), float(np.dot(et, et))
        same = np.array_equal(np.asarray(o.data), np.asarray(th.data))
        kind = re.sub(r"^blk\.\d+\.", "", name)
        k = per_kind[(kind, o.tensor_type.name)]
        k[0] += so; k[1] += st; k[2] += w.size; k[3] += 1; k[4] += int(same)
        types[o.tensor_type.name] += 1
        rows.append(dict(name=name, type=o.tensor_type.name, rmse_ours=(so / w.size) ** 0.5,
                         rmse_theirs=(st / w.size) ** 0.5, identical=bool(same)))
    print(f"{'tensor kind':<24} {'type':<6} {'n':>3} {'RMSE ours':>11} {'RMSE theirs':>11} {'ratio':>7} {'identical':>9}")
    tot = [0.0, 0.0, 0, 0, 0]
    for (kind, ty), (so, st, n, c, same) in sorted(per_kind.items()):
        print(f"{kind:<24} {ty:<6} {c:>3} {(so/n)**.5:11.3e} {(st/n)**.5:11.3e} {(so/st)**.5 if st else float('nan'):7.4f} {same:>5}/{c}")
        for i, v in enumerate((so, st, n, c, same)):
            tot[i] += v
    if tot[2]:
        print(f"{'ALL same-type tensors':<24} {'':<6} {tot[3]:>3} {(tot[0]/tot[2])**.5:11.3e} {(tot[1]/tot[2])**.5:11.3e} {(tot[0]/tot[1])**.5 if tot[1] else float('nan'):7.4f} {tot[4]:>5}/{tot[3]}")
    if differing:
        print("types differ (ours→theirs, not compared): " + ", ".join(f"{a}→{b} ×{n}" for (a, b), n in differing.items()))
    if out:
        json.dump(dict(rows=rows, rmse_ratio=(tot[0] / tot[1]) ** .5 if tot[1] else None,
                       differing={f"{a}->{b}": n for (a, b), n in differing.items()}), open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
