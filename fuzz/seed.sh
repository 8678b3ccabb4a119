#!/bin/sh
# Seeds the corpora of every target from the committed fixtures (run from fuzz/; stdlib python).
set -e
mkdir -p corpus/lpk corpus/gguf corpus/zip corpus/pickle corpus/model
cp ../convert/tests/gguf/fixtures/*.gguf corpus/gguf/ 2>/dev/null || true
for f in ../fixtures/pth/*.pth ../fixtures/pth/meta_ok/*.pth; do
    cp "$f" "corpus/zip/$(basename "$(dirname "$f")")_$(basename "$f")"
done
python3 - <<'PY'
import glob, os, zipfile
for f in glob.glob("../fixtures/pth/*.pth") + glob.glob("../fixtures/pth/meta_ok/*.pth"):
    try:
        z = zipfile.ZipFile(f)
    except Exception:
        continue
    for n in z.namelist():
        if n.endswith("data.pkl"):
            try:
                data = z.read(n)
            except Exception:
                continue
            name = os.path.basename(os.path.dirname(f)) + "_" + os.path.basename(f) + ".pkl"
            open(os.path.join("corpus/pickle", name), "wb").write(data)
PY
python3 - <<'PY'
# A whole tiny model for the lpk target, in its wrapped form: [u16 split][data region][JSON
# header] (the target adds the preamble and the header crc32c; tensor crcs are not checked on
# load), so mutations start from a file that passes the config-against-tensors check.
import json, struct
cfg = dict(arch="llama", dim=8, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=8, vocab_size=16,
           norm_eps=1e-5, rope_theta=10000.0, context_length=32, tied_output=False)
layer = [("attention.wq.weight", [8, 8]), ("attention.wk.weight", [4, 8]),
         ("attention.wv.weight", [4, 8]), ("attention.wo.weight", [8, 8]),
         ("feed_forward.w1.weight", [8, 8]), ("feed_forward.w2.weight", [8, 8]),
         ("feed_forward.w3.weight", [8, 8]), ("attention_norm.weight", [8]),
         ("ffn_norm.weight", [8])]
shapes = [("tok_embeddings.weight", [16, 8])] + [("layers.0." + n, s) for n, s in layer] + \
    [("norm.weight", [8]), ("output.weight", [16, 8])]
region, tensors = b"", []
for name, shape in shapes:
    n = 4
    for d in shape:
        n *= d
    tensors.append(dict(name=name, dtype="f32", shape=shape, offset=64 + len(region), nbytes=n,
                        crc32c=0))
    region += b"\0" * n
    region += b"\0" * (-len(region) % 64)
pieces = ["<unk>", "<s>", "</s>"] + list("\u2581abcdefghijkl")
tok = dict(kind="sentence_piece", pieces=pieces, scores=[-float(i) for i in range(16)],
           types=[2, 3, 3] + [1] * 13, bos_id=1, eos_id=2, unk_id=0, pad_id=None, add_bos=True,
           add_eos=False, add_dummy_prefix=True, remove_extra_whitespaces=False,
           byte_fallback=False)
prov = dict(tool="llamapack fuzz seed", source_format="test", sources=[])
header = json.dumps(dict(config=cfg, tokenizer=tok, provenance=prov, tensors=tensors, blobs=[]))
open("corpus/lpk/tiny_model", "wb").write(struct.pack("<H", len(region)) + region +
                                            header.encode())
PY
