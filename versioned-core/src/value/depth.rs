//! [`MAX_JSON_DEPTH`], enforced: on JSON text by a scan that counts brackets (no recursion), on
//! serialization by a [`Serializer`](serde::Serializer) around serde_json's that counts the
//! arrays and objects it opens and refuses the one past the limit without serializing into it.

use serde::ser::{self, Error as _, Serialize, Serializer};

use super::MAX_JSON_DEPTH;

/// serde_json's names for the structs it writes as they are rather than as objects: a
/// `RawValue` (JSON text, embedded) and, with `arbitrary_precision`, a number.
const RAW_VALUE: &str = "$serde_json::private::RawValue";
const NUMBER: &str = "$serde_json::private::Number";

fn too_deep() -> String {
    format!("the JSON document nests deeper than {MAX_JSON_DEPTH} arrays and objects (MAX_JSON_DEPTH)")
}

/// Whether JSON `text` opens more than `limit` arrays and objects inside one another. Brackets
/// inside strings do not count; malformed text is left to the parser.
pub(super) fn deeper_than(text: &[u8], limit: usize) -> bool {
    if text.len() <= limit {
        return false; // too short to open `limit + 1` brackets
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A stored document, refused if deeper than the limit.
pub(super) fn check(text: &[u8]) -> Result<(), String> {
    if deeper_than(text, MAX_JSON_DEPTH) { Err(too_deep()) } else { Ok(()) }
}

/// `value`, serialized inside `depth` arrays and objects; `raw` for the text of a `RawValue`.
pub(super) struct Capped<'a, T: ?Sized> {
    value: &'a T,
    depth: usize,
    raw: bool,
}

impl<'a, T: ?Sized> Capped<'a, T> {
    /// A field's value, at the top of its document.
    pub(super) fn new(value: &'a T) -> Self {
        Capped { value, depth: 0, raw: false }
    }
}

impl<T: Serialize + ?Sized> Serialize for Capped<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Depth { inner: serializer, depth: self.depth, raw: self.raw })
    }
}

/// A serializer that forwards to `inner`, `depth` arrays and objects deep.
struct Depth<S> {
    inner: S,
    depth: usize,
    raw: bool,
}

impl<S: Serializer> Depth<S> {
    /// The depth inside `levels` more arrays and objects; past the limit, the error, before
    /// anything of them is serialized.
    fn enter(&self, levels: usize) -> Result<usize, S::Error> {
        let depth = self.depth + levels;
        if depth > MAX_JSON_DEPTH { Err(S::Error::custom(too_deep())) } else { Ok(depth) }
    }
}

/// One of `inner`'s arrays or objects, its members serialized `depth` deep.
struct Compound<C> {
    inner: C,
    depth: usize,
    raw: bool,
}

impl<C> Compound<C> {
    fn member<'a, T: ?Sized>(&self, value: &'a T) -> Capped<'a, T> {
        Capped { value, depth: self.depth, raw: self.raw }
    }
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.inner.$method($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for Depth<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        // The text of a `RawValue` is written as it is: its own brackets count.
        if self.raw && deeper_than(v.as_bytes(), MAX_JSON_DEPTH - self.depth) {
            return Err(S::Error::custom(too_deep()));
        }
        self.inner.serialize_str(v)
    }

    /// serde_json writes bytes as an array of numbers.
    fn serialize_bytes(self, v: &[u8]) -> Result<S::Ok, S::Error> {
        self.enter(1)?;
        self.inner.serialize_bytes(v)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_some(&Capped { value, depth: self.depth, raw: false })
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_newtype_struct(name, &Capped { value, depth: self.depth, raw: false })
    }

    /// `{"variant": value}`.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let depth = self.enter(1)?;
        self.inner.serialize_newtype_variant(name, index, variant, &Capped { value, depth, raw: false })
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let depth = self.enter(1)?;
        Ok(Compound { inner: self.inner.serialize_seq(len)?, depth, raw: false })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let depth = self.enter(1)?;
        Ok(Compound { inner: self.inner.serialize_tuple(len)?, depth, raw: false })
    }

    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
        let depth = self.enter(1)?;
        Ok(Compound { inner: self.inner.serialize_tuple_struct(name, len)?, depth, raw: false })
    }

    /// `{"variant": [fields]}`.
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let depth = self.enter(2)?;
        Ok(Compound { inner: self.inner.serialize_tuple_variant(name, index, variant, len)?, depth, raw: false })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let depth = self.enter(1)?;
        Ok(Compound { inner: self.inner.serialize_map(len)?, depth, raw: false })
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        // serde_json writes these two as what they hold, not as objects.
        let (depth, raw) = match name {
            RAW_VALUE => (self.depth, true),
            NUMBER => (self.depth, false),
            _ => (self.enter(1)?, false),
        };
        Ok(Compound { inner: self.inner.serialize_struct(name, len)?, depth, raw })
    }

    /// `{"variant": {fields}}`.
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let depth = self.enter(2)?;
        Ok(Compound { inner: self.inner.serialize_struct_variant(name, index, variant, len)?, depth, raw: false })
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

impl<C: ser::SerializeSeq> ser::SerializeSeq for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_element(&self.member(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTuple> ser::SerializeTuple for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_element(&self.member(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleStruct> ser::SerializeTupleStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_field(&self.member(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeTupleVariant> ser::SerializeTupleVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_field(&self.member(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.inner.serialize_key(&self.member(key))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_value(&self.member(value))
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), C::Error> {
        self.inner.serialize_entry(&self.member(key), &self.member(value))
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStruct> ser::SerializeStruct for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_field(key, &self.member(value))
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}

impl<C: ser::SerializeStructVariant> ser::SerializeStructVariant for Compound<C> {
    type Ok = C::Ok;
    type Error = C::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), C::Error> {
        self.inner.serialize_field(key, &self.member(value))
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.inner.skip_field(key)
    }

    fn end(self) -> Result<C::Ok, C::Error> {
        self.inner.end()
    }
}
