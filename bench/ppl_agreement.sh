#!/usr/bin/env bash
# Issue 7 "Done when": GGUF export is something llama.cpp runs, and gives llama.cpp's perplexity.
#
#  A. The fixture (fixtures/tiny/meta) converted to f16 and quantized (q8_0, q4_0, q4_k_m) by
#     llamapack, exported to GGUF: llama-simple loads and generates (f16 only, see common.sh),
#     llama-perplexity --no-repack on fixtures/text/corpus.txt (ctx 128) runs, and its PPL agrees
#     with `llamapack eval --text corpus.txt --ctx 128`'s PPL within 1 % for each type.
#  B. SmolLM2-135M's Q4_1 GGUF, imported (`convert`, q4_1 → f16) and exported again: llama-perplexity
#     on the export vs on the original (GPL-3 text, ctx 512); plus the export of the all-f16 import
#     vs gguf-py's dequantization of the same file (identical weights → identical PPL expected).
#
#   bench/ppl_agreement.sh            # ~8 min on 2 busy cores; SKIP_SMOL=1: part A only (~4 min);
#                                   SKIP_FIXTURE=1: part B only (~4 min)
# Env: see bench/common.sh (WORK, THREADS, PEER_BIN, ...). Exit status 1 if a part-A type is off by ≥ 1 %.
set -euo pipefail
source "$(dirname "$0")/common.sh"
D="$WORK/ppl_agreement"; mkdir -p "$D"; cd "$D"
CORPUS="$ROOT/fixtures/text/corpus.txt"
status=0
part_a() {
echo "# A. fixture: llamapack eval vs llama-perplexity, corpus.txt, ctx 128, $THREADS threads"
lp convert "$ROOT/fixtures/tiny/meta" -o f16.lpk --dtype f16 >/dev/null
for t in q8_0 q4_0 q4_k_m; do lp quantize f16.lpk -o "$t.lpk" --type "$t" >/dev/null 2>&1; done
status=0
rows=()
for t in f16 q8_0 q4_0 q4_k_m; do
  lp export "$t.lpk" --format gguf -o "$t.gguf" >/dev/null
  simple="-"
  if [ "$t" = f16 ]; then
    if "$PEER_BIN/llama-simple" -m "$t.gguf" -n 16 "Alice was" >"simple-$t.out" 2>"simple-$t.err"; then
      simple="ok: $(tr '\n' ' ' <"simple-$t.out" | cut -c1-50)"
    else simple="FAILED rc=$?"; status=1; fi
  fi
  "$PEER_BIN/llama-perplexity" -m "$t.gguf" -f "$CORPUS" -c 128 -t "$THREADS" --no-repack >"perp-$t.out" 2>"perp-$t.err" \
    || { echo "llama-perplexity failed on $t.gguf (see $D/perp-$t.err)"; status=1; continue; }
  # PPL(Q) of the candidate (the reference only adds PPL(base) and KLD; f16 vs itself is exact)
  lp eval "$t.lpk" --reference f16.lpk --text "$CORPUS" --ctx 128 --threads "$THREADS" --json >"eval-$t.json"
  rows+=("$t $(final_ppl "perp-$t.err") $(n_chunks "perp-$t.err") $(python3 -c "import json;v=json.load(open('eval-$t.json'));print(v['ppl'],v['windows'],v['text_tokens'])")")
  [ "$t" = f16 ] && echo "llama-simple f16.gguf: $simple"
done
printf '%-8s %12s %12s %9s %9s %9s\n' type llama.cpp llamapack ratio chunks windows
for r in "${rows[@]}"; do
  set -- $r
  python3 - "$@" <<'PY' || status=1
import sys
t, theirs, ch, ours, win, ntok = sys.argv[1:]
ratio = float(ours) / float(theirs)
ok = abs(ratio - 1) < 0.01 and ch == win
print(f"{t:<8} {float(theirs):12.4f} {float(ours):12.4f} {ratio:9.5f} {ch:>9} {win:>9}  {'OK' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
done
}
[ -n "${SKIP_FIXTURE:-}" ] || part_a
[ -n "${SKIP_SMOL:-}" ] && exit $status

echo
echo "# B. SmolLM2-135M Q4_1: llama-perplexity, GPL-3, ctx 512, $THREADS threads"
S="$(smol_f16)"
[ -f smol-import.lpk ] || lp convert "$SMOL" -o smol-import.lpk --dtype f16 >/dev/null
lp export smol-import.lpk --format gguf -o smol-export.gguf >/dev/null
# the pure-f16 export holds exactly gguf-py's dequantized values?
gpy - "$S/smol-dq-f16.gguf" "$S/f16.gguf" <<'PY'
import sys, numpy as np, gguf
a, b = (gguf.GGUFReader(p) for p in sys.argv[1:3])
tb = {t.name: t for t in b.tensors}
same = sum(np.array_equal(np.asarray(t.data), np.asarray(tb[t.name].data)) for t in a.tensors)
print(f"tensors of bench f16.gguf (llamapack import→export) equal to gguf-py's dequantization: {same}/{len(a.tensors)}")
PY
printf '%-44s %10s %7s\n' model PPL chunks
for m in "$SMOL" smol-export.gguf "$S/smol-dq-f16.gguf" "$S/f16.gguf"; do
  "$PEER_BIN/llama-perplexity" -m "$m" -f /usr/share/common-licenses/GPL-3 -c 512 -t "$THREADS" --no-repack >/dev/null 2>"perp-smol.err"
  printf '%-44s %10s %7s\n' "$(basename "$m")" "$(final_ppl perp-smol.err)" "$(n_chunks perp-smol.err)"
done
exit $status
