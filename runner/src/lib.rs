//! Reference Llama 2 forward pass, tokenizer, sampler and accuracy metrics over .lpk files.
