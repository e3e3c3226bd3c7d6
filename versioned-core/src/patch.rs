//! Partial updates: the [`Patch`] trait the derive implements, the [`Check`] a write is made with,
//! what a patch does with a `#[versioned(json)]` field ([`JsonChange`]: replace it or merge into
//! it), and the JSON merge itself.

use std::fmt;
use std::marker::PhantomData;

use crate::entity::{Entity, TableDef, encoded};
use crate::error::Error;
use crate::value::Value;

/// A partial update of an entity: some of its columns, the rest kept. The derive generates one
/// per entity (`PersonPatch` for `Person`), with every field that is not the key, the version or
/// a timestamp optional.
///
/// The generated type implements `Default` (nothing set), and `Debug`, `Clone` and serde's
/// `Deserialize` whenever the types of its fields do (a JSON field's type, say, need not be
/// `Clone`: the patch is then not `Clone` either, and everything else still works). Deserialized
/// from a `PATCH` body, a field that is absent is kept, and a field that is present is set to the
/// value it holds: `null` sets an `Option` field to `None` (and is refused for any other field),
/// a `#[versioned(json)]` field is set whole to a value of its own type ([`JsonChange::Set`]).
/// Names that are not fields of the patch (the key, the version, the timestamps, a typo) refuse
/// the body.
pub trait Patch: Send + 'static {
    /// The entity this patches.
    type Entity: Entity;

    /// The columns this patch changes, in column order.
    fn into_changes(self) -> Result<Vec<Change>, Error>;
}

/// One column of a [`Patch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The column index in the entity's [`TableDef`](crate::TableDef).
    pub column: usize,
    /// What to do with it.
    pub value: ChangeValue,
}

/// The new content of a patched column.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeValue {
    /// Replace the stored value.
    Set(Value),
    /// Merge this JSON document into the stored one (a `#[versioned(json)]` field): objects merge
    /// key by key at every level; anything else replaces. Keys are never deleted (Kii's partial
    /// update), so unlike RFC 7396 a `null` sets a key to `null` rather than removing it.
    Merge(serde_json::Value),
}

/// What a patch does with a `#[versioned(json)]` field: the field's type in `PersonPatch` is
/// `Option<JsonChange<T>>` for a field of type `T`, `None` keeping the stored document.
///
/// The generated setters build it: `.profile(value)` sets the field whole (`Set`), and
/// `.profile_merge(doc)` merges a document into the stored one (`Merge`, Kii's nested partial
/// update).
///
/// ```
/// use versioned_core::JsonChange;
///
/// let set: JsonChange<Vec<String>> = vec!["a".to_owned()].into();
/// assert_eq!(set, JsonChange::Set(vec!["a".to_owned()]));
/// let merge = JsonChange::<Vec<String>>::Merge(serde_json::json!({"a": 1}));
/// assert!(matches!(merge, JsonChange::Merge(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum JsonChange<T> {
    /// Replace the stored value with this one, written as the field's JSON document.
    Set(T),
    /// Merge this JSON document into the stored one: objects merge key by key at every level;
    /// anything else replaces. Keys are never deleted (Kii's partial update): a `null` sets a key
    /// to `null`. The merged document must still decode as the field's type, or the patch is
    /// refused with `Error::Decode` and writes nothing.
    Merge(serde_json::Value),
}

impl<T> From<T> for JsonChange<T> {
    /// `JsonChange::Set(value)`, so that a struct literal can say `Some(value.into())`.
    fn from(value: T) -> Self {
        JsonChange::Set(value)
    }
}

/// The version check of a partial update ([`Store::patch`](crate::Store::patch)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check<V> {
    /// Write only if the stored version is this one (Kii's overwrite check on).
    Version(V),
    /// Write whatever the stored version (overwrite check off).
    Unchecked,
}

/// Merges `patch` into `base`: objects key by key, at every level; any other value replaces.
/// Keys are never deleted: a `null` in the patch sets the key to `null` (Kii's partial update
/// cannot delete keys; RFC 7396 would delete them).
pub(crate) fn merge_json(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                merge_json(base.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
        (base, patch) => *base = patch,
    }
}

/// What the generated patches use, through `versioned::__private`; not a public API.
#[doc(hidden)]
pub mod private {
    use super::*;

    /// The [`Change`] of a `#[versioned(json)]` field's [`JsonChange`] for column `index`:
    /// a value set whole is written as its JSON document (`to_json` is the field type's
    /// `JsonField::to_json`, named by the generated code on the field's type); a document to
    /// merge is handed to the write as it is.
    pub fn json_change<T>(
        table: &'static TableDef,
        index: usize,
        change: JsonChange<T>,
        to_json: impl FnOnce(&T) -> Result<Value, String>,
    ) -> Result<Change, Error> {
        let value = match change {
            JsonChange::Set(value) => ChangeValue::Set(encoded(table, index, to_json(&value))?),
            JsonChange::Merge(doc) => ChangeValue::Merge(doc),
        };
        Ok(Change { column: index, value })
    }

    /// A patch field deserialized from a body: present is `Some` of the field's own value, so
    /// that `null` is `Some(None)` for an `Option` field (absent is the field's default, `None`).
    pub fn present<'de, D: serde::Deserializer<'de>, F: serde::Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<F>, D::Error> {
        F::deserialize(deserializer).map(Some)
    }

    /// A `#[versioned(json)]` patch field deserialized from a body: the value of the field's own
    /// type, set whole.
    pub fn json_set<'de, D: serde::Deserializer<'de>, F: serde::Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<JsonChange<F>>, D::Error> {
        F::deserialize(deserializer).map(|value| Some(JsonChange::Set(value)))
    }

    /// `Clone`, as the bound of a generated `Clone` impl: `where PatchFieldType: CloneField<'p>`.
    /// The lifetime makes the bound one rustc checks where the impl is used rather than where it
    /// is written, so a patch is `Clone` exactly when its field types are (a bound `T: Clone` on a
    /// concrete type is checked at the impl, and refuses to compile when `T` is not `Clone`).
    pub trait CloneField<'p>: Sized {
        /// `Clone::clone`.
        fn clone_field(&self) -> Self;
    }

    impl<T: Clone> CloneField<'_> for T {
        fn clone_field(&self) -> Self {
            self.clone()
        }
    }

    /// `Debug`, as the bound of a generated `Debug` impl (see [`CloneField`]).
    pub trait DebugField<'p> {
        /// `Debug::fmt`.
        fn fmt_field(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
    }

    impl<T: fmt::Debug + ?Sized> DebugField<'_> for T {
        fn fmt_field(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            fmt::Debug::fmt(self, f)
        }
    }

    /// A patch field formatted through [`DebugField`], for `Formatter::debug_struct`.
    pub struct FieldDebug<'p, 'r, T: ?Sized>(&'r T, PhantomData<&'p ()>);

    impl<'r, T: ?Sized> FieldDebug<'_, 'r, T> {
        /// The field `value`, to format.
        pub fn new(value: &'r T) -> Self {
            FieldDebug(value, PhantomData)
        }
    }

    impl<'p, T: DebugField<'p> + ?Sized> fmt::Debug for FieldDebug<'p, '_, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt_field(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_json;

    #[test]
    fn merges_objects_at_every_level_and_never_deletes_keys() {
        let mut stored = json!({"a": 1, "nested": {"x": 1, "y": 2, "deep": {"k": true}}, "list": [1, 2]});
        merge_json(&mut stored, json!({"nested": {"y": 3, "z": 4, "deep": {"j": 0}}, "b": 2, "list": [3], "a": null}));
        assert_eq!(
            stored,
            json!({"a": null, "b": 2, "list": [3], "nested": {"x": 1, "y": 3, "z": 4, "deep": {"k": true, "j": 0}}})
        );
    }

    #[test]
    fn a_non_object_is_replaced() {
        let mut stored = json!("text");
        merge_json(&mut stored, json!({"now": "an object"}));
        assert_eq!(stored, json!({"now": "an object"}));
    }
}
