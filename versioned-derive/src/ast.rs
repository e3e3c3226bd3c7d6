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
}

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
                } else if meta.path.is_ident("column") || meta.path.is_ident("json") {
                    return Err(meta.error(format!(
                        "`{}` is a field option: put it on a field's #[versioned(...)]",
                        path_name(&meta.path)
                    )));
                } else {
                    return Err(meta.error(format!(
                        "unknown versioned option `{}`; on a struct: `table = \"...\"`, `crate = path`",
                        path_name(&meta.path)
                    )));
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
        Some(Container { ident: &input.ident, vis: &input.vis, table, krate, fields })
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
                } else if meta.path.is_ident("json") {
                    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                        return Err(meta.error("`json` takes no value: write #[versioned(json)]"));
                    }
                    let word = meta.path.get_ident().cloned();
                    if let Some(word) = word {
                        set_once(cx, &mut json, word, "json");
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
                } else if meta.path.is_ident("table") || meta.path.is_ident("crate") {
                    return Err(meta.error(format!(
                        "`{}` is a struct option: put it on the struct's #[versioned(...)]",
                        path_name(&meta.path)
                    )));
                } else {
                    return Err(meta.error(format!(
                        "unknown versioned option `{}`; on a field: `column = \"...\"`, `json`, `created_at`, `updated_at`, `updated_by`",
                        path_name(&meta.path)
                    )));
                }
                Ok(())
            });
            if let Err(err) = parsed {
                cx.syn_error(err);
            }
        }
        Some(Field { ident, vis: &field.vis, ty: &field.ty, audit, key, version, column, json })
    }
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
