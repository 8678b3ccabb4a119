#!/usr/bin/env bash
# Issue 4 "Done when": `llamapack quantize` vs llama.cpp's `llama-quantize` on the SAME f16 weights.
#
# Input: SmolLM2-135M as pure f16 (gguf-py's dequantization of the Q4_1 file) — f16.lpk for us,
# its GGUF export f16.gguf (identical tensor bytes) for llama-quantize. For each type: wall time of
# `llamapack quantize --threads N` vs `llama-quantize … N` (same N), interleaved ours/theirs,
# median of ROUNDS; then per-tensor RMSE vs the f16 source (bench/tensor_rmse.py, gguf-py
# dequantizer) for tensors that got the same type in both, and the types each tool chose.
# SmolLM2's rows are 576 wide (not a multiple of 256): k-quant types fall back (ours → q8_0,
# llama.cpp → q5_0/q5_1/q8_0), so k-quant error is only compared where both chose the same type.
# SYNTH=1 also runs the same on a 7B-shaped synthetic layer set (convert/bench/make_synthetic_meta.py,
# SYNTH_LAYERS=2 layers of dim 4096 / ffn 11008 + 32000-vocab embeddings, random N(0, 0.02) bf16;
# needs Llama 2's tokenizer.model, LLAMA2_TOKENIZER).
#
#   bench/quantize_vs_llamacpp.sh       # ~3 min (SmolLM2); SYNTH=1 [SYNTH_ONLY=1] adds ~15 min; env TYPES ("q8_0 q4_0 q4_k_m q6_k"), ROUNDS (3), THREADS (2)
set -euo pipefail
source "$(dirname "$0")/common.sh"
TYPES="${TYPES:-q8_0 q4_0 q4_k_m q6_k}"; ROUNDS="${ROUNDS:-3}"
run_set() {  # $1 = folder holding f16.lpk + f16.gguf, $2 = label
  local d="$1" label="$2" Q; Q="$(mktemp -d "$WORK/quantize-$2.XXXXXX")"  # per run: concurrent runs must not mix
  for r in $(seq "$ROUNDS"); do
    for t in $TYPES; do
      up="$(echo "$t" | tr a-z A-Z)"
      a=$(date +%s.%N); lp quantize "$d/f16.lpk" -o "$Q/ours-$t.lpk" --type "$t" --threads "$THREADS" >"$Q/ours-$t.log" 2>&1; b=$(date +%s.%N)
      "$PEER_BIN/llama-quantize" "$d/f16.gguf" "$Q/theirs-$t.gguf" "$up" "$THREADS" >"$Q/theirs-$t.log" 2>&1; c=$(date +%s.%N)
      echo "$t $r $(echo "$b - $a" | bc) $(echo "$c - $b" | bc)" >>"$Q/times.txt"
    done
  done
  echo "## $label: quantize time, $THREADS threads, median of $ROUNDS interleaved rounds"
  python3 - "$Q/times.txt" <<'PY'
import sys, statistics as st, collections
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
    t, r, a, b = l.split(); d[t].append((float(a), float(b)))
print(f"{'type':<8} {'ours s':>8} {'llama s':>8} {'ratio':>7}  (ratio = median of per-round ours/theirs; < 1 = we are faster)")
for t, v in d.items():
    print(f"{t:<8} {st.median(a for a, _ in v):8.2f} {st.median(b for _, b in v):8.2f} {st.median(a / b for a, b in v):7.3f}")
PY
  for t in $TYPES; do
    lp export "$Q/ours-$t.lpk" --format gguf -o "$Q/ours-$t.gguf" >/dev/null
    echo "### $label $t: per-tensor RMSE vs f16 (same-type tensors)"
    gpy "$ROOT/bench/tensor_rmse.py" "$d/f16.gguf" "$Q/ours-$t.gguf" "$Q/theirs-$t.gguf" --json "$Q/rmse-$t.json"
    rm -f "$Q/ours-$t.gguf"
  done
  rm -f "$Q"/ours-*.lpk "$Q"/theirs-*.gguf  # keep logs, times and rmse-*.json only
}
if [ -z "${SYNTH_ONLY:-}" ]; then S="$(smol_f16)"; run_set "$S" smollm2-135m; fi
if [ -n "${SYNTH:-}" ]; then
  Y="$WORK/synth7b"; mkdir -p "$Y"
  if [ ! -f "$Y/f16.gguf" ]; then
    "$PYTHON" "$ROOT/convert/bench/make_synthetic_meta.py" "$Y/meta" "${SYNTH_LAYERS:-2}" 1 >&2
    cp "${LLAMA2_TOKENIZER:-/work/shared/data/llama2/tokenizer.model}" "$Y/meta/"
    lp convert "$Y/meta" -o "$Y/f16.lpk" --dtype f16 >&2
    lp export "$Y/f16.lpk" --format gguf -o "$Y/f16.gguf" >&2
  fi
  run_set "$Y" synthetic-7b-shaped
fi
