//! Importers (Meta .pth, HF safetensors, GGUF) and exporters (GGUF, safetensors) for llamapack.
