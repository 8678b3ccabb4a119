//! Text generation and Llama 2 Chat's prompt format.

use crate::error::{Error, Result};
use crate::forward::Model;
use crate::sampler::Sampler;
use crate::state::State;
use crate::tokenizer::Tokenizer;

impl Model<'_> {
    /// Processes `prompt` (from position 0) and samples up to `max_new` tokens, calling
    /// `on_token` with each as soon as it is chosen; generation stops early when `on_token`
    /// returns `false` (e.g. at EOS). Returns the generated ids.
    ///
    /// Fails up front when the prompt plus `max_new` tokens do not fit the state's context.
    pub fn generate(
        &self,
        state: &mut State,
        prompt: &[u32],
        max_new: usize,
        sampler: &mut Sampler,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<Vec<u32>> {
        if prompt.is_empty() {
            return Err(Error::Invalid(
                "generation needs at least one prompt token".into(),
            ));
        }
        // The last sampled token is never fed back, hence the - 1.
        let need = prompt.len() + max_new.saturating_sub(1);
        if need > state.ctx {
            return Err(Error::Context {
                pos: 0,
                n: need,
                ctx: state.ctx,
            });
        }
        let mut out = Vec::with_capacity(max_new);
        let mut logits = self.prefill(state, prompt, 0)?;
        let mut pos = prompt.len();
        while out.len() < max_new {
            let next = sampler.sample(logits);
            out.push(next);
            if !on_token(next) || out.len() == max_new {
                break;
            }
            logits = self.forward(state, next, pos)?;
            pos += 1;
        }
        Ok(out)
    }
}

const B_INST: &str = "[INST]";
const E_INST: &str = "[/INST]";
const B_SYS: &str = "<<SYS>>\n";
const E_SYS: &str = "\n<</SYS>>\n\n";

/// Token ids of a Llama 2 Chat prompt, exactly as Meta's `chat_completion` builds them.
///
/// `dialog` alternates user and assistant messages and ends with a user message. Each
/// finished exchange is `<s>[INST] {user} [/INST] {answer} </s>`, the last one
/// `<s>[INST] {user} [/INST]`; the system prompt, if any, is folded into the first user
/// message as `<<SYS>>\n{system}\n<</SYS>>\n\n{user}`. BOS and EOS are ids, never text.
pub fn chat_prompt(tok: &Tokenizer, system: Option<&str>, dialog: &[&str]) -> Result<Vec<u32>> {
    if dialog.len().is_multiple_of(2) {
        return Err(Error::Invalid(
            "a chat dialog alternates user/assistant messages and ends with a user message".into(),
        ));
    }
    let (Some(bos), Some(eos)) = (tok.bos_id(), tok.eos_id()) else {
        return Err(Error::Tokenizer(
            "the chat format needs BOS and EOS ids".into(),
        ));
    };
    let mut msgs: Vec<String> = dialog.iter().map(|s| (*s).to_string()).collect();
    if let Some(sys) = system {
        msgs[0] = format!("{B_SYS}{sys}{E_SYS}{}", msgs[0]);
    }
    let mut ids = Vec::new();
    for pair in msgs.chunks(2) {
        ids.push(bos);
        let user = pair[0].trim();
        if let [_, answer] = pair {
            let text = format!("{B_INST} {user} {E_INST} {} ", answer.trim());
            ids.extend(tok.encode(&text, false)?);
            ids.push(eos);
        } else {
            ids.extend(tok.encode(&format!("{B_INST} {user} {E_INST}"), false)?);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llamapack_format::testing::tiny_tokenizer;

    #[test]
    fn chat_prompt_follows_meta_chat_completion() {
        let tok = Tokenizer::from_data(&tiny_tokenizer()).unwrap();
        let enc = |s: &str| tok.encode(s, false).unwrap();
        // As in Meta's code the system block is prepended first and the whole content stripped.
        let one = chat_prompt(&tok, Some("be brief"), &["hi "]).unwrap();
        let mut want = vec![1];
        want.extend(enc("[INST] <<SYS>>\nbe brief\n<</SYS>>\n\nhi [/INST]"));
        assert_eq!(one, want);
        let two = chat_prompt(&tok, None, &["a", "b", "c"]).unwrap();
        let mut want = vec![1];
        want.extend(enc("[INST] a [/INST] b "));
        want.extend([2, 1]);
        want.extend(enc("[INST] c [/INST]"));
        assert_eq!(two, want);
        assert!(chat_prompt(&tok, None, &["a", "b"]).is_err());
    }
}
