"""Independent reading of a GGUF file with gguf-py, for llamapack's interop tests.

Usage: python3 check_gguf.py FILE.gguf OUT_DIR

Writes OUT_DIR/gguf_py.json with every metadata entry (key, gguf-py type names, value) and
every tensor (name, type, dims innermost first, byte size, absolute data offset), and each
tensor's values as dequantized by `gguf.quants.dequantize` to OUT_DIR/<index>.f32 (raw
little-endian float32). The Rust test compares all of it with its own reader and decoders.
"""

import json
import os
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize


def plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def main() -> None:
    path, out_dir = sys.argv[1], sys.argv[2]
    reader = GGUFReader(path, "r")
    metadata = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue  # gguf-py's virtual fields for the header counts
        types = [t.name for t in field.types]
        if field.types[0] == GGUFValueType.ARRAY and len(field.types) > 2:
            raise SystemExit(f"{key}: nested arrays are not expected in an export")
        metadata.append({"key": key, "types": types, "value": plain(field.contents())})
    tensors = []
    for i, t in enumerate(reader.tensors):
        values = np.asarray(dequantize(t.data, t.tensor_type), dtype="<f4")
        values.tofile(os.path.join(out_dir, f"{i}.f32"))
        tensors.append(
            {
                "name": t.name,
                "type": t.tensor_type.name,
                "dims": [int(d) for d in t.shape],
                "n_bytes": int(t.n_bytes),
                "data_offset": int(t.data_offset),
                "n_values": int(values.size),
            }
        )
    out = {"alignment": int(reader.alignment), "metadata": metadata, "tensors": tensors}
    with open(os.path.join(out_dir, "gguf_py.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
