#!/usr/bin/env python3
"""Tensor for tensor, are two GGUFs the same? For each tensor of OURS: same ggml type as in THEIRS,
and byte-identical data. Prints one line (or JSON with --json): tensors, same type, identical,
file sizes, and the first few differences with both types.

    PYTHONPATH=$LLAMA/gguf-py python bench/gguf_same.py OURS.gguf THEIRS.gguf [--json]
"""
import json
import os
import sys

import gguf


def main():
    ours_p, theirs_p = sys.argv[1:3]
    ours = {t.name: t for t in gguf.GGUFReader(ours_p).tensors}
    theirs = {t.name: t for t in gguf.GGUFReader(theirs_p).tensors}
    same_type = identical = 0
    diffs = []
    for name, o in ours.items():
        th = theirs.get(name)
        if th is None:
            diffs.append(f"{name}: missing in theirs")
            continue
        if o.tensor_type != th.tensor_type:
            diffs.append(f"{name}: {o.tensor_type.name} vs {th.tensor_type.name}")
            continue
        same_type += 1
        if bytes(o.data.tobytes()) == bytes(th.data.tobytes()):
            identical += 1
        else:
            diffs.append(f"{name}: {o.tensor_type.name} bytes differ")
    doc = {
        "tensors": len(ours),
        "theirs_tensors": len(theirs),
        "same_type": same_type,
        "identical": identical,
        "ours_bytes": os.path.getsize(ours_p),
        "theirs_bytes": os.path.getsize(theirs_p),
        "first_differences": diffs[:6],
    }
    if "--json" in sys.argv:
        print(json.dumps(doc))
    else:
        print(f"{identical}/{len(ours)} identical, {same_type} same type; "
              f"{doc['ours_bytes']} vs {doc['theirs_bytes']} bytes; {diffs[:3]}")


if __name__ == "__main__":
    main()
