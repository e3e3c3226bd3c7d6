//! Parsing: the derive input and its attributes, into a typed model. No validation beyond what
//! parsing needs; [`crate::check`] judges the model.

use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Path, Token, Type, Visibility};

use crate::ctxt::Ctxt;

/// The struct being derived.
pub struct Container<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
    /// The struct's visibility, given to its patch type.
    pub vis: &'a Visibility,
    /// `#[versioned(table = "...")]`.
    pub table: Option<LitStr>,
    /// `#[versioned(crate = path)]`.
    pub krate: Option<Path>,
    /// `#[versioned(history)]` or `#[versioned(history(keep_… = N))]`.
    pub history: Option<History>,
    /// The named fields, in declaration order.
    pub fields: Vec<Field<'a>>,
}

/// One named field.
pub struct Field<'a> {
    /// The field's name.
    pub ident: &'a Ident,
    /// The field's visibility, given to its patch field.
    pub vis: &'a Visibility,
    /// The field's type.
    pub ty: &'a Type,
    /// `#[versioned(created_at)]`, `updated_at` or `updated_by`: the audit role, and its word.
    pub audit: Option<(Audit, Ident)>,
    /// The `#[key]` attribute, if present.
    pub key: Option<&'a Attribute>,
    /// The `#[version]` attribute, if present.
    pub version: Option<&'a Attribute>,
    /// `#[versioned(column = "...")]`.
    pub column: Option<LitStr>,
    /// The `json` word of `#[versioned(json)]`.
    pub json: Option<Ident>,
    /// The `text` word of `#[versioned(text)]`.
    pub text: Option<Ident>,
    /// The `index` word of `#[versioned(index)]`.
    pub index: Option<Ident>,
}

/// `#[versioned(history)]`: the struct keeps its version history.
pub struct History {
    /// `keep_versions = N`, `keep_seconds = N` or `keep_days = N`: the option's name and value.
    pub keep: Option<(Ident, syn::LitInt)>,
}

/// The retention options of `#[versioned(history(...))]`.
pub const HISTORY_OPTIONS: &[&str] = &["keep_versions", "keep_seconds", "keep_days"];

/// The audit roles a field can have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// Set by the store on insert.
    CreatedAt,
    /// Set by the store on every write.
    UpdatedAt,
    /// Filled by the caller, stored with every write.
    UpdatedBy,
}

impl Audit {
    fn from_word(path: &Path) -> Option<Self> {
        if path.is_ident("created_at") {
            Some(Audit::CreatedAt)
        } else if path.is_ident("updated_at") {
            Some(Audit::UpdatedAt)
        } else if path.is_ident("updated_by") {
            Some(Audit::UpdatedBy)
        } else {
            None
        }
    }
}

impl<'a> Container<'a> {
    /// Parses `input`; `None` (with errors in `cx`) when it is not a struct with named fields.
    pub fn from_ast(cx: &Ctxt, input: &'a DeriveInput) -> Option<Self> {
        let mut table = None;
        let mut krate = None;
        let mut history: Option<History> = None;
        for attr in versioned_attrs(&input.attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("table") {
                    let lit: LitStr = meta.value()?.parse()?;
                    set_once(cx, &mut table, lit, "table");
                } else if meta.path.is_ident("crate") {
                    let value = meta.value()?;
                    // Both `crate = some::path` and serde's `crate = "some::path"` read naturally.
                    let path = if value.peek(LitStr) { value.parse::<LitStr>()?.parse()? } else { value.parse()? };
                    set_once(cx, &mut krate, path, "crate");
                } else if meta.path.is_ident("history") {
                    let Some(word) = meta.path.get_ident().cloned() else { return Ok(()) };
                    let mut keep: Option<(Ident, syn::LitInt)> = None;
                    if meta.input.peek(syn::token::Paren) {
                        meta.parse_nested_meta(|option| {
                            let Some(name) = option.path.get_ident().cloned() else {
                                return Err(
                                    option.error("expected `keep_versions = N`, `keep_seconds = N` or `keep_days = N`")
                                );
                            };
                            if !HISTORY_OPTIONS.contains(&name.to_string().as_str()) {
                                return Err(unknown_option(
                                    &option,
                                    HISTORY_OPTIONS,
                                    "in `history(...)`: `keep_versions = N`, `keep_seconds = N`, `keep_days = N`",
                                ));
                            }
                            let value: syn::LitInt = option.value()?.parse()?;
                            if let Some((first, _)) = &keep {
                                cx.error_spanned_by(
                                    &name,
                                    format!("`{name}` with `{first}`: history keeps by one rule"),
                                );
                            } else {
                                keep = Some((name, value));
                            }
                            Ok(())
                        })?;
                    } else if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                        return Err(meta.error("write `history` or `history(keep_versions = N)`"));
                    }
                    if history.is_some() {
                        cx.error_spanned_by(&word, "duplicate `history` option");
                    } else {
                        history = Some(History { keep });
                    }
                } else if meta.path.is_ident("column") || meta.path.is_ident("json") || meta.path.is_ident("text") {
                    return Err(meta.error(format!(
                        "`{}` is a field option: put it on a field's #[versioned(...)]",
                        path_name(&meta.path)
                    )));
                } else {
                    return Err(unknown_option(
                        &meta,
                        STRUCT_OPTIONS,
                        "on a struct: `table = \"...\"`, `crate = path`, `history`",
                    ));
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
        for attr in &input.attrs {
            if attr.path().is_ident("key") || attr.path().is_ident("version") {
                cx.error_spanned_by(attr, "#[key] and #[version] go on fields, not on the struct");
            }
        }

        if let Some(param) = input.generics.params.first() {
            cx.error_spanned_by(
                param,
                "#[derive(Versioned)] does not support generic structs: an entity maps to one table",
            );
        }

        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named.named.iter().filter_map(|f| Field::from_ast(cx, f)).collect(),
                Fields::Unnamed(unnamed) => {
                    cx.error_spanned_by(
                        unnamed,
                        "#[derive(Versioned)] needs named fields: a tuple struct has no column names",
                    );
                    return None;
                }
                Fields::Unit => {
                    cx.error_spanned_by(
                        &input.ident,
                        "#[derive(Versioned)] needs named fields, with a #[key] and a #[version]: this is a unit struct",
                    );
                    return None;
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(
                    data.enum_token,
                    "#[derive(Versioned)] works on structs with named fields, not enums",
                );
                return None;
            }
            Data::Union(data) => {
                cx.error_spanned_by(
                    data.union_token,
                    "#[derive(Versioned)] works on structs with named fields, not unions",
                );
                return None;
            }
        };
        Some(Container { ident: &input.ident, vis: &input.vis, table, krate, history, fields })
    }
}

impl<'a> Field<'a> {
    fn from_ast(cx: &Ctxt, field: &'a syn::Field) -> Option<Self> {
        // Named fields always have an ident; `Fields::Named` is the only caller.
        let ident = field.ident.as_ref()?;
        let mut key = None;
        let mut version = None;
        let mut column = None;
        let mut json = None;
        let mut text = None;
        let mut index = None;
        let mut audit: Option<(Audit, Ident)> = None;
        for attr in &field.attrs {
            let marker = if attr.path().is_ident("key") {
                &mut key
            } else if attr.path().is_ident("version") {
                &mut version
            } else {
                continue;
            };
            if attr.meta.require_path_only().is_err() {
                cx.error_spanned_by(&attr.meta, format!("#[{}] takes no arguments", path_name(attr.path())));
            } else if marker.is_some() {
                cx.error_spanned_by(attr, format!("duplicate #[{}] on this field", path_name(attr.path())));
            } else {
                *marker = Some(attr);
            }
        }
        for attr in versioned_attrs(&field.attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("column") {
                    let lit: LitStr = meta.value()?.parse()?;
                    set_once(cx, &mut column, lit, "column");
                } else if meta.path.is_ident("json") || meta.path.is_ident("text") || meta.path.is_ident("index") {
                    let (slot, name) = if meta.path.is_ident("json") {
                        (&mut json, "json")
                    } else if meta.path.is_ident("text") {
                        (&mut text, "text")
                    } else {
                        (&mut index, "index")
                    };
                    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                        return Err(meta.error(format!("`{name}` takes no value: write #[versioned({name})]")));
                    }
                    let word = meta.path.get_ident().cloned();
                    if let Some(word) = word {
                        set_once(cx, slot, word, name);
                    }
                } else if let Some(role) = Audit::from_word(&meta.path) {
                    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                        return Err(meta.error("audit options take no value: write e.g. #[versioned(updated_at)]"));
                    }
                    let word = meta.path.get_ident().cloned();
                    if let Some(word) = word {
                        if audit.is_some() {
                            cx.error_spanned_by(&word, "a field has at most one of created_at, updated_at, updated_by");
                        } else {
                            audit = Some((role, word));
                        }
                    }
                } else if meta.path.is_ident("table") || meta.path.is_ident("crate") || meta.path.is_ident("history") {
                    return Err(meta.error(format!(
                        "`{}` is a struct option: put it on the struct's #[versioned(...)]",
                        path_name(&meta.path)
                    )));
                } else {
                    return Err(unknown_option(
                        &meta,
                        FIELD_OPTIONS,
                        "on a field: `column = \"...\"`, `json`, `text`, `index`, `created_at`, `updated_at`, `updated_by`",
                    ));
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
        Some(Field { ident, vis: &field.vis, ty: &field.ty, audit, key, version, column, json, text, index })
    }
}

/// The options of a struct's `#[versioned(...)]`.
const STRUCT_OPTIONS: &[&str] = &["table", "crate", "history"];

/// The options of a field's `#[versioned(...)]`.
const FIELD_OPTIONS: &[&str] = &["column", "json", "text", "index", "created_at", "updated_at", "updated_by"];

/// The error for an option that is none of `known`: the nearest one if it is a likely typo,
/// otherwise the list `all` of what the place accepts.
fn unknown_option(meta: &syn::meta::ParseNestedMeta<'_>, known: &[&str], all: &str) -> syn::Error {
    let name = path_name(&meta.path);
    match nearest(&name, known) {
        Some(near) => meta.error(format!("unknown versioned option `{name}`: did you mean `{near}`?")),
        None => meta.error(format!("unknown versioned option `{name}`; {all}")),
    }
}

/// The candidate nearest to `name` by edit distance, if it is near enough to be a typo of it: at
/// most one edit per three characters (rustc's rule for "a similar name exists").
fn nearest<'k>(name: &str, candidates: &[&'k str]) -> Option<&'k str> {
    let most = name.chars().count().max(3) / 3;
    candidates
        .iter()
        .map(|&candidate| (edit_distance(name, candidate), candidate))
        .filter(|&(distance, _)| distance <= most)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// The optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters (`tabel` is one edit from `table`) each count one.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // rows[i][j]: the distance between the first i characters of `a` and the first j of `b`.
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

fn versioned_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("versioned"))
}

fn set_once<T: quote::ToTokens>(cx: &Ctxt, slot: &mut Option<T>, value: T, name: &str) {
    if slot.is_some() {
        cx.error_spanned_by(&value, format!("duplicate versioned option `{name}`"));
    } else {
        *slot = Some(value);
    }
}

fn path_name(path: &Path) -> String {
    quote::ToTokens::to_token_stream(path).to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::{FIELD_OPTIONS, STRUCT_OPTIONS, edit_distance, nearest};

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("table", "table"), 0);
        assert_eq!(edit_distance("tabel", "table"), 1);
        assert_eq!(edit_distance("colum", "column"), 1);
        assert_eq!(edit_distance("jsn", "json"), 1);
        assert_eq!(edit_distance("", "json"), 4);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn typos_suggest_the_nearest_option_and_others_none() {
        assert_eq!(nearest("tabel", STRUCT_OPTIONS), Some("table"));
        assert_eq!(nearest("crat", STRUCT_OPTIONS), Some("crate"));
        assert_eq!(nearest("colum", FIELD_OPTIONS), Some("column"));
        assert_eq!(nearest("jsno", FIELD_OPTIONS), Some("json"));
        assert_eq!(nearest("txt", FIELD_OPTIONS), Some("text"));
        assert_eq!(nearest("update_at", FIELD_OPTIONS), Some("updated_at"));
        assert_eq!(nearest("createdat", FIELD_OPTIONS), Some("created_at"));
        assert_eq!(nearest("rename", FIELD_OPTIONS), None);
        assert_eq!(nearest("x", STRUCT_OPTIONS), None);
    }
}
