#!/usr/bin/env bash
# Issue 11 "Done when": every recipe of llama.cpp's menu, quantized from the SAME f16 weights by
# `llamapack quantize` and by `llama-quantize` (no imatrix). Per recipe: tensors, tensors given the
# same type, tensors byte-identical (ours exported to GGUF vs theirs, bench/gguf_same.py), both file
# sizes, and the wall time of each tool (one run each, same threads; ratio < 1 = we are faster).
# Goal: every tensor of every recipe identical in type and bytes.
#
#   bench/recipes_vs_llamacpp.sh            # SmolLM2-135M (576-wide rows: the fallbacks)
#   SYNTH=1 bench/recipes_vs_llamacpp.sh    # also the 7B-shaped synthetic checkpoint (256-multiple rows)
#   IMATRIX=imatrix.gguf bench/recipes_vs_llamacpp.sh   # both tools with the same importance matrix
#     (e.g. llama-imatrix's file of the same model: see imatrix_vs_llamacpp.sh)
#   env RECIPES (all of llama.cpp's menu below), THREADS (2), SYNTH_ONLY=1
set -euo pipefail
source "$(dirname "$0")/common.sh"
RECIPES="${RECIPES:-q2_k q3_k_s q3_k_m q3_k_l q4_0 q4_1 q4_k_s q4_k_m q5_0 q5_1 q5_k_s q5_k_m q6_k q8_0 iq4_nl iq4_xs}"
run_set() {  # $1 = folder holding f16.lpk + f16.gguf, $2 = label
  local d="$1" label="$2" Q; Q="$(mktemp -d "$WORK/recipes-$2.XXXXXX")"
  echo "## $label ($THREADS threads)"
  printf '%-8s %8s %9s %10s %12s %12s %8s %8s %7s\n' recipe tensors same_type identical ours_bytes theirs_bytes ours_s llama_s ratio
  for t in $RECIPES; do
    up="$(echo "$t" | tr a-z A-Z)"
    a=$(date +%s.%N)
    im=(); [ -n "${IMATRIX:-}" ] && im=(--imatrix "$IMATRIX")
    lp quantize "$d/f16.lpk" -o "$Q/ours.lpk" --type "$t" "${im[@]}" --threads "$THREADS" >"$Q/ours-$t.log" 2>&1
    b=$(date +%s.%N)
    "$PEER_BIN/llama-quantize" "${im[@]}" "$d/f16.gguf" "$Q/theirs.gguf" "$up" "$THREADS" >"$Q/theirs-$t.log" 2>&1
    c=$(date +%s.%N)
    lp export "$Q/ours.lpk" --format gguf -o "$Q/ours.gguf" >/dev/null
    gpy "$ROOT/bench/gguf_same.py" "$Q/ours.gguf" "$Q/theirs.gguf" --json >"$Q/same-$t.json"
    python3 - "$Q/same-$t.json" "$t" "$a" "$b" "$c" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); t = sys.argv[2]; a, b, c = map(float, sys.argv[3:6])
print(f"{t:<8} {d['tensors']:8} {d['same_type']:9} {d['identical']:10} {d['ours_bytes']:12} {d['theirs_bytes']:12} {b-a:8.2f} {c-b:8.2f} {(b-a)/(c-b):7.3f}")
for x in d["first_differences"][:3]:
    print(f"         {x}")
PY
    rm -f "$Q/ours.lpk" "$Q/ours.gguf" "$Q/theirs.gguf"
  done
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
