//! [`Cursor`]: where the next page of a query starts, as a short URL-safe string.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::leb128;
use crate::storage::select::Order;
use crate::value::{ColumnType, Value};

/// Where the next page of a query starts: the values of the order's fields in the last record of
/// a page (keyset pagination, never an offset), so a record inserted or deleted between two pages
/// never makes another appear twice or go missing.
///
/// Opaque: it prints as a short URL-safe string (for `?after=` in a web API) and parses back with
/// [`str::parse`]; as serde data it is that string. A cursor is refused with
/// [`Error::Query`] when it was made by a query of another table or order, or is malformed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    bytes: Vec<u8>,
}

/// The cursor format's first byte: a later format can tell its own cursors from these.
const FORMAT: u8 = 1;

impl Cursor {
    /// The cursor after a record whose order fields hold `values` (one per key of `order`).
    pub(crate) fn new(table: &TableDef, order: &[Order], values: &[Value]) -> Cursor {
        let mut bytes = vec![FORMAT];
        bytes.extend_from_slice(&fingerprint(table, order).to_be_bytes());
        for value in values {
            encode(value, &mut bytes);
        }
        Cursor { bytes }
    }

    /// The values this cursor holds, checked to belong to a query of `table` in `order`.
    pub(crate) fn values(&self, table: &'static TableDef, order: &[Order]) -> Result<Vec<Value>> {
        let refuse = |reason: &str| Error::Query { table: table.name, reason: format!("invalid cursor: {reason}") };
        let Some((&FORMAT, rest)) = self.bytes.split_first() else {
            return Err(refuse("not a cursor of this library"));
        };
        let (hash, mut rest) = rest.split_at_checked(8).ok_or_else(|| refuse("too short"))?;
        if hash != fingerprint(table, order).to_be_bytes() {
            return Err(refuse("it belongs to a query of another table or order"));
        }
        let mut values = Vec::with_capacity(order.len());
        for key in order {
            let column = &table.columns[key.column];
            let value = decode(&mut rest).ok_or_else(|| refuse("malformed"))?;
            if !fits(&value, column.ty, column.nullable) {
                return Err(refuse(&format!(
                    "a {} where column {} holds {}",
                    value.type_name(),
                    column.name,
                    column.ty.describe()
                )));
            }
            values.push(value);
        }
        if !rest.is_empty() {
            return Err(refuse("malformed"));
        }
        Ok(values)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(&self.bytes))
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor({self})")
    }
}

/// The error of a string that is not a cursor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor: expected the URL-safe string a page gave")]
pub struct CursorParseError;

impl FromStr for Cursor {
    type Err = CursorParseError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CursorParseError)?;
        if bytes.first() != Some(&FORMAT) {
            return Err(CursorParseError);
        }
        Ok(Cursor { bytes })
    }
}

impl serde::Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether `value` can be a value of a column of type `ty`.
fn fits(value: &Value, ty: ColumnType, nullable: bool) -> bool {
    match value {
        Value::Null => nullable,
        Value::Int(_) => ty.is_integer(),
        Value::Float(_) => matches!(ty, ColumnType::Float32 | ColumnType::Float64),
        Value::Bool(_) => ty == ColumnType::Bool,
        Value::Text(_) => matches!(ty, ColumnType::Text | ColumnType::Uuid | ColumnType::Json),
        Value::Bytes(_) => ty == ColumnType::Bytes,
    }
}

/// A 64-bit FNV-1a hash of the table and the order: stable across builds and platforms, as a
/// cursor may outlive the process that made it.
fn fingerprint(table: &TableDef, order: &[Order]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(table.name.as_bytes());
    for key in order {
        eat(&[0]);
        eat(table.columns[key.column].name.as_bytes());
        eat(&[u8::from(key.descending)]);
    }
    hash
}

fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0),
        Value::Bool(b) => out.extend([1, u8::from(*b)]),
        Value::Int(i) => {
            out.push(2);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Float(x) => {
            out.push(3);
            out.extend_from_slice(&x.to_bits().to_be_bytes());
        }
        Value::Text(s) => {
            out.push(4);
            leb128::write(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(5);
            leb128::write(out, b.len());
            out.extend_from_slice(b);
        }
    }
}

fn decode(input: &mut &[u8]) -> Option<Value> {
    let (&tag, rest) = input.split_first()?;
    *input = rest;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (taken, rest) = input.split_at_checked(n)?;
        *input = rest;
        Some(taken)
    };
    Some(match tag {
        0 => Value::Null,
        1 => match take(1)? {
            [0] => Value::Bool(false),
            [1] => Value::Bool(true),
            _ => return None,
        },
        2 => Value::Int(i64::from_be_bytes(take(8)?.try_into().ok()?)),
        3 => Value::Float(f64::from_bits(u64::from_be_bytes(take(8)?.try_into().ok()?))),
        4 | 5 => {
            let len = leb128::read(input)?;
            let (bytes, rest) = input.split_at_checked(len)?;
            *input = rest;
            if tag == 4 { Value::Text(String::from_utf8(bytes.to_vec()).ok()?) } else { Value::Bytes(bytes.to_vec()) }
        }
        _ => return None,
    })
}
