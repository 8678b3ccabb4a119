#!/usr/bin/env python3
"""Tokenize a text file the way llama.cpp does for a GGUF with a gpt2-BPE vocabulary whose
tokenizer.ggml.pre is "smollm" (SmolLM2), using the `tokenizers` library built from the GGUF's
own tokens and merges; prepends BOS iff tokenizer.ggml.add_bos_token is true (llama-perplexity's rule).
Writes a JSON array of ids (for `llamapack eval/logits --tokens`).

    PYTHONPATH=$LLAMA/gguf-py /work/venv/bin/python bench/tokenize_gguf.py MODEL.gguf TEXT OUT.json

The pre-tokenizer is llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM: digits split one by one
("\\p{N}"), then the GPT-2 regex (= tokenizers' ByteLevel(use_regex=True)).
"""
import json
import sys

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers


def main() -> None:
    model, text_path, out = sys.argv[1:4]
    r = gguf.GGUFReader(model)
    f = r.fields
    pre = f["tokenizer.ggml.pre"].contents() if "tokenizer.ggml.pre" in f else "default"
    assert f["tokenizer.ggml.model"].contents() == "gpt2", "gpt2 BPE vocab expected"
    assert pre == "smollm", f"pre-tokenizer {pre!r} not handled"
    tokens = f["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ", 1)) for m in f["tokenizer.ggml.merges"].contents()]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    text = open(text_path, encoding="utf-8").read()
    ids = tok.encode(text, add_special_tokens=False).ids
    add_bos = "tokenizer.ggml.add_bos_token" in f and bool(f["tokenizer.ggml.add_bos_token"].contents())
    if add_bos:
        ids = [int(f["tokenizer.ggml.bos_token_id"].contents())] + ids
    assert tok.decode(ids[1:] if add_bos else ids) == text, "round trip failed"
    json.dump(ids, open(out, "w"))
    print(f"{text_path}: {len(ids)} tokens (add_bos={add_bos}) -> {out}")


if __name__ == "__main__":
    main()
