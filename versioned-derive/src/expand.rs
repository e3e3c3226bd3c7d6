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
use crate::check::{Column, Model, Role};

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

    let column_defs = model.columns.iter().map(|c| {
        let name = &c.name;
        let field = c.ident.to_string();
        let ty = c.ty;
        let role = format_ident!("{}", c.role.name());
        if c.json {
            quote!(__v::ColumnDef {
                name: #name, field: #field, ty: __v::ColumnType::Json, nullable: false, role: __v::ColumnRole::#role,
            })
        } else {
            quote!(__v::ColumnDef {
                name: #name,
                field: #field,
                ty: <#ty as __v::Field>::TYPE,
                nullable: <#ty as __v::Field>::NULLABLE,
                role: __v::ColumnRole::#role,
            })
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
    let vis = model.vis;
    let patchable: Vec<_> = model.columns.iter().enumerate().filter(|(_, c)| c.role.patchable()).collect();
    let patch_fields = patchable.iter().map(|(_, c)| {
        let (field, field_vis, ty) = (c.ident, c.vis, c.ty);
        let doc = format!("`Some` sets `{field}`; `None` keeps the stored value.");
        if c.json {
            let doc = format!("A JSON document merged into the stored `{field}` at every level; `None` keeps it.");
            quote!(#[doc = #doc] #field_vis #field: ::core::option::Option<#krate::JsonValue>)
        } else {
            quote!(#[doc = #doc] #field_vis #field: ::core::option::Option<#ty>)
        }
    });
    let patch_setters = patchable.iter().map(|(_, c)| {
        let (field, field_vis, ty) = (c.ident, c.vis, c.ty);
        if c.json {
            let doc = format!("Merges `doc` into the stored `{field}`.");
            quote!(#[doc = #doc] #[must_use] #field_vis fn #field(mut self, doc: #krate::JsonValue) -> Self {
                self.#field = ::core::option::Option::Some(doc);
                self
            })
        } else {
            let doc = format!("Sets `{field}`.");
            quote!(#[doc = #doc] #[must_use] #field_vis fn #field(mut self, value: impl ::core::convert::Into<#ty>) -> Self {
                self.#field = ::core::option::Option::Some(value.into());
                self
            })
        }
    });
    let patch_changes = patchable.iter().map(|(i, c)| {
        let field = c.ident;
        if c.json {
            quote!(if let ::core::option::Option::Some(doc) = self.#field {
                changes.push(__v::Change { column: #i, value: __v::ChangeValue::Merge(doc) });
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
         Pass it to `Store::patch`. Generated by `#[derive(Versioned)]`."
    );

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

    let field_idents: Vec<_> = model.columns.iter().map(|c| c.ident).collect();
    let field_tys = model.columns.iter().map(|c| c.ty);
    let copiers: Vec<_> = (0..model.columns.len()).map(|i| format_ident!("__copy{}", i)).collect();

    quote! {
        #[doc = #patch_doc]
        #[derive(Default)]
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
                };

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
            }
        };
    }
}

/// The conversion of `value` (a `&` to the field) to its stored value: JSON text for
/// `#[versioned(json)]`, the field type's own `Field` mapping otherwise. Written on the type's
/// tokens, so a type without the conversion is reported there (see the module's summary).
fn encode(c: &Column<'_>, value: TokenStream) -> TokenStream {
    let ty = c.ty;
    if c.json {
        quote!(<#ty as __v::JsonField>::to_json(#value))
    } else {
        quote!(<#ty as __v::Field>::to_value(#value))
    }
}

/// The conversion of the stored `value` back to the field, as [`encode`] does the other way.
fn decode(c: &Column<'_>, value: TokenStream) -> TokenStream {
    let ty = c.ty;
    if c.json {
        quote!(<#ty as __v::JsonField>::from_json(#value))
    } else {
        quote!(<#ty as __v::Field>::from_value(#value))
    }
}
