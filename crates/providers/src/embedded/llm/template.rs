//! The chat template: the Jinja template a GGUF carries in `tokenizer.chat_template`, rendered
//! with minijinja the way Hugging Face's `apply_chat_template` renders it (`trim_blocks`,
//! `lstrip_blocks`, the variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, the
//! function `raise_exception`), plus the handful of Python string and dict methods real templates
//! call (`strip`, `startswith`, `split`, `items`, `get`, …), which minijinja leaves out.

use colloquy_model::PromptRole;
use minijinja::value::{Value, ValueKind, from_args};
use minijinja::{Environment, Error, ErrorKind, State};
use serde::Serialize;

use crate::llm::ChatMessage;

/// ChatML, for a GGUF that carries no template of its own.
pub(super) const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + \
     message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' \
     }}{% endif %}";

/// A compiled chat template with the special tokens it may refer to.
pub(super) struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

fn role_name(role: PromptRole) -> &'static str {
    match role {
        PromptRole::System => "system",
        PromptRole::User => "user",
        PromptRole::Assistant => "assistant",
    }
}

impl ChatTemplate {
    /// Compiles `source`; fails on a syntax error.
    pub(super) fn new(source: String, bos_token: String, eos_token: String) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function("raise_exception", |message: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        });
        env.set_unknown_method_callback(python_method);
        env.add_template_owned("chat", source)?;
        Ok(ChatTemplate { env, bos_token, eos_token })
    }

    /// The prompt for `messages`; with `add_generation_prompt`, ending where the assistant's answer
    /// begins.
    pub(super) fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, Error> {
        let messages: Vec<Message> =
            messages.iter().map(|m| Message { role: role_name(m.role), content: &m.content }).collect();
        self.env.get_template("chat")?.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
    }
}

/// The Python methods chat templates call on strings and dicts (Jinja runs in Python, minijinja
/// does not).
fn python_method(state: &State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        return string_method(s, method, args);
    }
    if value.kind() == ValueKind::Map {
        match method {
            "items" => return state.apply_filter("items", std::slice::from_ref(value)),
            "keys" => {
                let () = from_args(args)?;
                return Ok(Value::from(value.try_iter()?.collect::<Vec<_>>()));
            }
            "values" => {
                let () = from_args(args)?;
                let values: Result<Vec<_>, _> = value.try_iter()?.map(|key| value.get_item(&key)).collect();
                return Ok(Value::from(values?));
            }
            "get" => {
                let (key, default): (Value, Option<Value>) = from_args(args)?;
                let found = value.get_item(&key)?;
                return Ok(if found.is_undefined() { default.unwrap_or(Value::from(())) } else { found });
            }
            _ => {}
        }
    }
    Err(Error::from(ErrorKind::UnknownMethod))
}

fn string_method(s: &str, method: &str, args: &[Value]) -> Result<Value, Error> {
    let strip_set = |chars: Option<&str>| -> Box<dyn Fn(char) -> bool> {
        match chars {
            Some(chars) => {
                let chars = chars.to_owned();
                Box::new(move |c| chars.contains(c))
            }
            None => Box::new(char::is_whitespace),
        }
    };
    Ok(match method {
        "strip" => {
            let (chars,): (Option<&str>,) = from_args(args)?;
            Value::from(s.trim_matches(&*strip_set(chars)))
        }
        "lstrip" => {
            let (chars,): (Option<&str>,) = from_args(args)?;
            Value::from(s.trim_start_matches(&*strip_set(chars)))
        }
        "rstrip" => {
            let (chars,): (Option<&str>,) = from_args(args)?;
            Value::from(s.trim_end_matches(&*strip_set(chars)))
        }
        "startswith" | "endswith" => {
            let (affixes,): (Value,) = from_args(args)?;
            let test = |affix: &str| if method == "startswith" { s.starts_with(affix) } else { s.ends_with(affix) };
            let hit = match affixes.as_str() {
                Some(affix) => test(affix),
                None => affixes.try_iter()?.any(|a| a.as_str().is_some_and(test)),
            };
            Value::from(hit)
        }
        "lower" => Value::from(s.to_lowercase()),
        "upper" => Value::from(s.to_uppercase()),
        "title" => {
            let mut out = String::with_capacity(s.len());
            let mut start = true;
            for c in s.chars() {
                if start {
                    out.extend(c.to_uppercase())
                } else {
                    out.extend(c.to_lowercase())
                }
                start = !c.is_alphanumeric();
            }
            Value::from(out)
        }
        "capitalize" => {
            let mut chars = s.chars();
            let out = match chars.next() {
                Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
                None => String::new(),
            };
            Value::from(out)
        }
        "replace" => {
            let (from, to, count): (&str, &str, Option<i64>) = from_args(args)?;
            match count.and_then(|n| usize::try_from(n).ok()) {
                Some(n) => Value::from(s.replacen(from, to, n)),
                None => Value::from(s.replace(from, to)),
            }
        }
        "split" => {
            let (sep, maxsplit): (Option<&str>, Option<i64>) = from_args(args)?;
            let limit = maxsplit.and_then(|n| usize::try_from(n).ok()).map(|n| n + 1).unwrap_or(usize::MAX);
            let parts: Vec<Value> = match sep {
                Some(sep) if !sep.is_empty() => s.splitn(limit, sep).map(Value::from).collect(),
                Some(_) => return Err(Error::new(ErrorKind::InvalidOperation, "empty separator")),
                None => s.split_whitespace().map(Value::from).collect(),
            };
            Value::from(parts)
        }
        "join" => {
            let (items,): (Value,) = from_args(args)?;
            let items: Vec<String> = items.try_iter()?.map(|v| v.to_string()).collect();
            Value::from(items.join(s))
        }
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: PromptRole, content: &str) -> ChatMessage {
        ChatMessage { role, content: content.into() }
    }

    fn history() -> Vec<ChatMessage> {
        vec![
            message(PromptRole::System, "Be brief."),
            message(PromptRole::User, "Hi"),
            message(PromptRole::Assistant, "Hello!"),
            message(PromptRole::User, "Bye"),
        ]
    }

    /// SmolLM2-135M-Instruct's own template, as its GGUF carries it.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ \
         '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% \
         endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% \
         if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn a_tiny_template_sees_roles_contents_and_the_special_tokens() {
        let source = "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m['content'] }}]{% endfor %}\
                      {% if add_generation_prompt %}[assistant:{% endif %}{{ eos_token }}";
        let template = ChatTemplate::new(source.into(), "<s>".into(), "</s>".into()).unwrap();
        assert_eq!(
            template.render(&history(), true).unwrap(),
            "<s>[system:Be brief.][user:Hi][assistant:Hello!][user:Bye][assistant:</s>"
        );
        assert_eq!(template.render(&history()[..1], false).unwrap(), "<s>[system:Be brief.]</s>");
    }

    #[test]
    fn smollm2_renders_chatml() {
        let template = ChatTemplate::new(SMOLLM2.into(), "<|im_start|>".into(), "<|im_end|>".into()).unwrap();
        assert_eq!(
            template.render(&history(), true).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
        );
        // Without a system message the template supplies its own.
        let rendered = template.render(&history()[1..2], true).unwrap();
        assert!(rendered.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"), "{rendered}");
        assert!(rendered.ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"), "{rendered}");
    }

    #[test]
    fn the_chatml_fallback_matches_smollm2_when_a_system_message_is_given() {
        let chatml = ChatTemplate::new(CHATML.into(), String::new(), String::new()).unwrap();
        let smollm2 = ChatTemplate::new(SMOLLM2.into(), String::new(), String::new()).unwrap();
        assert_eq!(chatml.render(&history(), true).unwrap(), smollm2.render(&history(), true).unwrap());
        assert!(!chatml.render(&history(), false).unwrap().ends_with("assistant\n"));
    }

    #[test]
    fn python_methods_and_block_trimming_work_as_in_jinja() {
        let source = "{%- for m in messages %}\n  {%- if m.role == 'system' %}\n{{ m.content.strip().upper() }}|\
                      {% elif m.content.startswith(('H', 'X')) %}{{ m.content.replace('i', 'ey') }}|\
                      {% else %}{{ m.content.split('y') | join(',') }}|{{ {'a': 1}.get('b', 'none') }}\
                      {% for k, v in {'k': 2}.items() %}{{ k }}{{ v }}{% endfor %}\
                      {% endif %}{% endfor %}";
        let template = ChatTemplate::new(source.into(), String::new(), String::new()).unwrap();
        let mut messages = history();
        messages[0].content = "  be brief \n".into();
        assert_eq!(template.render(&messages, false).unwrap(), "BE BRIEF|Hey|Hello!|B,e|nonek2");
    }

    #[test]
    fn raise_exception_fails_the_render() {
        let source = "{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}";
        let template = ChatTemplate::new(source.into(), String::new(), String::new()).unwrap();
        let error = template.render(&history(), true).unwrap_err();
        assert!(error.to_string().contains("user first"), "{error}");
    }
}
