#!/usr/bin/env bash
# Issue 6 "Done when": accuracy of our quantizations vs llama.cpp's own, same f16 weights, same text.
#
# SmolLM2-135M all-f16 (gguf-py's dequantization of the Q4_1 file), GPL-3 text, ctx 512
# (14 windows, second halves scored = 3584 tokens). Ids: bench/tokenize_gguf.py (the GGUF's own
# BPE, llama.cpp's smollm pre-tokenizer, no BOS since add_bos_token=false) — checked by comparing
# PPL(f16) and the window count with llama-perplexity's.
#   ours:   llamapack quantize f16.lpk --type T;  llamapack eval T.lpk --reference f16.lpk --tokens ids
#   theirs: llama-quantize f16.gguf T;  llama-perplexity --kl-divergence-base (f16) / --kl-divergence
#   cross:  llama-perplexity --kl-divergence on OUR quantization exported to GGUF (llama.cpp judging
#           our bytes with its own kernels) — an independent check of `llamapack eval`.
# SmolLM2's rows (576) are not multiples of 256: k-quant recipes fall back (types printed).
#
#   bench/eval_vs_llamacpp.sh          # ~15 min on 2 busy cores; env TYPES, THREADS, WORK
set -euo pipefail
source "$(dirname "$0")/common.sh"
TYPES="${TYPES:-q8_0 q4_0 q4_k_m}"
TEXT=/usr/share/common-licenses/GPL-3
S="$(smol_f16)"; cd "$S"
E="$WORK/eval"; mkdir -p "$E"
gpy "$ROOT/bench/tokenize_gguf.py" f16.gguf "$TEXT" "$E/ids.json" >&2
perp() { "$PEER_BIN/llama-perplexity" -f "$TEXT" -c 512 -t "$THREADS" --no-repack "$@"; }
[ -f "$E/base.kld" ] || perp -m f16.gguf --kl-divergence-base "$E/base.kld" >"$E/f16.out" 2>"$E/f16.err"
for t in $TYPES; do
  up="$(echo "$t" | tr a-z A-Z)"
  [ -f "$t.lpk" ] || lp quantize f16.lpk -o "$t.lpk" --type "$t" --threads "$THREADS" >/dev/null 2>&1
  [ -f "$t.gguf" ] || lp export "$t.lpk" --format gguf -o "$t.gguf" >/dev/null
  [ -f "lq-$t.gguf" ] || "$PEER_BIN/llama-quantize" f16.gguf "lq-$t.gguf" "$up" "$THREADS" >"$E/lq-$t.log" 2>&1
  # results are reused on a rerun (FRESH=1 recomputes)
  [ -s "$E/ours-$t.json" ] && [ -z "${FRESH:-}" ] || lp eval "$t.lpk" --reference f16.lpk --tokens "$E/ids.json" --ctx 512 --threads "$THREADS" --json >"$E/ours-$t.json"
  grep -q "Same top p" "$E/theirs-$t.out" 2>/dev/null && [ -z "${FRESH:-}" ] || perp -m "lq-$t.gguf" --kl-divergence-base "$E/base.kld" --kl-divergence >"$E/theirs-$t.out" 2>&1
  grep -q "Same top p" "$E/cross-$t.out" 2>/dev/null && [ -z "${FRESH:-}" ] || perp -m "$t.gguf" --kl-divergence-base "$E/base.kld" --kl-divergence >"$E/cross-$t.out" 2>&1
  lp inspect "$t.lpk" --json >"$E/ours-$t.inspect.json"
done
python3 - "$E" "$TYPES" "$S" "$(final_ppl "$E/f16.err")" "$(n_chunks "$E/f16.err")" <<'PY'
import json, re, sys, collections
E, types, S, base_ppl, base_chunks = sys.argv[1], sys.argv[2].split(), sys.argv[3], float(sys.argv[4]), sys.argv[5]
import os
mib = lambda p: os.path.getsize(p) / 2**20
def llama(path):
    s = open(path, errors="replace").read()
    g = lambda pat: float(re.search(pat, s).group(1))
    return dict(ppl=g(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)"), ppl_base=g(r"Mean PPL\(base\)\s*:\s*([0-9.]+)"),
                ppl_ratio=g(r"Mean PPL\(Q\)/PPL\(base\)\s*:\s*([0-9.]+)"), kld_mean=g(r"Mean\s+KLD:\s*([0-9.]+)"),
                kld_p99=g(r"99\.0%\s+KLD:\s*([0-9.]+)"), kld_median=g(r"Median\s+KLD:\s*([0-9.]+)"),
                kld_max=g(r"Maximum KLD:\s*([0-9.]+)"), rms_dp=g(r"RMS Δp\s*:\s*([0-9.]+)") / 100,
                top1=g(r"Same top p:\s*([0-9.]+)") / 100)
def types_of_llama_quantize(path):
    c = collections.Counter(re.findall(r"converting to (\w+)", open(path, errors="replace").read()))
    return ", ".join(f"{k} {v}" for k, v in c.most_common())
print(f"SmolLM2-135M f16 = base, GPL-3, ctx 512. llama-perplexity PPL(f16) = {base_chunks} chunks, {base_ppl:.4f}")
hdr = f"{'type':<7} {'who':<22} {'PPL(Q)':>8} {'PPL(base)':>9} {'PPL ratio':>9} {'mean KLD':>9} {'median':>9} {'p99 KLD':>8} {'max KLD':>8} {'RMS Δp':>7} {'top-1':>7}"
print(hdr)
for t in types:
    o = json.load(open(f"{E}/ours-{t}.json"))
    ours = dict(ppl=o["ppl"], ppl_base=o["ppl_base"], ppl_ratio=o["ppl_ratio"], kld_mean=o["kld_mean"],
                kld_median=o["kld_median"], kld_p99=o["kld_p99"], kld_max=o["kld_max"], rms_dp=o["rms_dp"],
                top1=o["top1_agreement"])
    th, cr = llama(f"{E}/theirs-{t}.out"), llama(f"{E}/cross-{t}.out")
    for who, r in (("llamapack (our eval)", ours), ("ours judged by llama.cpp", cr), ("llama.cpp's own quant", th)):
        print(f"{t:<7} {who:<22} {r['ppl']:8.4f} {r['ppl_base']:9.4f} {r['ppl_ratio']:9.5f} {r['kld_mean']:9.6f} {r['kld_median']:9.6f} {r['kld_p99']:8.5f} {r['kld_max']:8.4f} {r['rms_dp']:7.4f} {r['top1']:7.2%}")
    mix = collections.Counter(x["dtype"] for x in json.load(open(f"{E}/ours-{t}.inspect.json"))["tensors"])
    print(f"{'':7} ratio ours/theirs: mean KLD {cr['kld_mean']/th['kld_mean']:.3f} (llama.cpp-judged), {ours['kld_mean']/th['kld_mean']:.3f} (our eval); "
          f"goal ≤ 1: {'met' if cr['kld_mean'] <= th['kld_mean'] else 'NOT met'}")
    print(f"{'':7} GGUF size: ours {mib(f'{S}/{t}.gguf'):.1f} MiB, llama.cpp's {mib(f'{S}/lq-{t}.gguf'):.1f} MiB (f16 {mib(f'{S}/f16.gguf'):.1f} MiB)")
    print(f"{'':7} tensor types — ours: {', '.join(f'{k} {v}' for k, v in mix.most_common())}; llama.cpp: {types_of_llama_quantize(f'{E}/lq-{t}.log')} (+ unconverted f32)")
PY
