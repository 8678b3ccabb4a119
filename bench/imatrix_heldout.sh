#!/usr/bin/env bash
# Issue 12 "Done when": accuracy on HELD-OUT text of each type quantized without an imatrix, with
# ours (`llamapack imatrix`) and with llama-imatrix's — both computed on GPL-3 (ctx 512) by
# imatrix_vs_llamacpp.sh — measured by `llamapack eval` against the f16 model on a different text
# (MPL-1.1 + Apache-2.0 + GFDL-1.3, none of it used to calibrate). With llama-imatrix's file our
# quantize gives llama-quantize's bytes (recipes_vs_llamacpp.sh IMATRIX=), so its row is llama.cpp's.
#
#   bench/imatrix_heldout.sh        # env TYPES ("q4_0 q3_k_m q4_k_m iq4_xs"), CHUNKS (8), THREADS (2)
set -euo pipefail
source "$(dirname "$0")/common.sh"
TYPES="${TYPES:-q4_0 q3_k_m q4_k_m iq4_xs}"; CHUNKS="${CHUNKS:-8}"
S="$(smol_f16)"; I="$WORK/imatrix"
[ -f "$I/ours.gguf" ] && [ -f "$I/theirs.gguf" ] || { echo "run bench/imatrix_vs_llamacpp.sh first" >&2; exit 1; }
TEXT="$WORK/heldout.txt"
cat /usr/share/common-licenses/MPL-1.1 /usr/share/common-licenses/Apache-2.0 /usr/share/common-licenses/GFDL-1.3 >"$TEXT"
Q="$(mktemp -d "$WORK/heldout.XXXXXX")"
printf '%-8s %-9s %10s %10s %9s %9s\n' type imatrix mean_kld p99_kld top1 ppl_ratio
for t in $TYPES; do
  for im in none ours theirs; do
    a=(); [ "$im" != none ] && a=(--imatrix "$I/$im.gguf")
    lp quantize "$S/f16.lpk" -o "$Q/$t-$im.lpk" --type "$t" "${a[@]}" --threads "$THREADS" >/dev/null 2>&1
    lp eval "$Q/$t-$im.lpk" --reference "$S/f16.lpk" --text "$TEXT" --ctx 512 --chunks "$CHUNKS" --threads "$THREADS" --json 2>/dev/null >"$Q/$t-$im.json"
    python3 - "$Q/$t-$im.json" "$t" "$im" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<8} {sys.argv[3]:<9} {d['kld_mean']:10.6f} {d['kld_p99']:10.6f} {100*d['top1_agreement']:8.2f}% {d['ppl_ratio']:9.5f}")
PY
    rm -f "$Q/$t-$im.lpk"
  done
done
