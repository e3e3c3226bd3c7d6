//! Generation: the `Entity` implementation and the inherent helpers, from a validated model.
//!
//! The generated code only describes the struct and delegates; all behaviour lives in the
//! runtime, so it is written and tested once.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::check::Model;

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
        if c.json {
            quote!(__v::ColumnDef { name: #name, field: #field, ty: __v::ColumnType::Json, nullable: false })
        } else {
            // Spanned at the type, so a type without a storage mapping is reported there.
            let field_ty = quote_spanned!(ty.span()=> <#ty as __v::Field>);
            quote!(__v::ColumnDef { name: #name, field: #field, ty: #field_ty::TYPE, nullable: #field_ty::NULLABLE })
        }
    });

    // Conversions are spanned at the field's type too: a missing trait shows at the field.
    let encodes = model.columns.iter().enumerate().map(|(i, c)| {
        let field = c.ident;
        if c.json {
            quote_spanned!(c.ty.span()=> __v::encode_json(Self::TABLE, #i, &self.#field)?)
        } else {
            quote_spanned!(c.ty.span()=> __v::encode(Self::TABLE, #i, &self.#field)?)
        }
    });

    let decodes = model.columns.iter().map(|c| {
        let field = c.ident;
        let read = if c.json {
            quote_spanned!(c.ty.span()=> __reader.json()?)
        } else {
            quote_spanned!(c.ty.span()=> __reader.field()?)
        };
        quote!(#field: #read)
    });

    quote! {
        #[allow(non_local_definitions, clippy::needless_question_mark)]
        const _: () = {
            use #krate as __v;

            #[automatically_derived]
            impl __v::Entity for #ident {
                type Key = #key_ty;
                type Version = #version_ty;

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

                fn to_row(&self) -> ::core::result::Result<__v::Row, __v::Error> {
                    ::core::result::Result::Ok(__v::Row::new(::std::vec![#(#encodes),*]))
                }

                fn from_row(row: __v::Row) -> ::core::result::Result<Self, __v::Error> {
                    let mut __reader = __v::RowReader::new(Self::TABLE, row)?;
                    ::core::result::Result::Ok(Self { #(#decodes),* })
                }
            }

            #[automatically_derived]
            impl #ident {
                /// The record with this key, if any. See `Store::get`.
                pub async fn get<E: __v::Executor>(on: &E, key: &#key_ty) -> __v::Result<::core::option::Option<Self>> {
                    __v::ops::get::<Self, _>(on.access(), key).await
                }

                /// The record with this key, only if its stored version is `version`; otherwise
                /// `Error::ConcurrentModification`. See `Store::get_with_version`.
                pub async fn get_with_version<E: __v::Executor>(on: &E, key: &#key_ty, version: #version_ty) -> __v::Result<Self> {
                    __v::ops::get_with_version::<Self, _>(on.access(), key, version).await
                }

                /// Stores this new record with version 1. See `Store::insert`.
                pub async fn insert<E: __v::Executor>(&mut self, on: &E) -> __v::Result<()> {
                    __v::ops::insert(on.access(), self).await
                }

                /// Writes this record if its version is still the stored one, then increments the
                /// version. See `Store::put`.
                pub async fn put<E: __v::Executor>(&mut self, on: &E) -> __v::Result<()> {
                    __v::ops::put(on.access(), self).await
                }

                /// Writes this record without a version check. See `Store::put_unchecked`.
                pub async fn put_unchecked<E: __v::Executor>(&mut self, on: &E) -> __v::Result<()> {
                    __v::ops::put_unchecked(on.access(), self).await
                }

                /// Deletes this record if its version is still the stored one. See `Store::delete`.
                pub async fn delete<E: __v::Executor>(&self, on: &E) -> __v::Result<()> {
                    __v::ops::delete(on.access(), self).await
                }
            }
        };
    }
}
