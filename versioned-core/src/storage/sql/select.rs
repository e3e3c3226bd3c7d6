//! A query ([`Select`], [`Condition`]) as one SQL statement of a dialect. The condition is
//! rendered two-valued, as the contract defines it: a comparison of a nullable column is guarded
//! by `IS NOT NULL`, so that `NOT` negates it exactly. Text is compared as its column's collation
//! says; the tables `create_table` makes declare one that compares by code point.

use std::fmt::Write as _;

use super::Statements;
use super::rows::Bind;
use crate::entity::TableDef;
use crate::storage::select::{Comparison, Condition, Order, Select};
use crate::value::Value;

/// A statement and its values, bound by the type of the column each is compared with.
pub(crate) struct Rendered<'v> {
    pub sql: String,
    pub binds: Vec<Bind<'v>>,
}

impl Statements {
    /// `SELECT <every column> FROM t WHERE … ORDER BY … LIMIT n`, then `lock` (a `FOR UPDATE`
    /// clause) if given. `condition` is `select`'s, lowered.
    pub(crate) fn select<'v>(&self, condition: &'v Lowered, select: &Select, lock: Option<&str>) -> Rendered<'v> {
        let mut r = Renderer { statements: self, sql: String::new(), binds: Vec::new() };
        let _ = write!(r.sql, "SELECT {} FROM {}", self.read_list, self.table_name);
        r.where_clause(&condition.0);
        r.order_by(&select.order);
        if let Some(limit) = select.limit {
            // The databases take a signed 64-bit limit; no table holds more rows.
            let _ = write!(r.sql, " LIMIT {}", limit.min(i64::MAX as u64));
        }
        if let Some(lock) = lock {
            r.sql.push_str(lock);
        }
        Rendered { sql: r.sql, binds: r.binds }
    }

    /// `SELECT COUNT(*) FROM t WHERE …`.
    pub(crate) fn count<'v>(&self, condition: &'v Lowered) -> Rendered<'v> {
        let mut r = Renderer { statements: self, sql: String::new(), binds: Vec::new() };
        let _ = write!(r.sql, "SELECT COUNT(*) FROM {}", self.table_name);
        r.where_clause(&condition.0);
        Rendered { sql: r.sql, binds: r.binds }
    }
}

impl Statements {
    /// `UPDATE t SET <columns>, version = version + 1 WHERE <condition> AND <the version is valid
    /// and below its maximum>`.
    pub(crate) fn update_where<'v>(&self, condition: &'v Lowered, columns: &'v [(usize, Value)]) -> Rendered<'v> {
        let mut r = Renderer { statements: self, sql: String::new(), binds: Vec::new() };
        let _ = write!(r.sql, "UPDATE {} SET ", self.table_name);
        for (index, value) in columns {
            let placeholder = r.bind(*index, value);
            let _ = write!(r.sql, "{} = {placeholder}, ", self.quoted[*index]);
        }
        let version = &self.version;
        let _ = write!(r.sql, "{version} = {version} + 1");
        r.sql.push_str(" WHERE ");
        r.condition(&condition.0);
        let _ = write!(
            r.sql,
            " AND {} AND {version} < {}",
            self.dialect.valid_version(&format!("{}.{version}", self.table_name)),
            self.table.version_max
        );
        Rendered { sql: r.sql, binds: r.binds }
    }

    /// `DELETE FROM t WHERE <condition>`.
    pub(crate) fn delete_where<'v>(&self, condition: &'v Lowered) -> Rendered<'v> {
        let mut r = Renderer { statements: self, sql: String::new(), binds: Vec::new() };
        let _ = write!(r.sql, "DELETE FROM {}", self.table_name);
        r.where_clause(&condition.0);
        Rendered { sql: r.sql, binds: r.binds }
    }
}

struct Renderer<'s, 'v> {
    statements: &'s Statements,
    sql: String,
    binds: Vec<Bind<'v>>,
}

impl<'v> Renderer<'_, 'v> {
    fn table(&self) -> &'static TableDef {
        self.statements.table
    }

    fn where_clause(&mut self, condition: &'v Condition) {
        if !condition.is_all() {
            self.sql.push_str(" WHERE ");
            self.condition(condition);
        }
    }

    fn order_by(&mut self, order: &[Order]) {
        for (i, key) in order.iter().enumerate() {
            self.sql.push_str(if i == 0 { " ORDER BY " } else { ", " });
            self.sql.push_str(&self.statements.quoted[key.column]);
            self.sql.push_str(if key.descending { " DESC" } else { " ASC" });
            if self.table().columns[key.column].nullable {
                self.sql.push_str(self.statements.dialect.nulls_first(!key.descending));
            }
        }
    }

    /// The placeholder of `value`, bound for column `column`.
    fn bind(&mut self, column: usize, value: &'v Value) -> String {
        let table = self.table();
        self.binds.push(Bind { value, table, column: &table.columns[column] });
        self.statements.dialect.bind(self.binds.len(), table.columns[column].ty)
    }

    fn condition(&mut self, condition: &'v Condition) {
        match condition {
            Condition::Compare { column, op, value } => {
                self.guarded(*column, |r| {
                    let placeholder = r.bind(*column, value);
                    let _ = write!(r.sql, "{} {} {placeholder}", r.statements.quoted[*column], operator(*op));
                });
            }
            Condition::In { values, .. } if values.is_empty() => self.sql.push_str("1 = 0"),
            Condition::In { column, values } => {
                self.guarded(*column, |r| {
                    let _ = write!(r.sql, "{} IN (", r.statements.quoted[*column]);
                    for (i, value) in values.iter().enumerate() {
                        if i > 0 {
                            r.sql.push_str(", ");
                        }
                        let placeholder = r.bind(*column, value);
                        r.sql.push_str(&placeholder);
                    }
                    r.sql.push(')');
                });
            }
            Condition::IsNull { column } => {
                let _ = write!(self.sql, "{} IS NULL", self.statements.quoted[*column]);
            }
            // Not in a `Lowered` condition, the only kind rendered: `lower` made it a range of
            // text (which an index on the column can serve, where `LIKE`'s `%`, `_` and case rules
            // differ between databases).
            Condition::StartsWith { .. } => self.sql.push_str("1 = 0"),
            Condition::And(all) if all.is_empty() => self.sql.push_str("1 = 1"),
            Condition::Or(any) if any.is_empty() => self.sql.push_str("1 = 0"),
            Condition::And(all) => self.joined(all, " AND "),
            Condition::Or(any) => self.joined(any, " OR "),
            Condition::Not(inner) => {
                self.sql.push_str("NOT (");
                self.condition(inner);
                self.sql.push(')');
            }
        }
    }

    fn joined(&mut self, conditions: &'v [Condition], with: &str) {
        self.sql.push('(');
        for (i, c) in conditions.iter().enumerate() {
            if i > 0 {
                self.sql.push_str(with);
            }
            self.condition(c);
        }
        self.sql.push(')');
    }

    /// `atom`, false rather than `NULL` where the column is nullable.
    fn guarded(&mut self, column: usize, atom: impl FnOnce(&mut Self)) {
        if self.table().columns[column].nullable {
            let _ = write!(self.sql, "({} IS NOT NULL AND ", self.statements.quoted[column]);
            atom(self);
            self.sql.push(')');
        } else {
            atom(self);
        }
    }
}

fn operator(op: Comparison) -> &'static str {
    match op {
        Comparison::Eq => "=",
        Comparison::Ne => "<>",
        Comparison::Lt => "<",
        Comparison::Le => "<=",
        Comparison::Gt => ">",
        Comparison::Ge => ">=",
    }
}

/// A condition without `StartsWith`, the only kind the renderer takes: each is the range of text
/// it is (see [`prefix_range`]), bound as values of the column.
pub(crate) struct Lowered(Condition);

impl Lowered {
    pub(crate) fn new(condition: &Condition) -> Self {
        Lowered(lower(condition))
    }
}

fn lower(condition: &Condition) -> Condition {
    match condition {
        Condition::StartsWith { column, prefix } => {
            let (low, high) = prefix_range(prefix);
            let from = Condition::Compare { column: *column, op: Comparison::Ge, value: Value::Text(low) };
            match high {
                Some(high) => {
                    from.and(Condition::Compare { column: *column, op: Comparison::Lt, value: Value::Text(high) })
                }
                None => from,
            }
        }
        Condition::And(all) => Condition::And(all.iter().map(lower).collect()),
        Condition::Or(any) => Condition::Or(any.iter().map(lower).collect()),
        Condition::Not(inner) => Condition::Not(Box::new(lower(inner))),
        other => other.clone(),
    }
}

/// The texts starting with `prefix` are those from `prefix` (included) up to the returned upper
/// bound (excluded) in code point order; none when no text is above them all.
pub(crate) fn prefix_range(prefix: &str) -> (String, Option<String>) {
    let mut high: Vec<char> = prefix.chars().collect();
    while let Some(last) = high.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            high.push(next);
            return (prefix.to_owned(), Some(high.into_iter().collect()));
        }
    }
    (prefix.to_owned(), None)
}
