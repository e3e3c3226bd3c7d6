//! Partial updates: the [`Patch`] trait the derive implements, the [`Check`] a write is made with,
//! and the JSON merge of `#[versioned(json)]` fields.

use crate::entity::Entity;
use crate::error::Error;
use crate::value::Value;

/// A partial update of an entity: some of its columns, the rest kept. The derive generates one
/// per entity (`PersonPatch` for `Person`), with every field that is not the key, the version or
/// a timestamp optional.
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
