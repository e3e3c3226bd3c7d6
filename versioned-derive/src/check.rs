//! Validation: judges the parsed model and resolves names, producing what [`crate::expand`] needs.

use proc_macro2::Span;
use syn::{Ident, Path, Type, Visibility};

use crate::ast::{Audit, Container, Field};
use crate::ctxt::Ctxt;

/// A validated entity: every name resolved, exactly one key and one version.
pub struct Model<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
    /// The struct's visibility.
    pub vis: &'a Visibility,
    /// The table name.
    pub table: String,
    /// The path of the `versioned` crate.
    pub krate: Path,
    /// One column per field, in declaration order.
    pub columns: Vec<Column<'a>>,
    /// Index of the key column.
    pub key: usize,
    /// Index of the version column.
    pub version: usize,
    /// `#[versioned(history)]`: the history table's name and how much it keeps.
    pub history: Option<(String, Keep)>,
}

/// How much history a struct keeps (`Retention` in the runtime).
pub enum Keep {
    /// Everything.
    All,
    /// The last N versions.
    Versions(u64),
    /// N seconds.
    Seconds(u64),
}

/// The history table's own columns: no field may be stored under these names.
const HISTORY_COLUMNS: &[&str] = &["history_id", "history_deleted", "history_at"];

/// A validated field.
pub struct Column<'a> {
    /// The field's name.
    pub ident: &'a Ident,
    /// The field's visibility.
    pub vis: &'a Visibility,
    /// The field's type.
    pub ty: &'a Type,
    /// The column name.
    pub name: String,
    /// How the field is stored.
    pub repr: Repr,
    /// What the column is for.
    pub role: Role,
    /// `#[versioned(index)]`: `create_table` indexes the column.
    pub indexed: bool,
}

/// How a field is stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// Through the field type's own `Field` mapping.
    Field,
    /// `#[versioned(json)]`: as a JSON document (`JsonField`).
    Json,
    /// `#[versioned(text)]`: as text (`TextField`); nullable when the field is written `Option<…>`.
    Text {
        /// Whether the column accepts `NULL`.
        nullable: bool,
    },
}

/// A column's role, as the runtime's `ColumnRole` names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An ordinary field.
    Data,
    /// The key.
    Key,
    /// The version.
    Version,
    /// An audit field.
    Audit(Audit),
}

impl Role {
    /// The runtime's name of the role.
    pub fn name(self) -> &'static str {
        match self {
            Role::Data => "Data",
            Role::Key => "Key",
            Role::Version => "Version",
            Role::Audit(Audit::CreatedAt) => "CreatedAt",
            Role::Audit(Audit::UpdatedAt) => "UpdatedAt",
            Role::Audit(Audit::UpdatedBy) => "UpdatedBy",
        }
    }

    /// Whether a partial update can set the column (timestamps are the store's).
    pub fn patchable(self) -> bool {
        matches!(self, Role::Data | Role::Audit(Audit::UpdatedBy))
    }
}

/// The integer types a `#[version]` may have, as written.
const VERSION_TYPES: &[&str] = &["u64", "u32", "u16", "u8", "i64", "i32", "i16", "i8"];

/// The longest identifier every supported database accepts (PostgreSQL's 63 bytes).
const MAX_IDENTIFIER: usize = 63;

/// Validates `c`, recording every problem in `cx`. `None` when there was any.
pub fn check<'a>(cx: &Ctxt, c: Container<'a>) -> Option<Model<'a>> {
    let key = single_marker(cx, &c, "key", |f| f.key.is_some());
    let version = single_marker(cx, &c, "version", |f| f.version.is_some());

    for field in &c.fields {
        if let (Some(_), Some(version_attr)) = (field.key, field.version) {
            cx.error_spanned_by(version_attr, "a field cannot be both the #[key] and the #[version]");
        }
        if let Some(json) = &field.json
            && (field.key.is_some() || field.version.is_some())
        {
            cx.error_spanned_by(json, "#[versioned(json)] cannot go on the #[key] or the #[version]");
        }
        if let Some(text) = &field.text {
            if field.key.is_some() || field.version.is_some() {
                cx.error_spanned_by(text, "#[versioned(text)] cannot go on the #[key] or the #[version]");
            }
            if field.json.is_some() {
                cx.error_spanned_by(
                    text,
                    "a field is stored as JSON or as text, not both: choose #[versioned(json)] or #[versioned(text)]",
                );
            }
        }
        if let Some(index) = &field.index {
            if field.key.is_some() {
                cx.error_spanned_by(index, "the #[key] is indexed already (it is the primary key): remove `index`");
            }
            if field.json.is_some() {
                cx.error_spanned_by(index, "a JSON document has no order to index: remove `index` or `json`");
            }
        }
        if let Some((_, word)) = &field.audit {
            if field.key.is_some() || field.version.is_some() {
                cx.error_spanned_by(word, format!("`{word}` cannot go on the #[key] or the #[version]"));
            }
            for other in [&field.json, &field.text].into_iter().flatten() {
                cx.error_spanned_by(word, format!("`{word}` cannot be combined with `{other}`"));
            }
        }
        if field.version.is_some() && !is_integer(field.ty) {
            cx.error_spanned_by(
                field.ty,
                format!(
                    "a #[version] field must be an integer ({}), not `{}`",
                    VERSION_TYPES.join(", "),
                    type_name(field.ty)
                ),
            );
        }
    }

    for (i, field) in c.fields.iter().enumerate() {
        let Some((role, word)) = &field.audit else { continue };
        if let Some(first) = c.fields[..i].iter().find(|f| f.audit.as_ref().is_some_and(|(r, _)| r == role)) {
            cx.error_spanned_by(word, format!("duplicate `{word}`: `{}` already is the {word} field", first.ident));
        }
    }

    let table = match &c.table {
        Some(lit) => {
            let name = lit.value();
            check_identifier(cx, &name, lit.span(), "table");
            name
        }
        None => snake_case(&unraw(c.ident)),
    };

    let mut columns: Vec<Column<'a>> = Vec::with_capacity(c.fields.len());
    for field in &c.fields {
        let name = match &field.column {
            Some(lit) => {
                let name = lit.value();
                check_identifier(cx, &name, lit.span(), "column");
                name
            }
            None => unraw(field.ident),
        };
        if let Some(first) = columns.iter().find(|col| col.name.eq_ignore_ascii_case(&name)) {
            let at = field.column.as_ref().map_or(field.ident.span(), syn::LitStr::span);
            cx.syn_error(syn::Error::new(
                at,
                format!(
                    "column `{name}` is already used by field `{}`; give one of them #[versioned(column = \"...\")]",
                    first.ident
                ),
            ));
        }
        let role = if field.key.is_some() {
            Role::Key
        } else if field.version.is_some() {
            Role::Version
        } else if let Some((audit, _)) = field.audit {
            Role::Audit(audit)
        } else {
            Role::Data
        };
        let repr = if field.json.is_some() {
            Repr::Json
        } else if field.text.is_some() {
            Repr::Text { nullable: is_option(field.ty) }
        } else {
            Repr::Field
        };
        columns.push(Column {
            ident: field.ident,
            vis: field.vis,
            ty: field.ty,
            name,
            repr,
            role,
            indexed: field.index.is_some(),
        });
    }

    // A JSON field `f` has the patch setter `f_merge` beside `f`: no other patch setter may have
    // that name.
    for json in columns.iter().filter(|c| c.repr == Repr::Json && c.role.patchable()) {
        let merge = format!("{}_merge", unraw(json.ident));
        if let Some(clash) = columns.iter().find(|c| c.role.patchable() && unraw(c.ident) == merge) {
            cx.error_spanned_by(
                clash.ident,
                format!(
                    "field `{merge}` has the name of the patch setter that merges into the JSON field `{}` (`{merge}`): rename one of them",
                    json.ident
                ),
            );
        }
    }

    let history = c.history.as_ref().map(|history| {
        for column in columns.iter().filter(|c| HISTORY_COLUMNS.contains(&c.name.as_str())) {
            cx.error_spanned_by(
                column.ident,
                format!(
                    "column `{}` is one of the history table's own columns ({}): store the field under another name with #[versioned(column = \"...\")]",
                    column.name,
                    HISTORY_COLUMNS.join(", ")
                ),
            );
        }
        let keep = match &history.keep {
            None => Keep::All,
            Some((name, value)) => match value.base10_parse::<u64>() {
                Err(err) => {
                    cx.syn_error(err);
                    Keep::All
                }
                Ok(0) => {
                    cx.error_spanned_by(value, format!("`{name} = 0` would keep nothing: leave out `history` instead"));
                    Keep::All
                }
                Ok(n) if name == "keep_versions" => Keep::Versions(n),
                Ok(n) if name == "keep_days" => match n.checked_mul(86_400) {
                    Some(seconds) => Keep::Seconds(seconds),
                    None => {
                        cx.error_spanned_by(value, "too many days");
                        Keep::All
                    }
                },
                Ok(n) => Keep::Seconds(n),
            },
        };
        (format!("{table}_history"), keep)
    });
    let krate = c.krate.clone().unwrap_or_else(|| syn::parse_quote!(::versioned));
    Some(Model { ident: c.ident, vis: c.vis, table, krate, columns, key: key?, version: version?, history })
}

/// The index of the one field marked `#[name]`; records an error for none or several.
fn single_marker(cx: &Ctxt, c: &Container<'_>, name: &str, marked: impl Fn(&Field<'_>) -> bool) -> Option<usize> {
    let mut found = c.fields.iter().enumerate().filter(|(_, f)| marked(f));
    let Some((index, first)) = found.next() else {
        let what =
            if name == "key" { "the field that identifies a record" } else { "an integer field that counts writes" };
        cx.error_spanned_by(c.ident, format!("missing #[{name}]: mark {what} with #[{name}]"));
        return None;
    };
    let mut ok = true;
    for (_, again) in found {
        let attr = if name == "key" { again.key } else { again.version };
        let message =
            format!("duplicate #[{name}]: `{}` is already the {name}; an entity has exactly one", first.ident);
        match attr {
            Some(attr) => cx.error_spanned_by(attr, message),
            None => cx.error_spanned_by(again.ident, message),
        }
        ok = false;
    }
    ok.then_some(index)
}

fn is_integer(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().is_some_and(|s| s.arguments.is_none() && VERSION_TYPES.iter().any(|t| s.ident == t))
        }
        Type::Group(g) => is_integer(&g.elem),
        Type::Paren(p) => is_integer(&p.elem),
        _ => false,
    }
}

/// Whether `ty` is written as an `Option<…>` (`Option`, `std::option::Option`, …): a type alias
/// of one is not seen as one.
fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|s| {
            s.ident == "Option"
                && matches!(&s.arguments, syn::PathArguments::AngleBracketed(args) if args.args.len() == 1)
        }),
        Type::Group(g) => is_option(&g.elem),
        Type::Paren(p) => is_option(&p.elem),
        _ => false,
    }
}

fn type_name(ty: &Type) -> String {
    quote::ToTokens::to_token_stream(ty).to_string().replace(" < ", "<").replace(" >", ">").replace(" :: ", "::")
}

fn check_identifier(cx: &Ctxt, name: &str, span: Span, what: &str) {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_IDENTIFIER;
    if !valid {
        cx.syn_error(syn::Error::new(
            span,
            format!(
                "`{name}` is not a valid {what} name: use ASCII letters, digits and `_`, not starting with a digit, at most {MAX_IDENTIFIER} characters"
            ),
        ));
    }
}

fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

/// `BugReport` -> `bug_report`, `HTTPServer` -> `http_server`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{is_option, snake_case};

    #[test]
    fn options_as_written() {
        for option in ["Option<Status>", "std::option::Option<Status>", "::core::option::Option<Status>"] {
            assert!(is_option(&syn::parse_str(option).expect("a type")), "{option}");
        }
        for other in ["Status", "Vec<Status>", "MaybeStatus", "Option"] {
            assert!(!is_option(&syn::parse_str(other).expect("a type")), "{other}");
        }
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("Person"), "person");
        assert_eq!(snake_case("BugReport"), "bug_report");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Counter2"), "counter2");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }
}
