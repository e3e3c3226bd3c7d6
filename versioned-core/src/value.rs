//! Values as backends see them: [`Value`], [`Row`], and the [`Field`] conversions for Rust types.

use std::fmt;

/// One column's value, in the small set of types every backend can store.
///
/// ```
/// use versioned_core::{Field, Value};
///
/// assert_eq!(42i32.to_value(), Ok(Value::Int(42)));
/// assert_eq!(Option::<String>::None.to_value(), Ok(Value::Null));
/// assert!(u64::MAX.to_value().is_err()); // above i64::MAX: refused, never wrapped
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL `NULL`, `None` in Rust.
    Null,
    /// A boolean.
    Bool(bool),
    /// Any integer that fits in `i64`.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text; also JSON documents, serialized.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
        }
    }
}

impl Value {
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "bool",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
        }
    }

    /// The value with its type, for error messages: `NULL`, `integer 7`, `text "abc"`.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "NULL".to_owned(),
            other => format!("{} {other}", other.type_name()),
        }
    }
}

/// The storage type of a column, chosen by the Rust type of its field. Each backend declares it
/// with its own type (SQLite's `INTEGER` for every integer, PostgreSQL's `SMALLINT`, `INTEGER` or
/// `BIGINT` by width, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// `bool`.
    Bool,
    /// `i8`, `i16`, `u8`: integers that fit 16 signed bits.
    Int16,
    /// `i32`, `u16`: integers that fit 32 signed bits.
    Int32,
    /// `i64`, `u32`, `u64`: integers that fit 64 signed bits.
    Int64,
    /// `f32`.
    Float32,
    /// `f64`.
    Float64,
    /// `String`.
    Text,
    /// `Vec<u8>`.
    Bytes,
    /// A `#[versioned(json)]` field: a serde value stored as a JSON document.
    Json,
    /// `uuid::Uuid` (feature `uuid`), as text in its hyphenated form where the database has no
    /// UUID type.
    Uuid,
    /// A point in time (`SystemTime`, `chrono::DateTime<Utc>`, `time::OffsetDateTime`), as
    /// microseconds since the Unix epoch where the database has no timestamp type.
    Timestamp,
}

impl ColumnType {
    /// What a column of this type holds, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            ColumnType::Bool => "a bool",
            ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 => "an integer",
            ColumnType::Float32 | ColumnType::Float64 => "a float",
            ColumnType::Text => "text",
            ColumnType::Bytes => "bytes",
            ColumnType::Json => "a JSON document",
            ColumnType::Uuid => "a UUID",
            ColumnType::Timestamp => "a timestamp",
        }
    }

    /// Whether values of this type are stored as [`Value::Int`].
    pub fn is_integer(self) -> bool {
        matches!(self, ColumnType::Int16 | ColumnType::Int32 | ColumnType::Int64 | ColumnType::Timestamp)
    }
}

/// A record as a backend stores it: one [`Value`] per column, in the order of
/// [`TableDef::columns`](crate::TableDef::columns).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row(Vec<Value>);

impl Row {
    /// A row of the given values, in column order.
    pub fn new(values: Vec<Value>) -> Self {
        Row(values)
    }

    /// The value of column `index`, if the row has that many columns.
    pub fn get(&self, index: usize) -> Option<&Value> {
        self.0.get(index)
    }

    /// Replaces the value of column `index`; returns `false` (and changes nothing) when out of range.
    pub fn set(&mut self, index: usize, value: Value) -> bool {
        match self.0.get_mut(index) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.0
    }

    /// Takes the values out, in column order.
    pub fn into_values(self) -> Vec<Value> {
        self.0
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Value>> for Row {
    fn from(values: Vec<Value>) -> Self {
        Row(values)
    }
}

/// A Rust type that is stored in one column.
///
/// Implemented for the integers `i8`..`i64` and `u8`..`u64`, `f32`, `f64`, `bool`, `String`,
/// `Vec<u8>`, `SystemTime`, `uuid::Uuid` (feature `uuid`), `chrono::DateTime<Utc>` (feature
/// `chrono`), `time::OffsetDateTime` (feature `time`), and `Option<T>` of any of those. Anything
/// serde can (de)serialize is stored with `#[versioned(json)]` instead (see [`JsonField`]).
///
/// Conversions never lose data silently: a `u64` above `i64::MAX`, or a stored integer that does
/// not fit the field's type, is an error naming the value.
///
/// The implementations are `#[diagnostic::do_not_recommend]`: for a type without one, the
/// compiler's error shows the list of supported types below, complete, rather than a few of them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no storage mapping in `versioned`",
    label = "`{Self}` cannot be stored in a column as it is",
    note = "a column holds an integer (i8 to i64, u8 to u64), f32, f64, bool, String, Vec<u8>, SystemTime, uuid::Uuid (feature `uuid`), chrono::DateTime<Utc> (feature `chrono`), time::OffsetDateTime (feature `time`), or an Option of one",
    note = "to store any serde type as JSON text, mark the field `#[versioned(json)]`; a fieldless enum as plain text, `#[versioned(text)]`"
)]
pub trait Field: Sized {
    /// The column type this field is stored as.
    const TYPE: ColumnType;
    /// Whether the column accepts `NULL` (true for `Option<T>`).
    const NULLABLE: bool = false;
    /// Whether [`to_value`](Self::to_value) succeeds for every value of the type (false by
    /// default: a `u64` above `i64::MAX`, say, cannot be stored). A backend that keeps records as
    /// values (memory) keeps only those whose every field is so, since it never converts them to
    /// a row to write them.
    const ALWAYS_STORABLE: bool = false;

    /// Converts the field to its stored value; the error says why it cannot be stored.
    fn to_value(&self) -> Result<Value, String>;

    /// Converts a stored value back; the error says why the value does not fit.
    fn from_value(value: Value) -> Result<Self, String>;
}

fn mismatch<T>(expected: &str, found: &Value) -> Result<T, String> {
    Err(match found {
        Value::Null => format!("unexpected NULL where {expected} was expected (use Option<_> for a nullable column)"),
        other => format!("expected {expected}, found {}", other.describe()),
    })
}

macro_rules! int_field {
    ($($t:ty => $column:ident),*) => {$(
        #[diagnostic::do_not_recommend]
        impl Field for $t {
            const TYPE: ColumnType = ColumnType::$column;
            const ALWAYS_STORABLE: bool = <$t>::MAX as u128 <= i64::MAX as u128;

            fn to_value(&self) -> Result<Value, String> {
                i64::try_from(*self)
                    .map(Value::Int)
                    .map_err(|_| format!("{} {} does not fit a 64-bit signed column", stringify!($t), self))
            }

            fn from_value(value: Value) -> Result<Self, String> {
                match value {
                    Value::Int(i) => <$t>::try_from(i)
                        .map_err(|_| format!("stored integer {i} is out of range for {}", stringify!($t))),
                    other => mismatch(concat!("an integer for ", stringify!($t)), &other),
                }
            }
        }
    )*};
}
int_field!(i8 => Int16, i16 => Int16, u8 => Int16, i32 => Int32, u16 => Int32, i64 => Int64, u32 => Int64, u64 => Int64);

#[diagnostic::do_not_recommend]
impl Field for f64 {
    const TYPE: ColumnType = ColumnType::Float64;
    const ALWAYS_STORABLE: bool = true;

    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Float(*self))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Float(x) => Ok(x),
            // SQL REAL affinity may hand back an integral value as an integer.
            Value::Int(i) => Ok(i as f64),
            other => mismatch("a float", &other),
        }
    }
}

#[diagnostic::do_not_recommend]
impl Field for f32 {
    const TYPE: ColumnType = ColumnType::Float32;
    const ALWAYS_STORABLE: bool = true;

    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Float(f64::from(*self)))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        // Narrowing is the point of choosing f32; the stored value came from an f32 or a float
        // literal, and rounding to nearest is what `as` does.
        f64::from_value(value).map(|x| x as f32)
    }
}

#[diagnostic::do_not_recommend]
impl Field for bool {
    const TYPE: ColumnType = ColumnType::Bool;
    const ALWAYS_STORABLE: bool = true;

    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Bool(*self))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => mismatch("a bool", &other),
        }
    }
}

#[diagnostic::do_not_recommend]
impl Field for String {
    const TYPE: ColumnType = ColumnType::Text;
    const ALWAYS_STORABLE: bool = true;

    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Text(self.clone()))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s),
            other => mismatch("text", &other),
        }
    }
}

#[diagnostic::do_not_recommend]
impl Field for Vec<u8> {
    const TYPE: ColumnType = ColumnType::Bytes;
    const ALWAYS_STORABLE: bool = true;

    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Bytes(self.clone()))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Bytes(b) => Ok(b),
            other => mismatch("bytes", &other),
        }
    }
}

#[diagnostic::do_not_recommend]
impl<T: Field> Field for Option<T> {
    const TYPE: ColumnType = T::TYPE;
    const NULLABLE: bool = true;
    const ALWAYS_STORABLE: bool = T::ALWAYS_STORABLE;

    fn to_value(&self) -> Result<Value, String> {
        match self {
            Some(v) => v.to_value(),
            None => Ok(Value::Null),
        }
    }

    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

#[cfg(feature = "uuid")]
#[diagnostic::do_not_recommend]
impl Field for uuid::Uuid {
    const TYPE: ColumnType = ColumnType::Uuid;
    const ALWAYS_STORABLE: bool = true;

    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Text(self.hyphenated().to_string()))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => uuid::Uuid::parse_str(&s).map_err(|e| format!("invalid UUID {s:?}: {e}")),
            Value::Bytes(b) => uuid::Uuid::from_slice(&b).map_err(|e| format!("invalid UUID bytes: {e}")),
            other => mismatch("a UUID", &other),
        }
    }
}

#[diagnostic::do_not_recommend]
impl Field for std::time::SystemTime {
    const TYPE: ColumnType = ColumnType::Timestamp;

    /// Microseconds since the Unix epoch (negative before it).
    fn to_value(&self) -> Result<Value, String> {
        let micros = match self.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()),
            Err(before) => i64::try_from(before.duration().as_micros()).map(|m| -m),
        };
        micros.map(Value::Int).map_err(|_| format!("{self:?} is out of the storable range"))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        let micros = i64::from_value(value)?;
        let offset = std::time::Duration::from_micros(micros.unsigned_abs());
        let time = if micros >= 0 {
            std::time::UNIX_EPOCH.checked_add(offset)
        } else {
            std::time::UNIX_EPOCH.checked_sub(offset)
        };
        time.ok_or_else(|| format!("timestamp {micros} µs is out of range"))
    }
}

/// A type stored as a JSON document: the type of a `#[versioned(json)]` field. Every type serde
/// can serialize and deserialize is one.
///
/// ```
/// use versioned_core::{JsonField, Value};
///
/// let tags = vec!["a".to_owned(), "b".to_owned()];
/// assert_eq!(tags.to_json(), Ok(Value::Text(r#"["a","b"]"#.to_owned())));
/// assert_eq!(Vec::<String>::from_json(Value::Text(r#"["a","b"]"#.to_owned())), Ok(tags));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored as JSON: a `#[versioned(json)]` field's type must implement `Serialize` and `DeserializeOwned`",
    label = "not `Serialize` and `DeserializeOwned`",
    note = "derive both on the type with serde (feature `derive`): `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait JsonField: Sized {
    /// The field as a JSON document (text); the error says why serde could not serialize it.
    fn to_json(&self) -> Result<Value, String>;

    /// The field from a stored JSON document; the error says whether the document is malformed or
    /// does not fit the type.
    fn from_json(value: Value) -> Result<Self, String>;
}

// `do_not_recommend`: a type that is not serde's gets `JsonField`'s own message, not serde's
// `Deserialize` error with its list of every type that implements it.
#[diagnostic::do_not_recommend]
impl<T: serde::Serialize + serde::de::DeserializeOwned> JsonField for T {
    fn to_json(&self) -> Result<Value, String> {
        json_text(self)
    }

    fn from_json(value: Value) -> Result<Self, String> {
        from_json_value(value)
    }
}

/// A type stored as plain text: the type of a `#[versioned(text)]` field, typically a fieldless
/// enum. Every type serde serializes as a string and deserializes from one is one: an enum's unit
/// variants (named as serde names them, so `#[serde(rename_all = "snake_case")]` chooses the
/// stored words), and string-like types such as `std::net::IpAddr`. The column is an ordinary
/// text column, declared as a `String` field's is, so it can be filtered and indexed as one;
/// an `Option<T>` field (written `Option<…>`) is a nullable column, `None` being `NULL`.
///
/// ```
/// use versioned_core::{TextField, Value};
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// #[serde(rename_all = "snake_case")]
/// enum Status { Open, InProgress }
///
/// assert_eq!(Status::InProgress.to_text(), Ok(Value::Text("in_progress".into())));
/// assert_eq!(Status::from_text(Value::Text("open".into())), Ok(Status::Open));
/// let unknown = Status::from_text(Value::Text("shut".into())).unwrap_err();
/// assert!(unknown.contains("unknown variant `shut`"), "{unknown}");
/// assert_eq!(Option::<Status>::from_text(Value::Null), Ok(None));
/// assert_eq!(Some(Status::Open).to_text(), Ok(Value::Text("open".into())));
/// ```
///
/// A type that is not serde's can implement the trait itself (from its `Display` and `FromStr`,
/// say, as strum derives them):
///
/// ```
/// use versioned_core::{TextField, Value};
///
/// #[derive(Debug, PartialEq)]
/// enum Colour { Red, Green }
///
/// impl TextField for Colour {
///     fn to_text(&self) -> Result<Value, String> {
///         Ok(Value::Text(match self { Colour::Red => "red", Colour::Green => "green" }.into()))
///     }
///
///     fn from_text(value: Value) -> Result<Self, String> {
///         match value {
///             Value::Text(text) if text == "red" => Ok(Colour::Red),
///             Value::Text(text) if text == "green" => Ok(Colour::Green),
///             other => Err(format!("not a colour: {}", other.describe())),
///         }
///     }
/// }
/// # assert_eq!(Colour::from_text(Colour::Green.to_text().unwrap()), Ok(Colour::Green));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored as text: a `#[versioned(text)]` field's type must implement `Serialize` and `DeserializeOwned`",
    label = "not `Serialize` and `DeserializeOwned`",
    note = "derive both on a fieldless enum with serde (feature `derive`): `#[derive(serde::Serialize, serde::Deserialize)]`; `#[serde(rename_all = \"snake_case\")]` chooses the stored words",
    note = "or implement `versioned::TextField` for the type"
)]
pub trait TextField: Sized {
    /// The field as text ([`Value::Text`]), or [`Value::Null`] for `None`; the error says why it
    /// is not text (a variant with fields, which serde writes as an object, say).
    fn to_text(&self) -> Result<Value, String>;

    /// The field from stored text; the error names the text and says why it does not fit
    /// (serde's "unknown variant `shut`, expected `open` or `closed`").
    fn from_text(value: Value) -> Result<Self, String>;
}

// `do_not_recommend`: a type that is not serde's gets `TextField`'s own message (see `JsonField`).
#[diagnostic::do_not_recommend]
impl<T: serde::Serialize + serde::de::DeserializeOwned> TextField for T {
    fn to_text(&self) -> Result<Value, String> {
        let kind = match serde_json::to_value(self) {
            Ok(serde_json::Value::String(text)) => return Ok(Value::Text(text)),
            Ok(serde_json::Value::Null) => return Ok(Value::Null),
            Ok(serde_json::Value::Bool(_)) => "a bool",
            Ok(serde_json::Value::Number(_)) => "a number",
            Ok(serde_json::Value::Array(_)) => "an array",
            Ok(serde_json::Value::Object(_)) => "an object (an enum variant with fields?)",
            Err(e) => return Err(format!("cannot serialize as text: {e}")),
        };
        Err(format!("a text column holds what serde writes as a string (a fieldless enum's variant), not {kind}"))
    }

    fn from_text(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(text) => T::deserialize(TextDeserializer(Some(&text)))
                .map_err(|e| format!("stored text {text:?} does not fit the field: {e}")),
            // An `Option` reads NULL as `None`; anything else cannot.
            Value::Null => T::deserialize(TextDeserializer(None)).or_else(|_| mismatch("text", &Value::Null)),
            other => mismatch("text", &other),
        }
    }
}

/// What a `#[versioned(text)]` field's type is read from: the stored text as a string (an enum's
/// unit variant by its name), or `None` for `NULL` (an `Option`'s `None`).
struct TextDeserializer<'a>(Option<&'a str>);

impl<'de> serde::Deserializer<'de> for TextDeserializer<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Some(text) => visitor.visit_str(text),
            None => visitor.visit_unit(),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Some(_) => visitor.visit_some(self),
            None => visitor.visit_none(),
        }
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Some(text) => serde::de::IntoDeserializer::<Self::Error>::into_deserializer(text)
                .deserialize_enum(name, variants, visitor),
            None => visitor.visit_unit(),
        }
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// A `#[versioned(text)]` field's value for a column that is not nullable (the field is not an
/// `Option`): a value serde writes as `null` is refused rather than stored as `NULL`. Called by
/// the generated code.
#[doc(hidden)]
pub fn text_not_null(converted: Result<Value, String>) -> Result<Value, String> {
    match converted {
        Ok(Value::Null) => {
            Err("the value is written as null, but the column is not nullable (make the field an Option<_>)".to_owned())
        }
        other => other,
    }
}

#[cfg(test)]
mod text_tests {
    use super::{TextField, Value, text_not_null};

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum Status {
        Open,
        InProgress,
        Other(i32),
    }

    /// A newtype around a string reads and writes as its string.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Tag(String);

    #[test]
    fn unit_variants_are_their_serde_names() {
        assert_eq!(Status::InProgress.to_text(), Ok(Value::Text("IN_PROGRESS".into())));
        assert_eq!(Status::from_text(Value::Text("IN_PROGRESS".into())), Ok(Status::InProgress));
        assert_eq!(Option::<Status>::from_text(Value::Text("OPEN".into())), Ok(Some(Status::Open)));
        assert_eq!(Option::<Status>::None.to_text(), Ok(Value::Null));
        assert_eq!(Tag("x".into()).to_text(), Ok(Value::Text("x".into())));
        assert_eq!(Tag::from_text(Value::Text("x".into())), Ok(Tag("x".into())));
        let ip: std::net::IpAddr = "127.0.0.1".parse().expect("an address");
        assert_eq!(ip.to_text(), Ok(Value::Text("127.0.0.1".into())));
        assert_eq!(std::net::IpAddr::from_text(Value::Text("127.0.0.1".into())), Ok(ip));
    }

    #[test]
    fn what_is_not_text_is_refused_with_a_reason() {
        let err = Status::Other(1).to_text().unwrap_err();
        assert!(err.contains("not an object"), "{err}");
        let err = 5i32.to_text().unwrap_err();
        assert!(err.contains("not a number"), "{err}");
        let err = Status::from_text(Value::Text("open".into())).unwrap_err();
        assert!(err.contains(r#"stored text "open" does not fit"#) && err.contains("unknown variant `open`"), "{err}");
        let err = Status::from_text(Value::Null).unwrap_err();
        assert!(err.contains("unexpected NULL"), "{err}");
        let err = Status::from_text(Value::Int(1)).unwrap_err();
        assert!(err.contains("expected text, found integer 1"), "{err}");
        assert!(text_not_null(Option::<Status>::None.to_text()).unwrap_err().contains("not nullable"));
        assert_eq!(text_not_null(Status::Open.to_text()), Ok(Value::Text("OPEN".into())));
    }
}

/// The deepest a `#[versioned(json)]` document may nest: arrays and objects inside one another,
/// the outermost counting 1 (`[]` and `{"a": 1}` are 1 deep, `{"a": [1]}` is 2, a number or a
/// string 0).
///
/// One limit for writing and reading. A field whose JSON would nest deeper is refused with
/// [`Error::Encode`](crate::Error::Encode) naming the table and column before anything is
/// written, and its serialization stops at the limit: however deep the value, it never recurses
/// further (a value nested 100,000 deep is an error, not a stack overflow). A stored document
/// deeper than the limit is [`Error::Decode`](crate::Error::Decode) naming the table and column,
/// whatever the field's type reads of it. 127 is the deepest that serde_json's reader accepts (its
/// recursion limit of 128 refuses the 128th level), so every document that is written reads back.
///
/// ```
/// use versioned_core::{JsonField, MAX_JSON_DEPTH, Value};
///
/// let limit = MAX_JSON_DEPTH;
/// let nested = |depth: usize| "[".repeat(depth) + &"]".repeat(depth);
/// let deepest: serde_json::Value = serde_json::from_str(&nested(limit)).unwrap();
/// assert_eq!(deepest.to_json(), Ok(Value::Text(nested(limit))));
/// let deeper = serde_json::json!([deepest]);
/// assert!(deeper.to_json().unwrap_err().contains("deeper than 127"));
/// assert!(serde_json::Value::from_json(Value::Text(nested(limit + 1))).is_err());
/// ```
pub const MAX_JSON_DEPTH: usize = 127;

/// `field` as JSON text, refused if it nests deeper than [`MAX_JSON_DEPTH`].
pub(crate) fn json_text<F: serde::Serialize + ?Sized>(field: &F) -> Result<Value, String> {
    serde_json::to_string(&depth::Capped::new(field))
        .map(Value::Text)
        .map_err(|e| format!("cannot serialize to JSON: {e}"))
}

/// A serde type from a stored JSON document, refused if it nests deeper than [`MAX_JSON_DEPTH`].
pub(crate) fn from_json_value<F: serde::de::DeserializeOwned>(value: Value) -> Result<F, String> {
    let malformed = |e: serde_json::Error| {
        let what = if e.is_data() { "the JSON document does not fit the field" } else { "malformed JSON" };
        format!("{what}: {e}")
    };
    match value {
        Value::Text(text) => {
            depth::check(text.as_bytes())?;
            serde_json::from_str(&text).map_err(malformed)
        }
        Value::Bytes(bytes) => {
            depth::check(&bytes)?;
            serde_json::from_slice(&bytes).map_err(malformed)
        }
        // A column of NUMERIC affinity (SQLite, declared `JSON`) hands back numbers as numbers.
        Value::Int(i) => serde_json::from_value(i.into()).map_err(malformed),
        Value::Float(x) => serde_json::from_value(x.into()).map_err(malformed),
        other => Err(format!("expected JSON text, found {}", other.describe())),
    }
}

/// [`MAX_JSON_DEPTH`], enforced (module `value/depth.rs`).
mod depth;

/// A type the store can set to "now": the type of a `#[versioned(created_at)]` or
/// `#[versioned(updated_at)]` field. Stored as microseconds since the Unix epoch.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an audit timestamp",
    label = "not a timestamp type",
    note = "`created_at` and `updated_at` fields are std::time::SystemTime, chrono::DateTime<Utc> (feature `chrono`) or time::OffsetDateTime (feature `time`), or an Option of one"
)]
pub trait TimestampField: Field {
    /// Names the trait in a path: `#[derive(Versioned)]` writes `<T as TimestampField>::CHECK`
    /// so that a field type that is not a timestamp gets one error, at the field.
    #[doc(hidden)]
    const CHECK: () = ();
}
#[diagnostic::do_not_recommend]
impl TimestampField for std::time::SystemTime {}
#[diagnostic::do_not_recommend]
impl TimestampField for Option<std::time::SystemTime> {}

#[cfg(feature = "chrono")]
#[diagnostic::do_not_recommend]
impl Field for chrono::DateTime<chrono::Utc> {
    const TYPE: ColumnType = ColumnType::Timestamp;

    /// Microseconds since the Unix epoch, like `SystemTime`.
    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Int(self.timestamp_micros()))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        let micros = i64::from_value(value)?;
        chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| format!("timestamp {micros} µs is out of range"))
    }
}
#[cfg(feature = "chrono")]
#[diagnostic::do_not_recommend]
impl TimestampField for chrono::DateTime<chrono::Utc> {}
#[cfg(feature = "chrono")]
#[diagnostic::do_not_recommend]
impl TimestampField for Option<chrono::DateTime<chrono::Utc>> {}

#[cfg(feature = "time")]
#[diagnostic::do_not_recommend]
impl Field for time::OffsetDateTime {
    const TYPE: ColumnType = ColumnType::Timestamp;

    /// Microseconds since the Unix epoch, like `SystemTime` (finer precision is dropped).
    fn to_value(&self) -> Result<Value, String> {
        i64::try_from(self.unix_timestamp_nanos() / 1_000)
            .map(Value::Int)
            .map_err(|_| format!("{self} is out of the storable range"))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        let micros = i64::from_value(value)?;
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .map_err(|e| format!("timestamp {micros} µs is out of range: {e}"))
    }
}
#[cfg(feature = "time")]
#[diagnostic::do_not_recommend]
impl TimestampField for time::OffsetDateTime {}
#[cfg(feature = "time")]
#[diagnostic::do_not_recommend]
impl TimestampField for Option<time::OffsetDateTime> {}

/// The type of a `#[versioned(updated_by)]` field: who made a write.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an `updated_by` field",
    label = "not a user name type",
    note = "an `updated_by` field is a String or an Option<String>"
)]
pub trait UserField: Field {
    /// Names the trait in a path: `#[derive(Versioned)]` writes `<T as UserField>::CHECK` so
    /// that a field type that cannot name a user gets one error, at the field.
    #[doc(hidden)]
    const CHECK: () = ();
}
#[diagnostic::do_not_recommend]
impl UserField for String {}
#[diagnostic::do_not_recommend]
impl UserField for Option<String> {}

/// A type that can identify a record: the type of the `#[key]` field.
///
/// Integers, `String`, and `uuid::Uuid` (feature `uuid`). As for [`Field`], the implementations
/// are `#[diagnostic::do_not_recommend]`, so the compiler's error lists every key type (the note
/// below) instead of only those that look like the type given (only the integers, for an `f64`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `#[key]`",
    label = "not a key type",
    note = "a key is an integer (i8 to i64, u8 to u64), a String, or a uuid::Uuid (feature `uuid`)"
)]
pub trait KeyField: Field + Clone + fmt::Debug + Send + Sync + 'static {}

macro_rules! key_field {
    ($($t:ty),*) => {$( #[diagnostic::do_not_recommend] impl KeyField for $t {} )*};
}
key_field!(i8, i16, i32, i64, u8, u16, u32, u64, String);
#[cfg(feature = "uuid")]
#[diagnostic::do_not_recommend]
impl KeyField for uuid::Uuid {}

/// What the operations taking a key accept for an entity keyed by `K`: the key itself or a
/// reference to it, and for `String` keys also `str` and `&str` — as `HashMap<String, _>::get`
/// takes a `&str`. So `Book::get(&store, "978-1")`, `Book::get(&store, &"978-1")` and
/// `Book::get(&store, &isbn)` (an owned `String`) all work.
pub trait KeyFor<K>: Sync {
    /// The key as stored.
    fn key_value(&self) -> Result<Value, String>;
}

impl<K: KeyField> KeyFor<K> for K {
    fn key_value(&self) -> Result<Value, String> {
        self.to_value()
    }
}

impl<K: KeyField> KeyFor<K> for &K {
    fn key_value(&self) -> Result<Value, String> {
        (**self).to_value()
    }
}

impl KeyFor<String> for str {
    fn key_value(&self) -> Result<Value, String> {
        Ok(Value::Text(self.to_owned()))
    }
}

impl KeyFor<String> for &str {
    fn key_value(&self) -> Result<Value, String> {
        Ok(Value::Text((*self).to_owned()))
    }
}

/// The type of a `#[version]` field: an integer counter.
///
/// Versions start at 1 on insert and grow by one on every write. [`MAX`](Self::MAX) is the
/// largest version the field can hold; a write that would go past it is refused with
/// [`Error::VersionOverflow`](crate::Error::VersionOverflow), never wrapped.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `#[version]`",
    label = "not an integer version type",
    note = "a version is one of u64, u32, u16, u8, i64, i32, i16, i8"
)]
pub trait VersionField: Field + Copy + Send + Sync + 'static {
    /// The largest version this type can hold (and storage can represent).
    const MAX: u64;

    /// The version as an unsigned counter; `None` for a negative value.
    fn to_u64(self) -> Option<u64>;

    /// The field value for `version`; `None` if it does not fit.
    fn from_u64(version: u64) -> Option<Self>;
}

macro_rules! version_field {
    ($($t:ty),*) => {$(
        #[diagnostic::do_not_recommend]
        impl VersionField for $t {
            // Capped at i64::MAX: every backend stores versions as signed 64-bit integers.
            const MAX: u64 = if (<$t>::MAX as u128) < (i64::MAX as u128) { <$t>::MAX as u64 } else { i64::MAX as u64 };

            fn to_u64(self) -> Option<u64> {
                u64::try_from(self).ok()
            }

            fn from_u64(version: u64) -> Option<Self> {
                <$t>::try_from(version).ok()
            }
        }
    )*};
}
version_field!(i8, i16, i32, i64, u8, u16, u32, u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_and_refuse_out_of_range() {
        assert_eq!(u64::from_value(Value::Int(7)), Ok(7));
        assert!(u64::from_value(Value::Int(-1)).is_err());
        assert!(u8::from_value(Value::Int(256)).is_err());
        assert_eq!((i64::MAX as u64).to_value(), Ok(Value::Int(i64::MAX)));
        let err = (i64::MAX as u64 + 1).to_value().unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }

    #[test]
    fn null_needs_option() {
        assert_eq!(Option::<i32>::from_value(Value::Null), Ok(None));
        let err = i32::from_value(Value::Null).unwrap_err();
        assert!(err.contains("NULL"), "{err}");
    }

    #[test]
    fn timestamps_are_microseconds_since_the_epoch() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(t.to_value(), Ok(Value::Int(1_700_000_000_123_456)));
        assert_eq!(std::time::SystemTime::from_value(Value::Int(1_700_000_000_123_456)), Ok(t));
        let before = UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(before.to_value(), Ok(Value::Int(-5)));
        assert_eq!(std::time::SystemTime::from_value(Value::Int(-5)), Ok(before));
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_timestamps_match_system_time() {
        let t = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("in range");
        assert_eq!(t.to_value(), Ok(Value::Int(1_700_000_000_123_456)));
        assert_eq!(chrono::DateTime::<chrono::Utc>::from_value(Value::Int(1_700_000_000_123_456)), Ok(t));
    }

    #[cfg(feature = "time")]
    #[test]
    fn time_timestamps_match_system_time() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).expect("in range");
        assert_eq!(t.to_value(), Ok(Value::Int(1_700_000_000_123_456)));
        assert_eq!(time::OffsetDateTime::from_value(Value::Int(1_700_000_000_123_456)), Ok(t));
    }

    /// The deepest arrays and objects go inside one another in JSON `text`.
    fn depth_of(text: &str) -> usize {
        (0..).find(|&limit| !depth::deeper_than(text.as_bytes(), limit)).unwrap_or(usize::MAX)
    }

    /// `[[…]]`, `depth` deep.
    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    /// Every shape serde_json writes as an array or an object, nested: `{"List":[…]}` (a newtype
    /// variant of a sequence), `{"Pair":[…, 0]}`, `{"Named":{"child":…}}` (tuple and struct
    /// variants), `{"Map":{"k":…}}` and `{"Bytes":[1,2]}` (bytes: an array of numbers) are two
    /// levels each, `{"Wrap":…}` and `{"Maybe":…}` one (an `Option` adds none).
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    enum Tree {
        Leaf,
        List(Vec<Tree>),
        Wrap(Box<Tree>),
        Pair(Box<Tree>, u8),
        Named { child: Box<Tree> },
        Map(std::collections::BTreeMap<String, Tree>),
        Bytes(#[serde(with = "bytes")] Vec<u8>),
        Maybe(Option<Box<Tree>>),
    }

    /// `Vec<u8>` through `serialize_bytes` (serde_json writes an array of numbers).
    mod bytes {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            serde::Deserialize::deserialize(d)
        }
    }

    /// Trees of every shape, `depth` deep: each made of one kind of level over `Wrap`s that make
    /// up the rest.
    fn trees(depth: usize) -> Vec<Tree> {
        let wrap = |mut tree: Tree, levels: usize| {
            for _ in 0..levels {
                tree = Tree::Wrap(Box::new(tree));
            }
            tree
        };
        let one = |tree: Tree| Tree::Map([("k".to_owned(), tree)].into());
        vec![
            wrap(Tree::Leaf, depth),
            wrap(Tree::List(vec![Tree::Leaf, Tree::List(vec![])]), depth - 4),
            wrap(Tree::Pair(Box::new(Tree::Leaf), 0), depth - 2),
            wrap(Tree::Named { child: Box::new(Tree::Leaf) }, depth - 2),
            wrap(one(one(Tree::Leaf)), depth - 4),
            wrap(Tree::Bytes(vec![1, 2]), depth - 2),
            wrap(Tree::Maybe(Some(Box::new(Tree::Maybe(None)))), depth - 2),
        ]
    }

    #[test]
    fn serde_json_reads_exactly_max_json_depth() {
        // The limit is serde_json's reader's: it parses MAX_JSON_DEPTH levels and refuses one more.
        assert!(serde_json::from_str::<serde_json::Value>(&nested(MAX_JSON_DEPTH)).is_ok());
        let err = serde_json::from_str::<serde_json::Value>(&nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }

    #[test]
    fn json_at_the_depth_limit_is_written_and_read_back_one_deeper_is_refused() {
        for tree in trees(MAX_JSON_DEPTH) {
            let Ok(Value::Text(text)) = json_text(&tree) else { panic!("{tree:?} not written") };
            assert_eq!(depth_of(&text), MAX_JSON_DEPTH, "{text}");
            assert_eq!(from_json_value::<Tree>(Value::Text(text)), Ok(tree));
        }
        for tree in trees(MAX_JSON_DEPTH + 1) {
            let err = json_text(&tree).unwrap_err();
            assert!(err.contains("nests deeper than 127"), "{err}");
            // serde_json itself writes it, as it is 128 deep; we read no such document.
            let text = serde_json::to_string(&tree).unwrap();
            assert_eq!(depth_of(&text), MAX_JSON_DEPTH + 1, "{text}");
            let err = from_json_value::<Tree>(Value::Text(text.clone())).unwrap_err();
            assert!(err.contains("nests deeper than 127"), "{err}");
            assert!(from_json_value::<Tree>(Value::Bytes(text.into_bytes())).is_err());
        }
        let mut value = serde_json::Value::Null;
        for _ in 0..200 {
            value = serde_json::json!({ "a": [value] });
        }
        assert!(json_text(&value).unwrap_err().contains("deeper than"));
    }

    /// The reader's limit holds for the whole document, also where the field's type skips it
    /// (serde_json skips unknown fields without a limit).
    #[test]
    fn a_stored_document_past_the_limit_is_refused_even_where_skipped() {
        #[derive(serde::Deserialize, Debug)]
        struct Only {
            #[allow(dead_code)]
            a: u8,
        }
        let text = format!(r#"{{"a": 1, "b": "[[[", "c": {}}}"#, nested(MAX_JSON_DEPTH));
        assert!(serde_json::from_str::<Only>(&text).is_ok());
        assert!(from_json_value::<Only>(Value::Text(text)).unwrap_err().contains("deeper than"));
        // Brackets in strings, escaped quotes included, are text.
        let text = format!(r#"{{"a": 1, "b": "\"{}\\"}}"#, "[".repeat(500));
        assert!(from_json_value::<Only>(Value::Text(text)).is_ok());
    }

    /// n arrays inside one another, serialized by recursion like any recursive type.
    struct Endless(usize);

    impl serde::Serialize for Endless {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = serializer.serialize_seq(Some(1))?;
            if self.0 > 1 {
                seq.serialize_element(&Endless(self.0 - 1))?;
            }
            seq.end()
        }
    }

    /// Serialization stops at the limit: 100,000 levels are refused on a thread with the stack of
    /// a tokio worker (2 MiB), where serde_json alone would overflow it and abort the process.
    #[test]
    fn a_value_nested_100_000_deep_is_refused_without_overflowing_the_stack() {
        let written = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| json_text(&Endless(100_000)))
            .expect("thread")
            .join()
            .expect("no panic");
        assert!(written.unwrap_err().contains("nests deeper than 127"));
        assert_eq!(json_text(&Endless(MAX_JSON_DEPTH)), Ok(Value::Text(nested(MAX_JSON_DEPTH))));
    }

    #[test]
    fn version_max_is_capped_by_storage() {
        assert_eq!(<u64 as VersionField>::MAX, i64::MAX as u64);
        assert_eq!(<u32 as VersionField>::MAX, u64::from(u32::MAX));
        assert_eq!(<i8 as VersionField>::MAX, 127);
        assert_eq!((-1i32).to_u64(), None);
    }
}
