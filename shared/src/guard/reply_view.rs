//! A `chat.completion` reply read in place for the response guard: its usage and the texts
//! [`super::openai::redact_chat_response`] scans. Building a `serde_json::Value` of the reply
//! only to find that nothing needs redacting was most of a guarded pass-through reply's cost
//! (~30,000 of ~35,000 instructions for a short reply, callgrind). Any shape this view does not
//! take (a field of an unexpected type, an array for an object, a duplicate key) fails, and the
//! caller takes the `Value` path, so the two never disagree about which texts there are.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use crate::audit::{OpenAiUsage, Usage};
use crate::json_view::{object_view, Text};

/// The usage and the scanned texts of a reply, in no particular order.
pub(super) struct ReplyTexts<'a> {
    pub usage: Option<Usage>,
    pub texts: Vec<Cow<'a, str>>,
}

/// Reads `body` as a `chat.completion` object; `None` when it is not one this view takes.
pub(super) fn read(body: &[u8]) -> Option<ReplyTexts<'_>> {
    let reply: Reply<'_> = serde_json::from_slice(body).ok()?;
    let mut texts = Vec::new();
    let messages = reply.choices.unwrap_or_default().into_iter();
    for message in messages.filter_map(|c| c.message) {
        match message.content {
            Some(Content::Text(t)) => texts.push(t.0),
            Some(Content::Parts(parts)) => {
                for part in parts {
                    match part.kind.as_ref().map(|k| &*k.0) {
                        Some("text") => texts.extend(part.text.map(|t| t.0)),
                        Some("refusal") => texts.extend(part.refusal.map(|t| t.0)),
                        _ => {}
                    }
                }
            }
            None => {}
        }
        let calls = message.tool_calls.unwrap_or_default().into_iter();
        texts.extend(calls.filter_map(|c| c.function?.arguments).map(|t| t.0));
        texts.extend(message.function_call.and_then(|f| f.arguments).map(|t| t.0));
    }
    let usage = reply.usage.and_then(OpenAiUsage::usage);
    Some(ReplyTexts { usage, texts })
}

object_view!('a, Reply {
    choices: Vec<Choice<'a>> = "choices",
    usage: OpenAiUsage<'a> = "usage",
});
object_view!('a, Choice { message: Message<'a> = "message" });
object_view!('a, Message {
    content: Content<'a> = "content",
    tool_calls: Vec<ToolCall<'a>> = "tool_calls",
    function_call: Arguments<'a> = "function_call",
});
object_view!('a, ToolCall { function: Arguments<'a> = "function" });
object_view!('a, Arguments { arguments: Text<'a> = "arguments" });
object_view!('a, Part {
    kind: Text<'a> = "type",
    text: Text<'a> = "text",
    refusal: Text<'a> = "refusal",
});

/// A message's `content`: a string or an array of parts (anything else fails here).
enum Content<'a> {
    Text(Text<'a>),
    Parts(Vec<Part<'a>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Text(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Text(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Text(Cow::Owned(s))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::new();
                while let Some(p) = seq.next_element()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}
