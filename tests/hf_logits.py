"""Loads a Hugging Face Llama directory exported by `llamapack export --format safetensors` with
transformers, runs token ids through it in float32 and saves the logits.

Usage: python3 tests/hf_logits.py MODEL_DIR IDS.json OUT.npy
Used by tests/transformers.rs when torch and transformers are importable.
"""

import json
import sys

import numpy as np
import torch
from transformers import LlamaForCausalLM

model_dir, ids_path, out_path = sys.argv[1:4]
ids = json.load(open(ids_path))
model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
model.eval()
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0].float().numpy()
np.save(out_path, logits.astype(np.float32))
