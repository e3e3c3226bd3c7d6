//! The [`Entity`] trait `#[derive(Versioned)]` implements, and the table description it carries.

use crate::error::Error;
use crate::patch::Patch;
use crate::revisions::HistoryDef;
use crate::value::{ColumnType, Field, KeyField, Row, Value, VersionField, from_json_value, json_text};

/// The storage description of an entity: its table and columns. Built by the derive.
#[derive(Debug)]
pub struct TableDef {
    /// The table name (`#[versioned(table = "...")]`, default: the struct name in snake_case).
    pub name: &'static str,
    /// The Rust struct's name, for messages.
    pub entity: &'static str,
    /// Every column, in the order of the struct's fields.
    pub columns: &'static [ColumnDef],
    /// Index in `columns` of the `#[key]` column.
    pub key: usize,
    /// Index in `columns` of the `#[version]` column.
    pub version: usize,
    /// The largest version the `#[version]` field can hold.
    pub version_max: u64,
    /// `#[versioned(history)]`: the history table every write also fills, and how much of it is
    /// kept (see [`revisions`](crate::revisions)).
    pub history: Option<HistoryDef>,
}

/// What a column is for, beyond holding its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// An ordinary field.
    Data,
    /// The `#[key]`.
    Key,
    /// The `#[version]`.
    Version,
    /// `#[versioned(created_at)]`: set by the store on insert, never changed by an update.
    CreatedAt,
    /// `#[versioned(updated_at)]`: set by the store on every write.
    UpdatedAt,
    /// `#[versioned(updated_by)]`: filled by the caller, stored with every write; conflicts report it.
    UpdatedBy,
}

/// One column of a [`TableDef`].
#[derive(Debug)]
pub struct ColumnDef {
    /// The column name (`#[versioned(column = "...")]`, default: the field name).
    pub name: &'static str,
    /// The Rust field's name.
    pub field: &'static str,
    /// The storage type.
    pub ty: ColumnType,
    /// Whether `NULL` is allowed (the field is an `Option`).
    pub nullable: bool,
    /// What the column is for.
    pub role: ColumnRole,
    /// `#[versioned(index)]`: `create_table` creates an index on the column.
    pub indexed: bool,
}

impl TableDef {
    /// The key column.
    pub fn key_column(&self) -> &'static ColumnDef {
        &self.columns[self.key]
    }

    /// The version column.
    pub fn version_column(&self) -> &'static ColumnDef {
        &self.columns[self.version]
    }

    /// The version stored in `row`, checked to be a non-negative integer.
    pub fn version_of(&self, row: &Row) -> Result<u64, Error> {
        let column = self.version_column().name;
        match row.get(self.version) {
            Some(Value::Int(v)) => {
                u64::try_from(*v).map_err(|_| Error::decode(self, column, format!("negative version {v}")))
            }
            Some(other) => {
                Err(Error::decode(self, column, format!("version must be an integer, found {}", other.describe())))
            }
            None => Err(Error::decode(self, column, "row has no version column")),
        }
    }

    /// Whether the store sets or keeps a timestamp of the table (`created_at`, `updated_at`).
    pub const fn has_timestamps(&self) -> bool {
        // A loop, not an iterator, so that it can be evaluated at compile time.
        let mut i = 0;
        while i < self.columns.len() {
            if matches!(self.columns[i].role, ColumnRole::CreatedAt | ColumnRole::UpdatedAt) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// The index of the column with `role`, if the table has one.
    pub fn column_with(&self, role: ColumnRole) -> Option<usize> {
        self.columns.iter().position(|c| c.role == role)
    }

    /// The key stored in `row`.
    pub fn key_of<'r>(&self, row: &'r Row) -> Result<&'r Value, Error> {
        row.get(self.key).ok_or_else(|| Error::decode(self, self.key_column().name, "row has no key column"))
    }
}

/// A struct stored as a versioned record. Implement it with `#[derive(Versioned)]`.
///
/// The trait only describes the struct: how it maps to a row, which field is the key and which
/// the version. All behaviour (checked writes, conflicts, retries) lives in
/// [`Store`](crate::Store) and works the same for every entity.
pub trait Entity: Sized + Send + Sync + 'static {
    /// The type of the `#[key]` field.
    type Key: KeyField;
    /// The type of the `#[version]` field.
    type Version: VersionField;
    /// The partial-update type the derive generates (`PersonPatch` for `Person`).
    type Patch: Patch<Entity = Self>;

    /// The table description.
    const TABLE: &'static TableDef;

    /// Whether [`to_row`](Self::to_row) succeeds for every value of the struct, its version
    /// aside (which the store checks itself): every field is [`Field::ALWAYS_STORABLE`](crate::Field::ALWAYS_STORABLE),
    /// none is JSON or text. False by default; the derive works it out. Only such records are
    /// kept as values by a backend that never converts them to rows to write them (memory), so
    /// that what it stores can always be read.
    const ROW_ALWAYS_ENCODES: bool = false;

    /// The key of this record.
    fn key(&self) -> &Self::Key;

    /// The version this copy of the record was read (or last written) at.
    fn version(&self) -> Self::Version;

    /// Sets the version; called by the store after a successful write.
    fn set_version(&mut self, version: Self::Version);

    /// Sets the field of column `index` from a stored value; the store uses it for the audit
    /// timestamps it sets.
    fn set_column(&mut self, index: usize, value: Value) -> Result<(), Error>;

    /// The record as a row, one value per column of [`Self::TABLE`].
    fn to_row(&self) -> Result<Row, Error>;

    /// The record from a row; `Error::Decode` names the column that does not fit.
    fn from_row(row: Row) -> Result<Self, Error>;

    /// A copy of the record, when its type is `Clone` (the derive decides). A backend that keeps
    /// records as values stores the copy itself instead of a row.
    fn copy(&self) -> Option<Self> {
        None
    }

    /// Copies the record into `dst` field by field, each with its type's `clone_from`, so that
    /// what `dst` holds is reused (a string's buffer) rather than allocated anew. Returns `false`,
    /// having copied nothing or only some fields, when a field's type is not `Clone` (the derive
    /// decides): `dst` is then to be discarded. A backend that keeps records as values copies into
    /// a record it replaced earlier.
    fn copy_into(&self, dst: &mut Self) -> bool {
        let _ = dst;
        false
    }
}

/// Decodes a stored value into a field for column `index`.
pub fn decode<F: Field>(table: &'static TableDef, index: usize, value: Value) -> Result<F, Error> {
    decoded(table, index, F::from_value(value))
}

/// Encodes one field for column `index` of `table`.
pub fn encode<F: Field>(table: &'static TableDef, index: usize, field: &F) -> Result<Value, Error> {
    encoded(table, index, field.to_value())
}

/// The outcome of a field's conversion to its stored value ([`Field::to_value`] or
/// [`JsonField::to_json`](crate::JsonField::to_json)), its error naming the table and the column `index`.
///
/// The generated `to_row` and patches call the conversion through the field's type
/// (`<T as Field>::to_value(&self.field)`) and this with its result: a type without the
/// conversion is then reported once, at the field's type, never at a bound of this function.
pub fn encoded(table: &'static TableDef, index: usize, converted: Result<Value, String>) -> Result<Value, Error> {
    converted.map_err(|reason| Error::encode(table, index, reason))
}

/// The outcome of a field's conversion from a stored value ([`Field::from_value`] or
/// [`JsonField::from_json`](crate::JsonField::from_json)), its error naming the table and the column `index`: what the
/// generated `from_row` and `set_column` do with each field (see [`encoded`]).
pub fn decoded<F>(table: &'static TableDef, index: usize, converted: Result<F, String>) -> Result<F, Error> {
    let column = table.columns.get(index).map_or("?", |c| c.name);
    converted.map_err(|reason| Error::decode(table, column, reason))
}

/// Encodes a `#[versioned(json)]` field as JSON text for column `index` of `table`.
pub fn encode_json<F: serde::Serialize>(table: &'static TableDef, index: usize, field: &F) -> Result<Value, Error> {
    encoded(table, index, json_text(field))
}

/// A row's values in column order, checked to be one per column of `table`: what the generated
/// `from_row` decodes, field by field (see [`decoded`]).
pub fn row_values(table: &'static TableDef, row: Row) -> Result<std::vec::IntoIter<Value>, Error> {
    if row.len() != table.columns.len() {
        return Err(Error::Decode {
            table: table.name,
            column: "*",
            reason: format!("row has {} values for {} columns", row.len(), table.columns.len()),
        });
    }
    Ok(row.into_values().into_iter())
}

/// Decodes a stored JSON document for column `index` into a serde type.
pub fn decode_json<F: serde::de::DeserializeOwned>(
    table: &'static TableDef,
    index: usize,
    value: Value,
) -> Result<F, Error> {
    decoded(table, index, from_json_value(value))
}
