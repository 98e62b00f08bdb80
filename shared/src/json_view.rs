//! Views of JSON bodies read in place, for hot paths that would otherwise build a
//! `serde_json::Value` only to read a few fields. A view must read exactly what the `Value` code
//! it stands in for reads, or fail so that the caller falls back to that code: so its structs
//! take JSON objects only (serde's derive would also take an array, field by field in order,
//! which a `Value` lookup never reads as those fields), refuse a duplicate key (a `Value` keeps the
//! last one), and its strings borrow from the body when they hold no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A JSON string, borrowed from the body when it has no escapes.
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A value a view does not read, checked as a `Value` parse would check it (numbers in range,
/// strings valid UTF-8 without lone surrogates, nesting within serde_json's depth limit) but not
/// kept: `IgnoredAny` skips without those checks, and a body the `Value` path refuses must not
/// pass through a view.
pub(crate) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_unit<E>(self) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_none<E>(self) -> Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
                while seq.next_element::<Skip>()?.is_some() {}
                Ok(Skip)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
                while map.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Skip)
            }
        }
        d.deserialize_any(V)
    }
}

/// `object_view!('a, [vis] Name { field: Type = "key", ... })` declares `Name<'a>` with every field an
/// `Option<Type>` (absent or `null`: `None`), read from a JSON object only, unknown keys skipped
/// (and checked, [`Skip`]), a duplicate key an error.
macro_rules! object_view {
    ($lt:lifetime, $vis:vis $name:ident { $($field:ident : $ty:ty = $key:literal),* $(,)? }) => {
        $vis struct $name<$lt> {
            $($field: Option<$ty>,)*
            _body: std::marker::PhantomData<&$lt ()>,
        }

        impl<'de: $lt, $lt> serde::Deserialize<'de> for $name<$lt> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V<$lt>(std::marker::PhantomData<&$lt ()>);
                impl<'de: $lt, $lt> serde::de::Visitor<'de> for V<$lt> {
                    type Value = $name<$lt>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("an object (", stringify!($name), ")"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Self::Value, A::Error> {
                        $(let mut $field: Option<Option<$ty>> = None;)*
                        while let Some(key) = map.next_key::<$crate::json_view::Text<'de>>()? {
                            match &*key.0 {
                                $($key => {
                                    if $field.is_some() {
                                        return Err(<A::Error as serde::de::Error>::duplicate_field($key));
                                    }
                                    $field = Some(map.next_value()?);
                                })*
                                _ => {
                                    map.next_value::<$crate::json_view::Skip>()?;
                                }
                            }
                        }
                        Ok($name {
                            $($field: $field.flatten(),)*
                            _body: std::marker::PhantomData,
                        })
                    }
                }
                d.deserialize_map(V(std::marker::PhantomData))
            }
        }
    };
}
pub(crate) use object_view;

/// A JSON value's bytes, written straight into a buffer ([`crate::json_write`]: what
/// `serde_json::to_vec` writes, strings escaped a word at a time). A `Value` always serializes
/// (string keys, finite numbers), so there is no error to return.
pub(crate) fn value_bytes(value: &serde_json::Value) -> Vec<u8> {
    crate::json_write::to_vec(value)
}
