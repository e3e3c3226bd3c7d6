//! A hand-written [`Patch`] that names a column the table does not have, or one a patch never
//! changes, is refused before anything is read or written, on every backend: no panic, no
//! silently dropped change, and the store goes on serving.

use super::{Person, setup};
use crate::entity::{Entity, TableDef};
use crate::error::Error;
use crate::patch::{Change, ChangeValue, Check, Patch};
use crate::storage::Storage;
use crate::store::Store;
use crate::value::{Row, Value};

/// [`Person`], with a hand-written patch type that can name any column.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPerson(pub Person);

/// A hand-written patch: the changes it is given, as they are.
#[derive(Debug)]
pub struct RawPatch(pub Vec<Change>);

impl Patch for RawPatch {
    type Entity = RawPerson;

    fn into_changes(self) -> Result<Vec<Change>, Error> {
        Ok(self.0)
    }
}

impl Entity for RawPerson {
    type Key = i64;
    type Version = u64;
    type Patch = RawPatch;

    const TABLE: &'static TableDef = Person::TABLE;

    fn key(&self) -> &i64 {
        &self.0.id
    }

    fn version(&self) -> u64 {
        self.0.version
    }

    fn set_version(&mut self, version: u64) {
        self.0.version = version;
    }

    fn set_column(&mut self, index: usize, value: Value) -> Result<(), Error> {
        self.0.set_column(index, value)
    }

    fn to_row(&self) -> Result<Row, Error> {
        self.0.to_row()
    }

    fn from_row(row: Row) -> Result<Self, Error> {
        Person::from_row(row).map(RawPerson)
    }
}

/// Patches naming a column past the table's last, the key, the version, or one column twice are
/// [`Error::Encode`] naming the column; the record is as it was, and the store serves the next
/// caller.
pub async fn a_patch_naming_a_column_the_table_lacks_is_refused<S: Storage>(store: &Store<S>) {
    setup(store).await;
    let mut ann = Person { id: 1, name: "Ann".into(), salary: 100, version: 0 };
    store.insert(&mut ann).await.expect("insert");
    let set = |column: usize, value: Value| Change { column, value: ChangeValue::Set(value) };
    let table = Person::TABLE;
    let salary = table.columns.iter().position(|c| c.name == "salary").expect("salary");
    let bad = [
        ("a column past the table's last", vec![set(table.columns.len() + 5, Value::Int(1))]),
        ("the key", vec![set(table.key, Value::Int(2))]),
        ("the version", vec![set(table.version, Value::Int(7))]),
        ("one column twice", vec![set(salary, Value::Int(1)), set(salary, Value::Int(2))]),
    ];
    for (what, changes) in bad {
        for check in [Check::Unchecked, Check::Version(1)] {
            let result = store.patch::<RawPerson>(&1, RawPatch(changes.clone()), check).await;
            assert!(matches!(result, Err(Error::Encode { table: "people", .. })), "{what}: {result:?}");
        }
    }
    let stored = store.get::<Person>(&1).await.expect("get").expect("record");
    assert_eq!(stored, Person { id: 1, name: "Ann".into(), salary: 100, version: 1 }, "nothing was written");
    let good = store
        .patch::<RawPerson>(&1, RawPatch(vec![set(salary, Value::Int(120))]), Check::Version(1))
        .await
        .expect("a patch of a column the table has");
    assert_eq!((good.0.salary, good.0.version), (120, 2));
    ann.version = 2;
    ann.salary = 130;
    store.put(&mut ann).await.expect("the store serves the next caller");
}
