//! `#[derive(Versioned)]`: the derive macro of the [`versioned-store`](https://docs.rs/versioned-store)
//! crate (imported as `versioned`).
//!
//! Use it through `versioned-store`, which re-exports it with the runtime it generates code for. The
//! macro works in three steps, one module each: `ast` parses the struct and its attributes into
//! a model, `check` validates the model, `expand` generates the `Entity` implementation.
//! Errors of all three steps are gathered in one `ctxt::Ctxt` and reported together, each
//! pointing at the offending token.
#![deny(missing_docs)]

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

mod ast;
mod check;
mod ctxt;
mod expand;

/// Implements `versioned::Entity` for a struct with named fields, one `#[key]` field and one
/// `#[version]` field; adds the helpers `get`, `get_with_version`, `insert`, `put`, `save`,
/// `refresh`, `put_unchecked`, `delete` and `delete_with_version`; and generates the
/// partial-update type `<Struct>Patch` (with `Debug`, `Clone` and serde's `Deserialize` where its
/// field types have them).
///
/// Attributes:
/// - on the struct: `#[versioned(table = "name")]` (default: the struct name in snake_case),
///   `#[versioned(crate = path)]` (default: `::versioned`);
/// - on fields: `#[key]`, `#[version]`, `#[versioned(column = "name")]`, `#[versioned(json)]`,
///   `#[versioned(text)]`, `#[versioned(created_at)]`, `#[versioned(updated_at)]`,
///   `#[versioned(updated_by)]`.
#[proc_macro_derive(Versioned, attributes(key, version, versioned))]
pub fn derive_versioned(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let cx = ctxt::Ctxt::new();
    let model = ast::Container::from_ast(&cx, &input).and_then(|c| check::check(&cx, c));
    match (cx.finish(), model) {
        (Ok(()), Some(model)) => expand::expand(&model).into(),
        (Err(err), _) => err.to_compile_error().into(),
        // Every path that returns no model records an error first.
        (Ok(()), None) => {
            syn::Error::new_spanned(&input.ident, "internal error: no model and no error").to_compile_error().into()
        }
    }
}
