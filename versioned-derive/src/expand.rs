//! Generation: the `Entity` implementation and the inherent helpers, from a validated model.
//!
//! The generated code only describes the struct and delegates; all behaviour lives in the
//! runtime, so it is written and tested once.
//!
//! One error per mistake: every use of a field's type through a trait is written as a qualified
//! path on the type's own tokens (`<T as __v::Field>::to_value`), never as a call to a generic
//! function bounded by the trait. A type without the trait then gets the same error, at the same
//! span (the whole type, as written), from every use, and rustc reports it once, with the trait's
//! own message and no note pointing at a helper's bound inside the runtime or the derive.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::ast::Audit;
use crate::check::{Column, Keep, Model, Repr, Role};

/// The tokens for `model`.
pub fn expand(model: &Model<'_>) -> TokenStream {
    let krate = &model.krate;
    let ident = model.ident;
    let table = &model.table;
    let entity = ident.to_string();
    let key_index = model.key;
    let version_index = model.version;
    let key = &model.columns[model.key];
    let version = &model.columns[model.version];
    let (key_field, key_ty) = (key.ident, key.ty);
    let (version_field, version_ty) = (version.ident, version.ty);

    let history = match &model.history {
        None => quote!(::core::option::Option::None),
        Some((name, keep)) => {
            let keep = match keep {
                Keep::All => quote!(__v::Retention::All),
                Keep::Versions(n) => quote!(__v::Retention::Versions(#n)),
                Keep::Seconds(n) => quote!(__v::Retention::Seconds(#n)),
            };
            quote!(::core::option::Option::Some(__v::HistoryDef { table: #name, keep: #keep }))
        }
    };
    let with_history = model.history.as_ref().map(|_| {
        quote! {
            #[automatically_derived]
            impl __v::WithHistory for #ident {}
        }
    });

    let column_defs = model.columns.iter().map(|c| {
        let name = &c.name;
        let field = c.ident.to_string();
        let ty = c.ty;
        let role = format_ident!("{}", c.role.name());
        let (column_ty, nullable) = match c.repr {
            Repr::Json => (quote!(__v::ColumnType::Json), quote!(false)),
            Repr::Text { nullable } => (quote!(__v::ColumnType::Text), quote!(#nullable)),
            Repr::Field => (quote!(<#ty as __v::Field>::TYPE), quote!(<#ty as __v::Field>::NULLABLE)),
        };
        let indexed = c.indexed;
        quote!(__v::ColumnDef {
            name: #name, field: #field, ty: #column_ty, nullable: #nullable, role: __v::ColumnRole::#role,
            indexed: #indexed,
        })
    });

    // Whether every field but the version always converts to its stored value (see
    // `Entity::ROW_ALWAYS_ENCODES`): JSON and text never count, the version is checked apart.
    let always_encodes = model.columns.iter().enumerate().filter(|(i, _)| *i != model.version).map(|(_, c)| {
        let ty = c.ty;
        match c.repr {
            Repr::Field => quote!(<#ty as __v::Field>::ALWAYS_STORABLE),
            Repr::Json | Repr::Text { .. } => quote!(false),
        }
    });

    // Audit fields must have a type the store can fill: checked at the type, with its own message.
    let audit_checks = model.columns.iter().filter_map(|c| {
        let ty = c.ty;
        let bound = match c.role {
            Role::Audit(Audit::CreatedAt | Audit::UpdatedAt) => quote!(__v::TimestampField),
            Role::Audit(Audit::UpdatedBy) => quote!(__v::UserField),
            _ => return None,
        };
        Some(quote!(const _: () = <#ty as #bound>::CHECK;))
    });

    let set_columns = model.columns.iter().enumerate().map(|(i, c)| {
        let field = c.ident;
        let decode = decode(c, quote!(value));
        quote!(#i => self.#field = __v::decoded(Self::TABLE, #i, #decode)?)
    });

    let patch_ident = format_ident!("{}Patch", ident);
    let patch_name = patch_ident.to_string();
    let vis = model.vis;
    let patchable: Vec<_> = model.columns.iter().enumerate().filter(|(_, c)| c.role.patchable()).collect();
    let patch_idents: Vec<_> = patchable.iter().map(|(_, c)| c.ident).collect();
    let patch_names = patchable.iter().map(|(_, c)| unraw(c.ident));
    // Each patch field's type: `None` keeps the stored value.
    let patch_tys: Vec<_> = patchable
        .iter()
        .map(|(_, c)| {
            let ty = c.ty;
            match c.repr {
                Repr::Json => quote!(::core::option::Option<#krate::JsonChange<#ty>>),
                Repr::Field | Repr::Text { .. } => quote!(::core::option::Option<#ty>),
            }
        })
        .collect();
    let patch_fields = patchable.iter().zip(&patch_tys).map(|((_, c), patch_ty)| {
        let (field, field_vis) = (c.ident, c.vis);
        let (doc, deserialize) = if c.repr == Repr::Json {
            let doc = format!(
                "`Some(JsonChange::Set(value))` replaces `{field}`, `Some(JsonChange::Merge(doc))` merges `doc` into \
                 the stored document at every level; `None` keeps it."
            );
            (doc, format!("{}::__private::json_set", path_string(krate)))
        } else {
            let doc = format!("`Some` sets `{field}`; `None` keeps the stored value.");
            (doc, format!("{}::__private::present", path_string(krate)))
        };
        quote!(#[doc = #doc] #[serde(deserialize_with = #deserialize)] #field_vis #field: #patch_ty)
    });
    let patch_setters = patchable.iter().map(|(_, c)| {
        let (field, field_vis, ty) = (c.ident, c.vis, c.ty);
        if c.repr == Repr::Json {
            let merge = format_ident!("{}_merge", field);
            let doc = format!("Sets `{field}` whole.");
            let merge_doc = format!(
                "Merges the JSON document `doc` into the stored `{field}`, objects key by key at every level \
                 (keys are never deleted); the result must still be a `{}`.",
                type_name(ty)
            );
            quote! {
                #[doc = #doc]
                #[must_use]
                #field_vis fn #field(mut self, value: impl ::core::convert::Into<#ty>) -> Self {
                    self.#field = ::core::option::Option::Some(#krate::JsonChange::Set(value.into()));
                    self
                }

                #[doc = #merge_doc]
                #[must_use]
                #field_vis fn #merge(mut self, doc: #krate::JsonValue) -> Self {
                    self.#field = ::core::option::Option::Some(#krate::JsonChange::Merge(doc));
                    self
                }
            }
        } else {
            let doc = format!("Sets `{field}`.");
            quote!(#[doc = #doc] #[must_use] #field_vis fn #field(mut self, value: impl ::core::convert::Into<#ty>) -> Self {
                self.#field = ::core::option::Option::Some(value.into());
                self
            })
        }
    });
    let patch_changes = patchable.iter().map(|(i, c)| {
        let (field, ty) = (c.ident, c.ty);
        if c.repr == Repr::Json {
            quote!(if let ::core::option::Option::Some(change) = self.#field {
                changes.push(__v::__private::json_change(<#ident as __v::Entity>::TABLE, #i, change, |value| <#ty as __v::JsonField>::to_json(value))?);
            })
        } else {
            let encode = encode(c, quote!(value));
            quote!(if let ::core::option::Option::Some(value) = &self.#field {
                let value = __v::encoded(<#ident as __v::Entity>::TABLE, #i, #encode)?;
                changes.push(__v::Change { column: #i, value: __v::ChangeValue::Set(value) });
            })
        }
    });
    let patch_doc = format!(
        "A partial update of [`{ident}`]: the fields set are written, the others keep their stored values. \
         Pass it to `Store::patch`. Generated by `#[derive(Versioned)]`.\n\n\
         It is `Debug`, `Clone` and serde's `Deserialize` (from a `PATCH` body: an absent field is kept, \
         `null` sets an `Option` field to `None`) whenever its fields' types are."
    );
    // serde's derive, through the runtime's serde: the user's crate need not depend on serde. The
    // bounds, with `'de` in them, are checked where the impl is used, so a field type that is not
    // `Deserialize` (a `Uuid` without uuid's `serde`) leaves the patch without the impl.
    let serde_path = format!("{}::__private::serde", path_string(krate));
    let deserialize_bounds = patchable
        .iter()
        .map(|(_, c)| {
            let ty = c.ty;
            format!("{}: {serde_path}::Deserialize<'de>", quote!(#ty))
        })
        .collect::<Vec<_>>()
        .join(", ");

    let encodes = model.columns.iter().enumerate().map(|(i, c)| {
        let field = c.ident;
        let encode = encode(c, quote!(&self.#field));
        quote!(__v::encoded(Self::TABLE, #i, #encode)?)
    });

    // `row_values` checked there is one value per column, so `next()` always has one.
    let decodes = model.columns.iter().enumerate().map(|(i, c)| {
        let field = c.ident;
        let decode = decode(c, quote!(__values.next().unwrap_or(__v::Value::Null)));
        quote!(#field: __v::decoded(Self::TABLE, #i, #decode)?)
    });

    // A typed handle per field for queries (`Bug::STATUS`), encoding values as the field is
    // stored; JSON fields have none (a document has no order).
    let handles = model.columns.iter().enumerate().filter(|(_, c)| c.repr != Repr::Json).map(|(i, c)| {
        let ty = c.ty;
        let name = format_ident!("{}", unraw(c.ident).to_uppercase(), span = c.ident.span());
        let doc = format!(
            "The `{}` field, for queries: `{ident}::find(&store).filter({ident}::{name}.eq(…))`.",
            unraw(c.ident)
        );
        let encode = encode(c, quote!(value));
        quote! {
            #[doc = #doc]
            #[allow(dead_code)]
            #vis const #name: __v::query::Column<Self, #ty> = __v::query::Column::new(#i, |value: &#ty| #encode);
        }
    });

    let field_idents: Vec<_> = model.columns.iter().map(|c| c.ident).collect();
    let field_tys = model.columns.iter().map(|c| c.ty);
    let copiers: Vec<_> = (0..model.columns.len()).map(|i| format_ident!("__copy{}", i)).collect();

    quote! {
        #[doc = #patch_doc]
        #[derive(::core::default::Default, #krate::__private::serde::Deserialize)]
        #[serde(crate = #serde_path, default, deny_unknown_fields, bound(deserialize = #deserialize_bounds))]
        #vis struct #patch_ident {
            #(#patch_fields,)*
        }

        #[allow(clippy::needless_update)]
        impl #patch_ident {
            #(#patch_setters)*
        }

        #[allow(non_local_definitions, clippy::needless_question_mark)]
        const _: () = {
            use #krate as __v;

            #(#audit_checks)*

            // `Clone` and `Debug` whenever every field's type is: bounds with a lifetime in them are
            // checked where the impl is used, not here (see `versioned_core::__private::CloneField`).
            #[automatically_derived]
            impl<'__p> ::core::clone::Clone for #patch_ident where #(#patch_tys: __v::__private::CloneField<'__p>,)* {
                fn clone(&self) -> Self {
                    Self { #(#patch_idents: __v::__private::CloneField::clone_field(&self.#patch_idents),)* }
                }
            }

            #[automatically_derived]
            impl<'__p> ::core::fmt::Debug for #patch_ident where #(#patch_tys: __v::__private::DebugField<'__p>,)* {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#patch_name)
                        #(.field(#patch_names, &__v::__private::FieldDebug::new(&self.#patch_idents)))*
                        .finish()
                }
            }

            #[automatically_derived]
            impl __v::Patch for #patch_ident {
                type Entity = #ident;

                fn into_changes(self) -> ::core::result::Result<::std::vec::Vec<__v::Change>, __v::Error> {
                    #[allow(unused_mut)]
                    let mut changes = ::std::vec::Vec::new();
                    #(#patch_changes)*
                    ::core::result::Result::Ok(changes)
                }
            }

            #with_history

            #[automatically_derived]
            impl __v::Entity for #ident {
                type Key = #key_ty;
                type Version = #version_ty;
                type Patch = #patch_ident;

                const TABLE: &'static __v::TableDef = &__v::TableDef {
                    name: #table,
                    entity: #entity,
                    columns: &[#(#column_defs),*],
                    key: #key_index,
                    version: #version_index,
                    version_max: <#version_ty as __v::VersionField>::MAX,
                    history: #history,
                };

                const ROW_ALWAYS_ENCODES: bool = true #(&& #always_encodes)*;

                fn key(&self) -> &Self::Key {
                    &self.#key_field
                }

                fn version(&self) -> Self::Version {
                    self.#version_field
                }

                fn set_version(&mut self, version: Self::Version) {
                    self.#version_field = version;
                }

                fn set_column(&mut self, index: usize, value: __v::Value) -> ::core::result::Result<(), __v::Error> {
                    match index {
                        #(#set_columns,)*
                        _ => return ::core::result::Result::Err(__v::Error::Decode {
                            table: Self::TABLE.name,
                            column: "*",
                            reason: ::std::format!("no column {index}"),
                        }),
                    }
                    ::core::result::Result::Ok(())
                }

                fn to_row(&self) -> ::core::result::Result<__v::Row, __v::Error> {
                    ::core::result::Result::Ok(__v::Row::new(::std::vec![#(#encodes),*]))
                }

                fn copy(&self) -> ::core::option::Option<Self> {
                    // A clone if the struct is `Clone`, `None` otherwise (see `versioned_core::copy`).
                    #[allow(unused_imports)]
                    use __v::copy::{CopyByClone as _, NoCopy as _};
                    (&__v::copy::Copier(self)).copy()
                }

                #[inline]
                fn copy_into(&self, dst: &mut Self) -> bool {
                    // Each field's `clone_from` if every field is `Clone` (see `versioned_core::copy`).
                    #[allow(unused_imports)]
                    use __v::copy::{CloneFromByClone as _, NoCloneFrom as _};
                    let (#(::core::option::Option::Some(#copiers),)*) = (#((&__v::copy::Probe::<#field_tys>::NEW).clone_from_fn(),)*) else {
                        return false;
                    };
                    #(#copiers(&mut dst.#field_idents, &self.#field_idents);)*
                    true
                }

                fn from_row(row: __v::Row) -> ::core::result::Result<Self, __v::Error> {
                    let mut __values = __v::row_values(Self::TABLE, row)?;
                    ::core::result::Result::Ok(Self { #(#decodes),* })
                }
            }

            #[automatically_derived]
            impl #ident {
                #(#handles)*

                /// A query of the records of this struct on `on` (a store or a transaction). See `Store::find`.
                pub fn find<E: __v::Executor>(on: &E) -> __v::query::Find<'_, E, Self> {
                    __v::query::Find::new(on)
                }

                /// The record with this key, if any. See `Store::get`.
                pub async fn get<E: __v::Executor>(on: &E, key: &(impl __v::KeyFor<#key_ty> + ?::core::marker::Sized)) -> __v::Result<::core::option::Option<Self>> {
                    __v::ops::get::<Self, _>(on.reader("get")?, key).await
                }

                /// The record with this key, only if its stored version is `version`; otherwise
                /// `Error::ConcurrentModification`. See `Store::get_with_version`.
                pub async fn get_with_version<E: __v::Executor>(on: &E, key: &(impl __v::KeyFor<#key_ty> + ?::core::marker::Sized), version: #version_ty) -> __v::Result<Self> {
                    __v::ops::get_with_version::<Self, _>(on.reader("get_with_version")?, key, version).await
                }

                /// Stores this new record with version 1. See `Store::insert`.
                pub async fn insert<E: __v::Executor>(&mut self, on: &E) -> __v::Result<()> {
                    __v::ops::insert(on.writer("insert")?, self).await
                }

                /// Writes this record if its version is still the stored one, then increments the
                /// version. See `Store::put`.
                pub fn put<E: __v::Executor>(&mut self, on: &E) -> impl ::core::future::Future<Output = __v::Result<()>> + ::core::marker::Send {
                    __v::ops::put(on, self)
                }

                /// Inserts this record if its version is 0, or writes it if its version is still
                /// the stored one; then sets the stored version. See `Store::save`.
                pub async fn save<E: __v::Executor>(&mut self, on: &E) -> __v::Result<()> {
                    __v::ops::save(on.writer("save")?, self).await
                }

                /// Replaces this copy with the stored record. See `Store::refresh`.
                pub async fn refresh<E: __v::Executor>(&mut self, on: &E) -> __v::Result<()> {
                    __v::ops::refresh(on.reader("refresh")?, self).await
                }

                /// Writes this record without a version check. See `Store::put_unchecked`.
                pub async fn put_unchecked<E: __v::Executor>(&mut self, on: &E) -> __v::Result<()> {
                    __v::ops::put_unchecked(on.writer("put_unchecked")?, self).await
                }

                /// Deletes this record if its version is still the stored one. See `Store::delete`.
                pub async fn delete<E: __v::Executor>(&self, on: &E) -> __v::Result<()> {
                    __v::ops::delete(on.writer("delete")?, self).await
                }

                /// Deletes the record with this key if its stored version is still `version`, without
                /// reading it first. See `Store::delete_with_version`.
                pub async fn delete_with_version<E: __v::Executor>(on: &E, key: &(impl __v::KeyFor<#key_ty> + ?::core::marker::Sized), version: #version_ty) -> __v::Result<()> {
                    __v::ops::delete_with_version::<Self, _>(on.writer("delete_with_version")?, key, version).await
                }
            }
        };
    }
}

/// The conversion of `value` (a `&` to the field) to its stored value: JSON text for
/// `#[versioned(json)]`, the field type's own `Field` mapping otherwise. Written on the type's
/// tokens, so a type without the conversion is reported there (see the module's summary).
fn encode(c: &Column<'_>, value: TokenStream) -> TokenStream {
    let ty = c.ty;
    match c.repr {
        Repr::Json => quote!(<#ty as __v::JsonField>::to_json(#value)),
        Repr::Text { nullable: true } => quote!(<#ty as __v::TextField>::to_text(#value)),
        Repr::Text { nullable: false } => {
            quote!(__v::__private::text_not_null(<#ty as __v::TextField>::to_text(#value)))
        }
        Repr::Field => quote!(<#ty as __v::Field>::to_value(#value)),
    }
}

/// The conversion of the stored `value` back to the field, as [`encode`] does the other way.
fn decode(c: &Column<'_>, value: TokenStream) -> TokenStream {
    let ty = c.ty;
    match c.repr {
        Repr::Json => quote!(<#ty as __v::JsonField>::from_json(#value)),
        Repr::Text { .. } => quote!(<#ty as __v::TextField>::from_text(#value)),
        Repr::Field => quote!(<#ty as __v::Field>::from_value(#value)),
    }
}

/// A path as serde's string attributes take it (`crate = "..."`, `deserialize_with = "..."`).
fn path_string(path: &syn::Path) -> String {
    quote!(#path).to_string().replace(' ', "")
}

/// A type as a message shows it.
fn type_name(ty: &syn::Type) -> String {
    quote!(#ty).to_string().replace(" < ", "<").replace(" >", ">").replace(" :: ", "::").replace(" ,", ",")
}

/// A field's name without `r#`, as serde names it.
fn unraw(ident: &syn::Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}
