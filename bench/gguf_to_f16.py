#!/usr/bin/env python3
"""Dequantize every quantized tensor of a GGUF to f16 with gguf-py (llama.cpp's numpy reference),
copying all metadata, so both llamapack and llama.cpp start from the SAME pure-f16 weights.

    PYTHONPATH=$LLAMA/gguf-py /work/venv/bin/python bench/gguf_to_f16.py IN.gguf OUT.gguf

f32/f16 tensors are copied unchanged (1-D norms stay f32); general.file_type becomes 1 (MOSTLY_F16).

    ... gguf_to_f16.py IN.gguf OUT.gguf --offgrid 0.35

--offgrid F moves every 2-D weight off the grid it was dequantized from (SmolLM2's file is Q4_1,
so q4_1 would reproduce it exactly): each weight gets Gaussian noise of F times its 32-block's
Q4_1 step ((max - min) / 15), seeded (numpy default_rng(1234)) so the copy is reproducible.
The result is a different model: measure against its own f16, never against the original.
"""
import sys

import numpy as np
import gguf
from gguf.quants import dequantize


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    offgrid = float(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--offgrid" else 0.0
    rng = np.random.default_rng(1234)
    r = gguf.GGUFReader(src)
    arch = r.fields[gguf.Keys.General.ARCHITECTURE].contents()
    w = gguf.GGUFWriter(dst, arch)
    for f in r.fields.values():
        if f.name == gguf.Keys.General.ARCHITECTURE or f.name.startswith("GGUF."):
            continue
        vt = f.types[0]
        sub = f.types[-1] if vt == gguf.GGUFValueType.ARRAY else None
        val = f.contents()
        if f.name == gguf.Keys.General.FILE_TYPE:
            val = int(gguf.LlamaFileType.MOSTLY_F16)
        w.add_key_value(f.name, val, vt, sub_type=sub)
    out = []
    for t in r.tensors:
        if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            data, ty = np.asarray(t.data), t.tensor_type
        else:
            data = dequantize(t.data, t.tensor_type).astype(np.float16)
            ty = gguf.GGMLQuantizationType.F16
        # numpy shape is outermost first; GGUF dims innermost first
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        data = data.reshape(shape)
        if offgrid > 0 and data.ndim == 2 and shape[-1] % 32 == 0:
            x = data.astype(np.float32).reshape(-1, 32)
            step = (x.max(axis=1, keepdims=True) - x.min(axis=1, keepdims=True)) / 15.0
            x = x + rng.standard_normal(x.shape, dtype=np.float32) * (offgrid * step)
            data = x.reshape(shape).astype(np.float16)
            ty = gguf.GGMLQuantizationType.F16
        out.append((t.name, data, ty))
        w.add_tensor_info(t.name, data.shape, data.dtype, data.nbytes, ty)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, data, _ in out:
        w.write_tensor_data(data)
    w.close()
    print(f"{src} -> {dst}: {len(out)} tensors")


if __name__ == "__main__":
    main()
