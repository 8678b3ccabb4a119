#!/usr/bin/env bash
# `llamapack imatrix` vs `llama-imatrix`: the same f16 weights (SmolLM2-135M, common.sh smol_f16),
# the same text and token ids, ctx 512, CHUNKS chunks, the same threads.
#   1. per tensor, the max relative difference of the mean squared activation E[x²] = sums/counts
#      (bench/imatrix_compare.py, gguf-py), layouts and counts compared;
#   2. llama-quantize --imatrix accepts OUR file (Q4_K_M), and how many tensors come out
#      byte-identical to llama-quantize with THEIR file;
#   3. our reader accepts THEIR file: `inspect`, and `imatrix --in-file theirs` writes it back
#      byte for byte;
#   4. speed: tokens/s of each (ours from --json; theirs = chunks·ctx / wall time of the run, and
#      from its "seconds per pass" line), and both perplexities (second halves of the chunks);
#   5. with PPL=1: llama-perplexity --kl-divergence of Q4_K_M made with our file, theirs and none.
# Ids: bench/tokenize_gguf.py (llama.cpp-identical for SmolLM2; no BOS: add_bos_token=false).
#
#   bench/imatrix_vs_llamacpp.sh        # ~3 min on 2 busy cores (PPL=1: ~6 more); env CHUNKS (8), THREADS (2), WORK
set -euo pipefail
source "$(dirname "$0")/common.sh"
CHUNKS="${CHUNKS:-8}"
TEXT="${TEXT:-/usr/share/common-licenses/GPL-3}"
S="$(smol_f16)"
O="$WORK/imatrix"; mkdir -p "$O"; cd "$O"
gpy "$ROOT/bench/tokenize_gguf.py" "$S/f16.gguf" "$TEXT" ids.json >&2

a=$(date +%s.%N)
"$PEER_BIN/llama-imatrix" -m "$S/f16.gguf" -f "$TEXT" -c 512 --chunks "$CHUNKS" -t "$THREADS" \
  --no-repack -o theirs.gguf >theirs.log 2>&1 || { tail -20 theirs.log; exit 1; }
b=$(date +%s.%N)
lp imatrix "$S/f16.lpk" --tokens ids.json --ctx 512 --chunks "$CHUNKS" -t "$THREADS" -o ours.gguf --json >ours.json
c=$(date +%s.%N)
# Our own tokenizer on the text, for the record (the ids above are llama.cpp's).
lp imatrix "$S/f16.lpk" --text "$TEXT" --ctx 512 --chunks "$CHUNKS" -t "$THREADS" -o ours-text.gguf --json >ours-text.json

echo "## E[x²] per tensor: ours (--tokens, llama.cpp's ids) vs llama-imatrix"
gpy "$ROOT/bench/imatrix_compare.py" ours.gguf theirs.gguf --json compare.json | tail -4
echo "## ours with our own tokenization of the text vs llama-imatrix"
gpy "$ROOT/bench/imatrix_compare.py" ours-text.gguf theirs.gguf | tail -2

echo "## llama-quantize --imatrix (Q4_K_M), our file and theirs"
q() { "$PEER_BIN/llama-quantize" --imatrix "$1" "$S/f16.gguf" "$2" Q4_K_M "$THREADS" >"$3" 2>&1 || { tail -5 "$3"; exit 1; }; }
q ours.gguf q4km-ours.gguf quantize-ours.log
q theirs.gguf q4km-theirs.gguf quantize-theirs.log
grep -h "loaded .* importance matrix entries" quantize-ours.log quantize-theirs.log
echo "Q4_K_M with our imatrix vs with theirs: $(gpy "$ROOT/bench/gguf_same.py" q4km-ours.gguf q4km-theirs.gguf)"

echo "## our reader on their file"
lp inspect theirs.gguf | head -3
lp imatrix "$S/f16.lpk" --in-file theirs.gguf --ctx 512 -o theirs-rewritten.gguf >/dev/null
cmp theirs.gguf theirs-rewritten.gguf && echo "read + written back by llamapack: byte-identical to llama-imatrix's file"

echo "## speed ($THREADS threads, $CHUNKS chunks of 512)"
python3 - "$a" "$b" "$c" "$CHUNKS" <<'PY'
import json, re, sys
a, b, c, chunks = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
log = open("theirs.log", errors="replace").read()
ppl = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
# "23.94 seconds per pass" (the first pass: n_seq chunks in one batch of n_seq·ctx tokens)
pp = re.search(r"([0-9.]+) seconds per pass", log)
nseq = re.search(r"n_seq=(\d+)", log)
o = json.load(open("ours.json"))["collected"]
ot = json.load(open("ours-text.json"))["collected"]
n = chunks * 512
print(f"llama-imatrix : wall {b-a:6.2f} s = {n/(b-a):7.1f} tok/s (whole run, load included)" +
      (f"; first pass {float(pp.group(1)):.2f} s for {nseq.group(1)} chunks = {int(nseq.group(1))*512/float(pp.group(1)):.1f} tok/s" if pp and nseq else "") +
      (f"; PPL {ppl.group(1)} ± {ppl.group(2)}" if ppl else ""))
print(f"llamapack     : wall {c-b:6.2f} s = {n/(c-b):7.1f} tok/s (whole run); collection loop {o['tokens_per_second']:.1f} tok/s; "
      f"PPL {o['ppl']:.4f} ± {o['ppl_uncertainty']:.5f} (with our tokenizer: {ot['ppl']:.4f})")
PY

if [ -n "${PPL:-}" ]; then
  # The calibration text itself: this compares the two imatrix files, it is not a held-out score.
  echo "## llama-perplexity --kl-divergence vs f16, ctx 512, $TEXT: Q4_K_M with our imatrix, theirs, none"
  perp() { "$PEER_BIN/llama-perplexity" -f "$TEXT" -c 512 -t "$THREADS" --no-repack "$@"; }
  perp -m "$S/f16.gguf" --kl-divergence-base base.kld >kld-base.log 2>&1
  [ -f q4km-none.gguf ] || "$PEER_BIN/llama-quantize" "$S/f16.gguf" q4km-none.gguf Q4_K_M "$THREADS" >quantize-none.log 2>&1
  for m in ours theirs none; do
    perp -m "q4km-$m.gguf" --kl-divergence-base base.kld --kl-divergence >"kld-$m.log" 2>&1
    printf '%-7s PPL(Q) %s  mean KLD %s  same top p %s\n' "$m" \
      "$(grep -o 'Mean PPL(Q) *: *[0-9.]*' "kld-$m.log" | awk '{print $NF}')" \
      "$(grep -o 'Mean    KLD: *[0-9.]* ± *[0-9.]*' "kld-$m.log" | sed 's/Mean    KLD: *//')" \
      "$(grep -o 'Same top p: *[0-9.]* ± *[0-9.]* %' "kld-$m.log" | sed 's/Same top p: *//')"
  done
fi
