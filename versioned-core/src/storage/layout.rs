//! Where a struct's columns sit in the rows a backend keeps for its table, for backends that keep
//! rows themselves (memory): the table is laid out as the struct that created it, and another
//! struct on the same table (a narrower projection, a wider one, other column orders) reads and
//! writes through its [`Layout`], by column name.
//!
//! A write through a narrower struct keeps the stored values of the columns it does not have; an
//! insert through it leaves them `NULL`, and is refused when such a column is not nullable, as is
//! a `NULL` from an `Option` field into a column the table's struct does not make nullable. A
//! struct with a column the table lacks, or of another type, is refused before anything is
//! read or written (`Error::Decode` naming the column).

use crate::entity::TableDef;
use crate::error::{Error, Result};
use crate::storage::decisions::Decision;
use std::borrow::Cow;

use crate::storage::WriteOutcome;
use crate::value::{Row, Value};

/// A struct's columns in its table's rows.
#[derive(Debug)]
pub(crate) struct Layout {
    /// The definition the table's rows are laid out by.
    pub(crate) stored: &'static TableDef,
    /// For each column of the struct, its index in a stored row; `None` when the struct is laid
    /// out as the table is (the rows are used as they are).
    columns: Option<Box<[usize]>>,
}

impl Layout {
    /// The layout of `def`'s columns in rows laid out by `stored`.
    pub(crate) fn new(stored: &'static TableDef, def: &'static TableDef) -> Result<Self> {
        let same = stored.columns.len() == def.columns.len()
            && stored.key == def.key
            && stored.version == def.version
            && stored
                .columns
                .iter()
                .zip(def.columns)
                .all(|(s, d)| s.name == d.name && s.ty == d.ty && s.nullable == d.nullable);
        if same {
            return Ok(Layout { stored: def, columns: None });
        }
        let mut columns = Vec::with_capacity(def.columns.len());
        for (index, column) in def.columns.iter().enumerate() {
            let Some(at) = stored.columns.iter().position(|s| s.name == column.name) else {
                return Err(Error::decode(def, column.name, "the table has no such column"));
            };
            let found = &stored.columns[at];
            if found.ty != column.ty {
                return Err(Error::decode(
                    def,
                    column.name,
                    format!(
                        "the table's column holds {} (as created for {}), field `{}` is {}",
                        found.ty.describe(),
                        stored.entity,
                        column.field,
                        column.ty.describe()
                    ),
                ));
            }
            let role = |i: usize, table: &TableDef| {
                if i == table.key {
                    "the key"
                } else if i == table.version {
                    "the version"
                } else {
                    "a data column"
                }
            };
            if role(index, def) != role(at, stored) {
                return Err(Error::decode(
                    def,
                    column.name,
                    format!(
                        "the column is {} of the table but {} of {}",
                        role(at, stored),
                        role(index, def),
                        def.entity
                    ),
                ));
            }
            columns.push(at);
        }
        Ok(Layout { stored, columns: Some(columns.into()) })
    }

    /// Whether the struct is laid out as the table: its rows are the stored rows.
    pub(crate) fn is_identity(&self) -> bool {
        self.columns.is_none()
    }

    /// A stored row as the struct's row, borrowed when the struct is laid out as the table.
    pub(crate) fn view<'r>(&self, stored: Cow<'r, Row>) -> Cow<'r, Row> {
        if self.is_identity() { stored } else { Cow::Owned(self.read(stored.into_owned())) }
    }

    /// A stored row as the struct's row.
    pub(crate) fn read(&self, stored: Row) -> Row {
        match &self.columns {
            None => stored,
            Some(columns) => {
                Row::new(columns.iter().map(|at| stored.get(*at).cloned().unwrap_or(Value::Null)).collect())
            }
        }
    }

    /// What a write of the struct's `row` stores over `stored` (`None`: a new record): the
    /// struct's columns replaced, the others kept; `NULL` in a new record, or refused where
    /// the table's column is not nullable.
    pub(crate) fn write(&self, stored: Option<&Row>, row: Row) -> Result<Row> {
        let Some(columns) = &self.columns else { return Ok(row) };
        let mut out = match stored {
            Some(stored) => stored.clone(),
            None => {
                for (at, column) in self.stored.columns.iter().enumerate() {
                    if !column.nullable && !columns.contains(&at) {
                        return Err(Error::decode(
                            self.stored,
                            column.name,
                            "a new record written through a struct without this column would leave it empty, \
                             and the column is not nullable",
                        ));
                    }
                }
                Row::new(vec![Value::Null; self.stored.columns.len()])
            }
        };
        for (value, at) in row.into_values().into_iter().zip(columns.iter()) {
            let column = &self.stored.columns[*at];
            if value == Value::Null && !column.nullable {
                // What a SQL table's `NOT NULL` refuses: the table's own struct could not read it.
                return Err(Error::Encode {
                    table: self.stored.name,
                    column: column.name,
                    reason: format!("the table's column is not nullable (as created for {})", self.stored.entity),
                });
            }
            out.set(*at, value);
        }
        Ok(out)
    }

    /// A decision made on the struct's view of a record, as a decision on the stored row.
    pub(crate) fn decide(
        &self,
        stored: Option<&Row>,
        decide: impl FnOnce(Option<&Row>) -> Result<Decision>,
    ) -> Result<Decision> {
        if self.columns.is_none() {
            return decide(stored);
        }
        let view = stored.map(|row| self.read(row.clone()));
        Ok(match decide(view.as_ref())? {
            Decision::Write(row) => Decision::Write(self.write(stored, row)?),
            other => other,
        })
    }

    /// What a write did, with a refusal's stored row as the struct's row.
    pub(crate) fn written(&self, written: WriteOutcome) -> WriteOutcome {
        match written {
            WriteOutcome::Rejected { current: Some(row) } => WriteOutcome::Rejected { current: Some(self.read(row)) },
            other => other,
        }
    }
}
