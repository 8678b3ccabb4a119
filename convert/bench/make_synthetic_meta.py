#!/usr/bin/env python3
"""A synthetic Meta-layout checkpoint for the conversion benchmark (not a test; not committed).

    /work/venv/bin/python convert/bench/make_synthetic_meta.py OUT_DIR [N_LAYERS] [N_SHARDS] [7b|70b]

7B-shaped layers (dim 4096, 32 heads, ffn 11008, vocab 32000), bf16, split into model-parallel
shards exactly as Meta splits them. 4 layers and 2 shards (the default) make 2.1 GB; the
largest tensors are tok_embeddings and output, 262 MB each. `70b`: Llama-2-70B's layers (dim
8192, 64 heads, 8 KV heads, ffn 28672 from its params.json's multiple_of 4096 and
ffn_dim_multiplier 1.3), 1.7 GB per layer.
"""

import json
import sys
from pathlib import Path

import torch

out = Path(sys.argv[1])
layers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
mp = int(sys.argv[3]) if len(sys.argv) > 3 else 2
shape = sys.argv[4] if len(sys.argv) > 4 else "7b"
if shape == "7b":
    dim, heads, kv_heads, ffn, vocab = 4096, 32, 32, 11008, 32000
    extra = {"multiple_of": 256}
elif shape == "70b":
    dim, heads, kv_heads, ffn, vocab = 8192, 64, 8, 28672, 32000
    extra = {"multiple_of": 4096, "ffn_dim_multiplier": 1.3, "n_kv_heads": kv_heads}
else:
    sys.exit(f"unknown shape {shape!r} (7b or 70b)")
kv = dim // heads * kv_heads
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
shapes = {"tok_embeddings.weight": ((vocab, dim), 1)}
for i in range(layers):
    p = f"layers.{i}."
    shapes[p + "attention.wq.weight"] = ((dim, dim), 0)
    for n in ("wk", "wv"):
        shapes[p + f"attention.{n}.weight"] = ((kv, dim), 0)
    shapes[p + "attention.wo.weight"] = ((dim, dim), 1)
    shapes[p + "feed_forward.w1.weight"] = ((ffn, dim), 0)
    shapes[p + "feed_forward.w2.weight"] = ((dim, ffn), 1)
    shapes[p + "feed_forward.w3.weight"] = ((ffn, dim), 0)
    shapes[p + "attention_norm.weight"] = ((dim,), None)
    shapes[p + "ffn_norm.weight"] = ((dim,), None)
shapes["norm.weight"] = ((dim,), None)
shapes["output.weight"] = ((vocab, dim), 0)
shapes["rope.freqs"] = ((dim // heads // 2,), None)
full = {k: (torch.randn(s) * 0.02).to(torch.bfloat16) for k, (s, _) in shapes.items()}
for r in range(mp):
    shard = {}
    for k, (s, d) in shapes.items():
        w = full[k]
        if d is not None:
            n = w.shape[d] // mp
            w = w.narrow(d, r * n, n)
        shard[k] = w.clone().contiguous()
    torch.save(shard, out / f"consolidated.{r:02d}.pth")
    del shard
(out / "params.json").write_text(json.dumps(
    {"dim": dim, **extra, "n_heads": heads, "n_layers": layers, "norm_eps": 1e-5, "vocab_size": -1}))
print("wrote", out, sum(f.stat().st_size for f in out.iterdir()) / 1e9, "GB")
