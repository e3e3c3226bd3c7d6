//! How records are laid out in etcd's key space, and how values are encoded.
//!
//! Keys, under the storage's prefix `P` (default `versioned/`):
//!
//! | key | value |
//! |---|---|
//! | `P<table>/schema` | the table's columns, as JSON (written by `create_table`) |
//! | `P<table>/k/<K>/r` | the row: every column but the version and `created_at`, encoded below |
//! | `P<table>/k/<K>/v` | the version, encoded below: a checked write compares this value |
//! | `P<table>/k/<K>/c` | the `created_at` column, for tables that have one: never rewritten by an update |
//! | `P<table>/k/<K>/l` | a `get_for_update` lock: the transaction's id, attached to its lease |
//! | `P_writes/<id>` | a marker put by each write, to learn whether a write whose reply was lost was applied |
//!
//! `<K>` is the key: `i` and 16 hex digits (an integer, ordered), `s` and the hex of the UTF-8
//! text, or `b` and the hex of the bytes. It never contains `/`, so the keys of one record are
//! exactly those under `P<table>/k/<K>/`, read with one range request.
//!
//! Values are a compact binary encoding: one tag byte, then the payload. `0` NULL, `1` false, `2`
//! true, `3` an integer as 8 bytes big-endian, `4` a float as the 8 bytes of its IEEE-754 bits,
//! `5` text and `6` bytes as a LEB128 length and the bytes. A row is a format byte (`1`), the
//! number of values (LEB128), and the values. An integer has exactly one encoding, so etcd can
//! compare a stored version with the one a write expects, byte for byte, in the write itself.

use crate::entity::{ColumnDef, ColumnRole, TableDef};
use crate::error::{Error, Result};
use crate::leb128;
use crate::revisions::HistoryRow;
use crate::value::{Row, Value};

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const TEXT: u8 = 5;
const BYTES: u8 = 6;
/// The first byte of an encoded row: the format, so that another one can follow.
const ROW_FORMAT: u8 = 1;

/// The keys of one record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordKeys {
    /// `P<table>/k/<K>/`: a range request with this prefix reads every key of the record.
    pub(super) prefix: Vec<u8>,
}

impl RecordKeys {
    pub(super) fn new(prefix: &[u8], table: &TableDef, key: &Value) -> Result<Self> {
        let mut out = table_records(prefix, table);
        out.reserve(24);
        match key {
            // Offset by 2^63 so that the hex digits sort as the integers do.
            Value::Int(i) => {
                out.push(b'i');
                hex(&mut out, &((*i as u64) ^ (1 << 63)).to_be_bytes());
            }
            Value::Text(s) => {
                out.push(b's');
                hex(&mut out, s.as_bytes());
            }
            Value::Bytes(b) => {
                out.push(b'b');
                hex(&mut out, b);
            }
            other => {
                return Err(crate::error::StorageError::new(format!(
                    "{}: a {} cannot be a key",
                    table.name,
                    other.type_name()
                ))
                .into());
            }
        }
        out.push(b'/');
        Ok(RecordKeys { prefix: out })
    }

    fn part(&self, part: u8) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 1);
        key.extend_from_slice(&self.prefix);
        key.push(part);
        key
    }

    /// The row's key.
    pub(super) fn row(&self) -> Vec<u8> {
        self.part(b'r')
    }

    /// The version's key.
    pub(super) fn version(&self) -> Vec<u8> {
        self.part(b'v')
    }

    /// The creation time's key.
    pub(super) fn created(&self) -> Vec<u8> {
        self.part(b'c')
    }

    /// The lock's key.
    pub(super) fn lock(&self) -> Vec<u8> {
        self.part(b'l')
    }

    /// The key of this record's entry in the index of column `column` (`#[versioned(index)]`),
    /// for the value `value`: `P<table>/x/<column>/<value>/<K>/`, where `<K>` is the record's own
    /// key part. Written with the record; the record's keys stay the truth (an entry whose record
    /// no longer holds the value is passed over by the query that finds it).
    pub(super) fn index_key(&self, column: &ColumnDef, value: &Value) -> Vec<u8> {
        // The last `/k/` ends the table's prefix: a key part is hex digits after one letter.
        let at = self.prefix.windows(3).rposition(|w| w == b"/k/").unwrap_or(0);
        let (table, part) = (&self.prefix[..at], &self.prefix[at + 3..]);
        let mut key = index_prefix_of(table, column, value);
        key.extend_from_slice(part);
        key
    }

    /// The prefix of the record's history entries: `P<table>/h/<K>/`.
    pub(super) fn history(&self) -> Vec<u8> {
        let at = self.prefix.windows(3).rposition(|w| w == b"/k/").unwrap_or(0);
        let mut key = self.prefix[..at].to_vec();
        key.extend_from_slice(b"/h/");
        key.extend_from_slice(&self.prefix[at + 3..]);
        key
    }

    /// Which part of the record `key` is (`b'r'`, `b'v'`, `b'c'`, `b'l'`), if it is one.
    pub(super) fn part_of(&self, key: &[u8]) -> Option<u8> {
        match key.strip_prefix(self.prefix.as_slice()) {
            Some([part]) => Some(*part),
            _ => None,
        }
    }
}

/// The prefix of every record key of `table`: `P<table>/k/`.
pub(super) fn table_records(prefix: &[u8], table: &TableDef) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + table.name.len() + 3);
    out.extend_from_slice(prefix);
    out.extend_from_slice(table.name.as_bytes());
    out.extend_from_slice(b"/k/");
    out
}

/// The end of the range of keys starting with `prefix` (excluded): `prefix` with its last byte
/// incremented (a prefix of record keys never ends in `0xff`).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The prefix of the index entries of column `column` of `table` for `value`.
pub(super) fn index_prefix(prefix: &[u8], table: &TableDef, column: &ColumnDef, value: &Value) -> Vec<u8> {
    let mut base = prefix.to_vec();
    base.extend_from_slice(table.name.as_bytes());
    index_prefix_of(&base, column, value)
}

/// `<table prefix>/x/<column>/<hex of the value's encoding>/`; `-0.0` is written as `0.0`, which
/// it equals.
fn index_prefix_of(table: &[u8], column: &ColumnDef, value: &Value) -> Vec<u8> {
    let mut key = table.to_vec();
    key.extend_from_slice(b"/x/");
    key.extend_from_slice(column.name.as_bytes());
    key.push(b'/');
    let value = match value {
        Value::Float(x) if *x == 0.0 => &Value::Float(0.0),
        other => other,
    };
    hex(&mut key, &value_bytes(value));
    key.push(b'/');
    key
}

/// The record whose index entry is `entry`, found under `index_prefix`.
pub(super) fn indexed_record(prefix: &[u8], table: &TableDef, index_prefix: &[u8], entry: &[u8]) -> Option<RecordKeys> {
    let part = entry.strip_prefix(index_prefix)?;
    let mut keys = table_records(prefix, table);
    keys.extend_from_slice(part);
    Some(RecordKeys { prefix: keys })
}

/// The key of a table's schema.
pub(super) fn schema_key(prefix: &[u8], table: &TableDef) -> Vec<u8> {
    [prefix, table.name.as_bytes(), b"/schema"].concat()
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// Appends the encoding of `value`.
pub(super) fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Float(x) => {
            out.push(FLOAT);
            out.extend_from_slice(&x.to_bits().to_be_bytes());
        }
        Value::Text(s) => {
            out.push(TEXT);
            leb128::write(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(BYTES);
            leb128::write(out, b.len());
            out.extend_from_slice(b);
        }
    }
}

/// The encoding of one value (a version, a creation time).
pub(super) fn value_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    encode_value(&mut out, value);
    out
}

/// The encoding of a version: what a checked write compares the stored one with.
pub(super) fn version_bytes(version: u64) -> Vec<u8> {
    // Versions are at most `version_max` <= i64::MAX.
    value_bytes(&Value::Int(i64::try_from(version).unwrap_or(i64::MAX)))
}

/// Bounds of the encodings of the valid versions (integers 0..=i64::MAX): above `[INT]`, below
/// `[INT, 0x80]` (a negative integer's first byte is 0x80 or more). Any other stored value (NULL,
/// text, a float) falls outside.
pub(super) const VALID_VERSION_ABOVE: &[u8] = &[INT];
pub(super) const VALID_VERSION_BELOW: &[u8] = &[INT, 0x80];

/// Whether column `index` is stored in the row's key (not the version, not the creation time).
fn in_row(table: &TableDef, index: usize) -> bool {
    index != table.version && table.columns[index].role != ColumnRole::CreatedAt
}

/// The row's key's value: every column but the version and the creation time.
pub(super) fn row_bytes(table: &TableDef, row: &Row) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(ROW_FORMAT);
    let stored = (0..table.columns.len()).filter(|i| in_row(table, *i));
    leb128::write(&mut out, stored.clone().count());
    for index in stored {
        encode_value(&mut out, row.get(index).unwrap_or(&Value::Null));
    }
    out
}

/// Reads encoded values.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn eight(&mut self) -> Option<[u8; 8]> {
        self.take(8).and_then(|b| b.try_into().ok())
    }

    fn length(&mut self) -> Option<usize> {
        leb128::read(&mut self.bytes)
    }

    fn value(&mut self) -> std::result::Result<Value, &'static str> {
        const SHORT: &str = "the stored value ends early";
        Ok(match self.byte().ok_or(SHORT)? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => Value::Int(i64::from_be_bytes(self.eight().ok_or(SHORT)?)),
            FLOAT => Value::Float(f64::from_bits(u64::from_be_bytes(self.eight().ok_or(SHORT)?))),
            TEXT => {
                let n = self.length().ok_or(SHORT)?;
                let text = self.take(n).ok_or(SHORT)?;
                Value::Text(String::from_utf8(text.to_vec()).map_err(|_| "stored text is not UTF-8")?)
            }
            BYTES => {
                let n = self.length().ok_or(SHORT)?;
                Value::Bytes(self.take(n).ok_or(SHORT)?.to_vec())
            }
            _ => return Err("unknown value tag"),
        })
    }
}

/// Decodes one value of column `index`.
pub(super) fn decode_value(table: &TableDef, index: usize, bytes: &[u8]) -> Result<Value> {
    let mut reader = Reader { bytes };
    let value = reader.value().map_err(|reason| Error::decode(table, table.columns[index].name, reason))?;
    if !reader.bytes.is_empty() {
        return Err(Error::decode(table, table.columns[index].name, "trailing bytes after the value"));
    }
    Ok(value)
}

/// The row of a record from its keys' values: the row key's, the version's, and the creation
/// time's (NULL when the record has none stored).
pub(super) fn decode_row(table: &TableDef, row: &[u8], version: &[u8], created: Option<&[u8]>) -> Result<Row> {
    let mut reader = Reader { bytes: row };
    let first_stored = (0..table.columns.len()).find(|i| in_row(table, *i)).unwrap_or(table.key);
    let whole = |reason: &str| Error::decode(table, table.columns[first_stored].name, reason.to_owned());
    if reader.byte() != Some(ROW_FORMAT) {
        return Err(whole("the stored row is not in a format this version of versioned reads"));
    }
    let count = reader.length().ok_or_else(|| whole("the stored row ends early"))?;
    let stored = (0..table.columns.len()).filter(|i| in_row(table, *i)).count();
    if count != stored {
        return Err(whole(&format!(
            "the stored row has {count} columns besides its version, the struct {} has {stored}: \
             it was written by another struct (see the table's schema key)",
            table.entity
        )));
    }
    let mut values = Vec::with_capacity(table.columns.len());
    for index in 0..table.columns.len() {
        let value = if index == table.version {
            decode_value(table, index, version)?
        } else if table.columns[index].role == ColumnRole::CreatedAt {
            created.map(|c| decode_value(table, index, c)).transpose()?.unwrap_or(Value::Null)
        } else {
            reader.value().map_err(|reason| Error::decode(table, table.columns[index].name, reason))?
        };
        values.push(value);
    }
    Ok(Row::new(values))
}

/// A history entry's value (`#[versioned(history)]`): the format, whether it is a deletion, when
/// it was written (microseconds, big-endian), its place among the entries of its etcd transaction
/// (`seq`, big-endian), then every column's value, the version and the creation time included.
pub(super) fn history_bytes(table: &TableDef, row: &Row, deleted: bool, at: i64, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(ROW_FORMAT);
    out.push(u8::from(deleted));
    out.extend_from_slice(&at.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    leb128::write(&mut out, table.columns.len());
    for index in 0..table.columns.len() {
        encode_value(&mut out, row.get(index).unwrap_or(&Value::Null));
    }
    out
}

/// A history entry from its value ([`history_bytes`]), and its place in its transaction.
pub(super) fn decode_history(table: &TableDef, bytes: &[u8]) -> Result<(HistoryRow, u32)> {
    let mut reader = Reader { bytes };
    let broken = |reason: &str| Error::decode(table, "history_at", format!("a history entry: {reason}"));
    if reader.byte() != Some(ROW_FORMAT) {
        return Err(broken("not in a format this version of versioned reads"));
    }
    let deleted = reader.byte().ok_or_else(|| broken("ends early"))? != 0;
    let at = i64::from_be_bytes(reader.eight().ok_or_else(|| broken("ends early"))?);
    let seq =
        reader.take(4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes).ok_or_else(|| broken("ends early"))?;
    if reader.length() != Some(table.columns.len()) {
        return Err(broken(&format!("written by a struct of other columns than {}", table.entity)));
    }
    let mut values = Vec::with_capacity(table.columns.len());
    for column in table.columns {
        values.push(reader.value().map_err(|reason| Error::decode(table, column.name, reason))?);
    }
    Ok((HistoryRow { row: Row::new(values), deleted, recorded_at: at }, seq))
}

/// The schema `create_table` records: every column's name, type and nullability, and which are
/// the key and the version.
pub(super) fn schema(table: &TableDef) -> String {
    let columns: Vec<_> = table
        .columns
        .iter()
        .map(|c| {
            let mut column = serde_json::json!({"name": c.name, "type": format!("{:?}", c.ty), "nullable": c.nullable});
            // Only where set: an index's entries exist only if every struct writing the table
            // writes them, so a struct that differs here is refused like one with other columns.
            if c.indexed {
                column["indexed"] = serde_json::json!(true);
            }
            column
        })
        .collect();
    serde_json::json!({
        "entity": table.entity,
        "columns": columns,
        "key": table.key_column().name,
        "version": table.version_column().name,
    })
    .to_string()
}

/// The first column of `table` that the recorded schema does not have at the same place with the
/// same type (or the key's, when only the recorded schema has more columns).
pub(super) fn first_difference(table: &TableDef, recorded: &str) -> &'static str {
    let ours: serde_json::Value = serde_json::from_str(&schema(table)).unwrap_or_default();
    let theirs: serde_json::Value = serde_json::from_str(recorded).unwrap_or_default();
    let columns = |v: &serde_json::Value| v.get("columns").and_then(|c| c.as_array()).cloned().unwrap_or_default();
    let (ours, theirs) = (columns(&ours), columns(&theirs));
    (0..table.columns.len())
        .find(|i| ours.get(*i) != theirs.get(*i))
        .map_or(table.key_column().name, |i| table.columns[i].name)
}

/// Whether a recorded schema describes the same columns as `table` (the struct's name may differ).
pub(super) fn same_schema(table: &TableDef, recorded: &str) -> bool {
    let strip = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s).ok().map(|mut v| {
            if let Some(object) = v.as_object_mut() {
                object.remove("entity");
            }
            v
        })
    };
    strip(recorded).is_some_and(|r| Some(r) == strip(&schema(table)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::ColumnDef;
    use crate::value::ColumnType;

    static TABLE: TableDef = TableDef {
        name: "notes",
        entity: "Note",
        columns: &[
            ColumnDef {
                name: "id",
                field: "id",
                ty: ColumnType::Int64,
                nullable: false,
                role: ColumnRole::Key,
                indexed: false,
            },
            ColumnDef {
                name: "body",
                field: "body",
                ty: ColumnType::Text,
                nullable: true,
                role: ColumnRole::Data,
                indexed: false,
            },
            ColumnDef {
                name: "version",
                field: "version",
                ty: ColumnType::Int64,
                nullable: false,
                role: ColumnRole::Version,
                indexed: false,
            },
        ],
        key: 0,
        version: 2,
        version_max: i64::MAX as u64,
        history: None,
    };

    #[test]
    fn versions_compare_as_integers_and_only_valid_ones_fall_between_the_bounds() {
        let valid = [0u64, 1, 2, 255, 256, 1 << 40, i64::MAX as u64];
        for pair in valid.windows(2) {
            assert!(version_bytes(pair[0]) < version_bytes(pair[1]));
        }
        for v in valid {
            let bytes = version_bytes(v);
            assert!(bytes.as_slice() > VALID_VERSION_ABOVE && bytes.as_slice() < VALID_VERSION_BELOW, "{v}");
        }
        for invalid in [Value::Null, Value::Int(-1), Value::Int(i64::MIN), Value::Float(2.5), Value::Text("2".into())] {
            let bytes = value_bytes(&invalid);
            assert!(!(bytes.as_slice() > VALID_VERSION_ABOVE && bytes.as_slice() < VALID_VERSION_BELOW), "{invalid:?}");
        }
    }

    #[test]
    fn values_round_trip() {
        let table = &TABLE;
        for value in [
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(i64::MIN),
            Value::Float(-0.5),
            Value::Text("é/\u{0}".repeat(100)),
            Value::Bytes(vec![0, 255, 47]),
        ] {
            assert_eq!(decode_value(table, 1, &value_bytes(&value)).expect("decodes"), value);
        }
        assert!(decode_value(table, 1, &[TEXT, 5, b'a']).is_err(), "short text");
        assert!(decode_value(table, 1, &[9]).is_err(), "unknown tag");
    }

    #[test]
    fn rows_round_trip_through_their_three_keys_and_other_shapes_are_decode_errors() {
        let row = Row::new(vec![Value::Int(7), Value::Text("hi".into()), Value::Int(3)]);
        let bytes = row_bytes(&TABLE, &row);
        assert_eq!(decode_row(&TABLE, &bytes, &version_bytes(3), None).expect("decodes"), row);
        let shorter = [ROW_FORMAT, 1, INT, 0, 0, 0, 0, 0, 0, 0, 7];
        let err = decode_row(&TABLE, &shorter, &version_bytes(3), None).expect_err("one column short");
        assert!(matches!(err, Error::Decode { table: "notes", .. }), "{err:?}");
    }

    #[test]
    fn keys_are_self_delimiting_and_integers_sort() {
        let key = |v: Value| RecordKeys::new(b"p/", &TABLE, &v).expect("a key").prefix;
        assert_eq!(key(Value::Text("a/b".into())), b"p/notes/k/s612f62/".to_vec());
        assert!(key(Value::Int(-1)) < key(Value::Int(0)) && key(Value::Int(0)) < key(Value::Int(1)));
        assert!(!key(Value::Text("ab".into())).starts_with(&key(Value::Text("a".into()))));
        assert!(RecordKeys::new(b"p/", &TABLE, &Value::Float(1.0)).is_err());
    }
}
