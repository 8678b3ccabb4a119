#!/usr/bin/env python3
"""Per-tensor types that llama.cpp's own `llama-quantize --dry-run` assigns, for the recipe tests.

For each model shape below this writes a GGUF whose header is real (llama architecture, every
tensor of a Llama model with its true shape; 2-D f16, 1-D f32) and whose data is a sparse hole,
runs `llama-quantize --dry-run` once per column (recipe + options), and writes `<model>.tsv`:

    tensor                      q2_k      q4_k_m    q4_k_m+imatrix   ...
    #bpw                        2.6321    4.8436    ...              (the BPW llama-quantize prints)
    #fallbacks                  0         0         ...              (its "N of M required fallback")
    blk.0.attn_k.weight         q2_k      q4_k      ...

A cell is the type llama-quantize gave the tensor; `wanted>got` marks a tensor it warned about
("not divisible by ... falling back to"). Column labels are the recipe name plus `+`-separated
options, read by `quantize/tests/recipe.rs` too:
    imatrix          --imatrix (a one-entry legacy imatrix file: llama.cpp only needs one to exist)
    pure             --pure
    output=T         --output-tensor-type T
    embd=T           --token-embedding-type T
    tt=REGEX=T       --tensor-type REGEX=T (repeatable; order kept)

Run (needs numpy and pyyaml for gguf-py, and the peer build of llama.cpp, see
../../../fixtures/gguf/README.md):
    python quantize/tests/recipe/make_tables.py
Env: LLAMA (vendored llama.cpp dir), BIN (dir of llama-quantize). Deterministic; ~5 seconds.
The committed tables were made with llama.cpp as vendored in llama-cpp-python 0.3.36
(llama-quantize "version: 0.5.0-dev (build 1, commit 0c1e570)"), its gguf-py, Python 3.11.7,
numpy 2.4.6.
"""
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

PEER = Path(os.environ.get("PEER_DIR", Path.home() / ".cache/llamapack-peer"))
LLAMA = Path(os.environ.get("LLAMA", PEER / "src/llama_cpp_python-0.3.36/vendor/llama.cpp"))
BIN = Path(os.environ.get("BIN", PEER / "build-0.3.36/bin"))
sys.path.insert(0, str(LLAMA / "gguf-py"))
import gguf  # noqa: E402

HERE = Path(__file__).resolve().parent

# name: (n_layers, n_head, n_head_kv, dim, ffn, vocab, tied)
MODELS = {
    "llama2_7b": (32, 32, 32, 4096, 11008, 32000, False),
    "llama2_70b": (80, 64, 8, 8192, 28672, 32000, False),
    "smollm2_135m": (30, 9, 3, 576, 1536, 49152, True),
    # rows of 96 (a multiple of 32, not of 256) and an ffn of 200 (not even a multiple of 32)
    "odd": (4, 6, 2, 96, 200, 1000, False),
}

RECIPES = ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_0", "q4_1", "q4_k_s", "q4_k_m", "q5_0",
           "q5_1", "q5_k_s", "q5_k_m", "q6_k", "q8_0", "iq4_nl", "iq4_xs", "f16", "bf16", "f32"]
QUANTIZED = [r for r in RECIPES if r not in ("f16", "bf16", "f32")]

COLUMNS = (
    RECIPES
    + [f"{r}+imatrix" for r in QUANTIZED]
    + [f"{r}+pure" for r in QUANTIZED]
    + [
        "q4_k_m+output=q8_0+embd=q4_0",
        "q4_k_m+output=q4_k",
        "q4_0+embd=q4_k",
        "q4_k_m+pure+output=q8_0",
        "q4_k_m+tt=blk\\.0\\.attn_v=q8_0",
        "q4_k_m+tt=ffn_down=q5_0+tt=blk\\.1\\.ffn_down=q8_0",
        "q3_k_m+tt=blk\\.[01]\\.ffn_down=q4_0",
        "q4_0+tt=ffn_up=q4_k+tt=ffn_down=q6_k",
        "q4_k_m+tt=token_embd=q8_0+tt=output=q4_0",
        "q5_k_m+tt=attn_q=q4_0+output=q5_k",
        "f16+tt=attn_q=q8_0+output=q8_0",
        "iq4_xs+imatrix+tt=attn_k=iq4_xs",
    ]
)


def tensors(n_layers, n_head, n_head_kv, dim, ffn, vocab, tied):
    """(name, numpy-order shape) in convert_hf_to_gguf's order; llama.cpp sorts them anyway."""
    kv = dim // n_head * n_head_kv
    out = [("token_embd.weight", (vocab, dim))]
    for i in range(n_layers):
        b = f"blk.{i}."
        out += [
            (b + "attn_norm.weight", (dim,)),
            (b + "attn_q.weight", (dim, dim)),
            (b + "attn_k.weight", (kv, dim)),
            (b + "attn_v.weight", (kv, dim)),
            (b + "attn_output.weight", (dim, dim)),
            (b + "ffn_norm.weight", (dim,)),
            (b + "ffn_gate.weight", (ffn, dim)),
            (b + "ffn_up.weight", (ffn, dim)),
            (b + "ffn_down.weight", (dim, ffn)),
        ]
    out.append(("output_norm.weight", (dim,)))
    if not tied:
        out.append(("output.weight", (vocab, dim)))
    return out


def write_sparse_gguf(path, shape):
    n_layers, n_head, n_head_kv, dim, ffn, vocab, tied = shape
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(path.stem)
    w.add_block_count(n_layers)
    w.add_context_length(4096)
    w.add_embedding_length(dim)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(dim // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    total = 0
    for name, shp in tensors(*shape):
        f16 = len(shp) == 2
        n = 1
        for d in shp:
            n *= d
        nbytes = n * (2 if f16 else 4)
        w.add_tensor_info(name, shp, gguf.np.float16 if f16 else gguf.np.float32, nbytes)
        total += gguf.GGUFWriter.ggml_pad(nbytes, w.data_alignment)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    f = w.fout[0]
    start = gguf.GGUFWriter.ggml_pad(f.tell(), w.data_alignment)
    f.truncate(start + total)  # a hole: --dry-run never reads tensor data
    f.close()


def write_imatrix(path, dim):
    name = b"blk.0.attn_q.weight"
    with open(path, "wb") as f:
        f.write(struct.pack("<i", 1))
        f.write(struct.pack("<i", len(name)) + name)
        f.write(struct.pack("<ii", 1, dim))
        f.write(struct.pack(f"<{dim}f", *([1.0] * dim)))


def cli_args(label, imatrix):
    parts = label.split("+")
    recipe, args = parts[0], []
    for p in parts[1:]:
        if p == "imatrix":
            args += ["--imatrix", str(imatrix)]
        elif p == "pure":
            args.append("--pure")
        elif p.startswith("output="):
            args += ["--output-tensor-type", p[len("output="):]]
        elif p.startswith("embd="):
            args += ["--token-embedding-type", p[len("embd="):]]
        elif p.startswith("tt="):
            args += ["--tensor-type", p[len("tt="):]]
        else:
            raise ValueError(p)
    return args, recipe.upper()


LINE = re.compile(r"^\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+), size =.*?(?:\((\S+)\))?$")
FALLBACK = re.compile(r"warning: (\S+)\s+- ncols\s+\d+ not divisible by\s+\d+ \(required for type\s+(\S+)\).*"
                      r"-> falling back to\s+(\S+)")
BPW = re.compile(r"quant size\s*=\s*[\d.]+ MiB \(([\d.]+) BPW\)")
NFALL = re.compile(r"WARNING: (\d+) of \d+ tensor\(s\) required fallback")


def run(model, label, imatrix):
    args, ftype = cli_args(label, imatrix)
    cmd = [str(BIN / "llama-quantize"), "--dry-run", *args, str(model), ftype, "1"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    log = p.stdout + p.stderr
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{log}")
    types, fallbacks, bpw, nfall = {}, {}, None, 0
    for line in log.splitlines():
        if m := LINE.match(line.strip()):
            name, src, dst = m.groups()
            types[name] = (dst or src).lower()
        if m := FALLBACK.search(line):
            fallbacks[m.group(1)] = m.group(2).lower()
        if m := BPW.search(line):
            bpw = m.group(1)
        if m := NFALL.search(line):
            nfall = int(m.group(1))
    assert bpw is not None and types, log
    cells = {n: (f"{fallbacks[n]}>{t}" if n in fallbacks else t) for n, t in types.items()}
    return cells, bpw, nfall


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for model, shape in MODELS.items():
            path = tmp / f"{model}.gguf"
            write_sparse_gguf(path, shape)
            imatrix = tmp / f"{model}.imatrix.dat"
            write_imatrix(imatrix, shape[3])
            names = sorted(n for n, _ in tensors(*shape))
            cols = []
            for label in COLUMNS:
                cols.append((label, *run(path, label, imatrix)))
                print(f"{model} {label}: {cols[-1][2]} BPW", file=sys.stderr)
            rows = ["\t".join(["tensor"] + [c[0] for c in cols])]
            rows.append("\t".join(["#bpw"] + [c[2] for c in cols]))
            rows.append("\t".join(["#fallbacks"] + [str(c[3]) for c in cols]))
            for n in names:
                rows.append("\t".join([n] + [c[1][n] for c in cols]))
            (HERE / f"{model}.tsv").write_text("\n".join(rows) + "\n")
            path.unlink()


if __name__ == "__main__":
    main()
