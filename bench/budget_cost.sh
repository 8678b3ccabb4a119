#!/usr/bin/env bash
# Issue 13 "Cost": what a calibrated, size-budgeted quantization (`quantize --target-bpw
# --calibrate`, error-feedback rounding on) costs at Llama-2-7B and 70B shapes, from a synthetic
# Meta checkpoint of LAYERS real-shaped layers (random weights: the timings depend on the shapes,
# not the values), extrapolated to the whole model from the per-tensor timings `inspect --json`
# shows (provenance `sensitivities`):
#
#   - a block's tensors' probes run from their block to the logits, so with two layers the
#     layer-0 probes cost 2a + h and the layer-1 probes a + h (a: one block, h: the head);
#     an L-layer model's layer-l probes cost (L − l)·a + h, the embeddings' L·a + h;
#   - candidates (the types' proxies on ≤ 512 rows, the probe type's full encoding) are per
#     tensor and independent of L;
#   - the second moments and the final encoding are counted as if all of them were per layer
#     (they also contain the embeddings', the head's and the reference pass's share): an
#     overestimate.
#
# Peak memory (/usr/bin/time) is reported as measured; it does not grow with the layer count
# (one block's statistics at a time), which LAYERS=1 against LAYERS=2 shows (bench/README §9).
#
#   SHAPE=7b  bench/budget_cost.sh     # env SHAPE (7b|70b), LAYERS (2), BPW (4.85), THREADS,
#   SHAPE=70b bench/budget_cost.sh     # TORCH_PYTHON (a Python with torch for the generator)
set -euo pipefail
source "$(dirname "$0")/common.sh"
SHAPE="${SHAPE:-7b}"
LAYERS="${LAYERS:-2}"
BPW="${BPW:-4.85}"
CAL=/usr/share/common-licenses/GPL-3
case "$SHAPE" in 7b) FULL=32 ;; 70b) FULL=80 ;; *) echo "SHAPE is 7b or 70b" >&2; exit 2 ;; esac
D="$WORK/cost/$SHAPE-$LAYERS"; mkdir -p "$D"
if [ ! -f "$D/f16.lpk" ]; then
  "${TORCH_PYTHON:-/work/venv-torch/bin/python}" "$ROOT/convert/bench/make_synthetic_meta.py" "$D/meta" "$LAYERS" 2 "$SHAPE" >&2
  cp "${LLAMA2_TOKENIZER:-/work/shared/data/llama2/tokenizer.model}" "$D/meta/"
  lp convert "$D/meta" -o "$D/f16.lpk" --dtype f16 >&2
  rm -rf "$D/meta"
fi
/usr/bin/time -v "$LLAMAPACK" quantize "$D/f16.lpk" -o "$D/out.lpk" --target-bpw "$BPW" \
  --calibrate "$CAL" -t "$THREADS" --json >"$D/quantize.json" 2>"$D/quantize.err"
lp inspect "$D/out.lpk" --json >"$D/inspect.json"
python3 - "$D" "$FULL" "$LAYERS" "$THREADS" "$SHAPE" <<'PY'
import json, re, sys
D, full, layers, threads, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
q = json.load(open(f"{D}/quantize.json"))
ins = json.load(open(f"{D}/inspect.json"))
sens = ins["provenance"]["quantization"]["budget"]["sensitivities"]
ts = sens["tensors"]
err = open(f"{D}/quantize.err").read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 2**20
layer = lambda t: int(t["name"].split(".")[1]) if t["name"].startswith("layers.") else None
probe = {l: [t["seconds_probe"] for t in ts if layer(t) == l] for l in range(layers)}
cand = sum(t["seconds_candidates"] for t in ts if layer(t) is not None) / layers
other_cand = sum(t["seconds_candidates"] for t in ts if layer(t) is None)
if layers >= 2:
    mean = lambda v: sum(v) / len(v)
    a = mean(probe[layers - 2]) - mean(probe[layers - 1])
    h = max(mean(probe[layers - 1]) - a, 0.0)
else:
    a, h = sum(probe[0]) / len(probe[0]), 0.0  # a + h together: counted as a (over)
per_tensor = len(probe[0])
emb = next(t for t in ts if t["name"] == "tok_embeddings.weight")["seconds_probe"]
emb_a = (emb - h) / layers
probes_full = sum(per_tensor * ((full - l) * a + h) for l in range(full)) + full * emb_a + h
moments = q["measure_phases"]["second_moments"] / layers
encode_write = (q["seconds"] - q["measure_seconds"]) / layers
other_probes = sum(t["seconds_probe"] for t in ts if layer(t) is None and t["name"] != "tok_embeddings.weight")
total = full * (cand + moments + encode_write) + other_cand + probes_full + other_probes
print(f"{shape} shape, {layers} layer(s), {threads} threads: whole run {q['seconds']:.0f} s "
      f"(measure {q['measure_seconds']:.0f} s: {json.dumps({k: round(v, 1) for k, v in q['measure_phases'].items()})}), "
      f"peak RSS {rss:.2f} GiB")
print(f"per block: candidates {cand:.1f} s, second moments ≤ {moments:.1f} s, final encoding + write ≤ {encode_write:.1f} s; "
      f"probe: one block a = {a:.2f} s, head h = {h:.2f} s")
print(f"extrapolated to {full} layers at {threads} threads: {total / 3600:.2f} h "
      f"(probes {probes_full / 3600:.2f} h); at 16 threads, if it scales: {total * threads / 16 / 3600:.2f} h")
PY
