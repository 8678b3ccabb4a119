#!/usr/bin/env bash
# Issue 5 "Speed": `llamapack bench` vs llama.cpp's `llama-bench` on the SAME weights.
#
# SmolLM2-135M, all-f16 (gguf-py's dequantization of the Q4_1 file, imported), quantized by
# llamapack to q8_0, q4_0, q4_k_m, each exported to GGUF — llama.cpp reads byte-identical tensors.
# (SmolLM2's rows are 576 wide, not a multiple of 256, so llamapack's q4_k_m falls back to q8_0 on
# most tensors: the dtype mix is printed.) Same thread count, pp$P (prompt batch) and tg$N
# (generation) tokens/s, runs interleaved ours/theirs/ours/theirs…, median over ROUNDS rounds
# (each round = one `llamapack bench --reps 3` and one `llama-bench -r 3`, their own medians/means).
# llama-bench runs with --repack 0 (AMX repack segfaults on this CPU).
#
#   bench/speed_vs_llamacpp.sh            # ~5 min; env: ROUNDS (3), P (64), N (32), TYPES, THREADS (2)
#   TYPES="pure-q4_1 pure-q5_0 pure-q5_k pure-iq4_xs q3_k_m" bench/speed_vs_llamacpp.sh
#     a `pure-T` entry quantizes every 2-D weight to T (`quantize --pure`): one kernel per row
#   REPACK=1: llama-bench with its weight repacking (its best configuration where it does not
#     crash; on the AMX Xeon it segfaults on quantized models, so the default here is 0)
#   DIR=/path/to/folder bench/speed_vs_llamacpp.sh   # any other model: DIR holds its f16.lpk
#     (e.g. the Llama-2-7B-shaped synthetic checkpoint of convert/bench, converted with
#     `llamapack convert --dtype f16`: real 7B matrix shapes, 2 layers)
set -euo pipefail
source "$(dirname "$0")/common.sh"
ROUNDS="${ROUNDS:-3}"; P="${P:-64}"; N="${N:-32}"; TYPES="${TYPES:-f16 q8_0 q4_0 q4_k_m}"
S="${DIR:-$(smol_f16)}"; cd "$S"
[ -f f16.gguf ] || lp export f16.lpk --format gguf -o f16.gguf >/dev/null
for t in $TYPES; do
  [ "$t" = f16 ] && continue
  case "$t" in pure-*) q=(--type "${t#pure-}" --pure) ;; *) q=(--type "$t") ;; esac
  [ -f "$t.lpk" ] || lp quantize f16.lpk -o "$t.lpk" "${q[@]}" --threads "$THREADS" >/dev/null 2>&1
  [ -f "$t.gguf" ] || lp export "$t.lpk" --format gguf -o "$t.gguf" >/dev/null
done
R="$WORK/speed"; mkdir -p "$R"; RAW="$(mktemp "$R/raw.XXXXXX")"  # per run: concurrent runs must not mix
for round in $(seq "$ROUNDS"); do
  for t in $TYPES; do
    o="$(lp bench "$t.lpk" -p "$P" -n "$N" --threads "$THREADS" --reps 3 --json)"
    echo "{\"round\":$round,\"type\":\"$t\",\"tool\":\"llamapack\",\"r\":$o}" >>"$RAW"
    th="$("$PEER_BIN/llama-bench" -m "$t.gguf" -p "$P" -n "$N" -t "$THREADS" -r 3 --repack "${REPACK:-0}" -o json 2>/dev/null)"
    echo "{\"round\":$round,\"type\":\"$t\",\"tool\":\"llama.cpp\",\"r\":$(echo "$th" | tr -d '\n')}" >>"$RAW"
  done
done
python3 - "$RAW" "$P" "$N" "$THREADS" "${DIR:-SmolLM2-135M}" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
P, N, T = sys.argv[2], sys.argv[3], sys.argv[4]
types = list(dict.fromkeys(r["type"] for r in rows))
print(f"{sys.argv[5]}, {T} threads, pp{P} / tg{N} tok/s, median of {max(r['round'] for r in rows)} interleaved rounds")
print(f"{'type':<8} {'ours pp':>9} {'llama pp':>9} {'pp ratio':>9} {'ours tg':>9} {'llama tg':>9} {'tg ratio':>9}  goal(pp≥1.0,tg≥1.2)  our dtype mix")
for t in types:
    ours = [r["r"] for r in rows if r["type"] == t and r["tool"] == "llamapack"]
    theirs = [r["r"] for r in rows if r["type"] == t and r["tool"] == "llama.cpp"]
    opp = st.median(o["pp_tok_s"] for o in ours); otg = st.median(o["tg_tok_s"] for o in ours)
    tpp = st.median(x["avg_ts"] for th in theirs for x in th if x["n_prompt"] > 0)
    ttg = st.median(x["avg_ts"] for th in theirs for x in th if x["n_gen"] > 0)
    # per-round ratios (same round = closest in time), then their median
    rpp = st.median(o["pp_tok_s"] / [x["avg_ts"] for x in th if x["n_prompt"] > 0][0] for o, th in zip(ours, theirs))
    rtg = st.median(o["tg_tok_s"] / [x["avg_ts"] for x in th if x["n_gen"] > 0][0] for o, th in zip(ours, theirs))
    mix = ours[0].get("dtype_mix")
    mix = ", ".join(f"{k} {v:.0%}" if isinstance(v, float) else f"{k} {v}" for k, v in mix.items()) if isinstance(mix, dict) else mix
    goal = ("pp ok" if rpp >= 1.0 else "pp NO") + " " + ("tg ok" if rtg >= 1.2 else "tg NO")
    print(f"{t:<8} {opp:9.1f} {tpp:9.1f} {rpp:9.3f} {otg:9.1f} {ttg:9.1f} {rtg:9.3f}  {goal:<19}  {mix}")
PY
