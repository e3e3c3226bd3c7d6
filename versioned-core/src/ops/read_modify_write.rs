//! The attempts of [`Store::update`](crate::Store::update): read the record, apply the caller's
//! function, write it back with a checked [`put`]. Either the read locks the record, inside a
//! transaction ([`lock_modify_write`]), or it does not and the put's check alone catches a writer
//! in between ([`read_modify_write`]); in a hot record's turn, the record may instead be the one
//! the turn before wrote, which the put's check equally guards.

use super::record::{get, get_current, get_for_update, put};
use crate::entity::{ColumnRole, Entity};
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::heat::Kept;
use crate::lock::LockWait;
use crate::storage::{LockingRead, RowAccess};
use crate::value::{Field, KeyFor, Value};

/// One attempt of [`Store::update`](crate::Store::update), inside transaction `tx`: read the
/// record locked (waiting as `wait` says), apply `f`, checked write.
pub async fn lock_modify_write<T: Entity, R, X: LockingRead>(
    tx: &X,
    key: &(impl KeyFor<T::Key> + ?Sized),
    wait: LockWait,
    f: &mut impl FnMut(&mut T) -> R,
) -> Result<R> {
    let read = get_for_update::<T, X>(tx, key, wait).await?;
    modify_and_put(tx, key, read, f).await.map(|(result, _)| result)
}

/// One attempt of an optimistic [`Store::update`](crate::Store::update), without a transaction:
/// read the record (no lock), apply `f`, and write it with a checked [`put`], which refuses it if
/// anyone wrote it since the read. In a `turn` (what the record's turns keep, and the record's
/// key as a value), the record is the one the last turn wrote, where it was kept, and otherwise
/// read from where it is never behind the writes (not a read replica); what this attempt writes
/// is kept for the next turn.
pub(crate) async fn read_modify_write<T: Entity, R, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    turn: Option<(&mut Kept, &Value)>,
    f: &mut impl FnMut(&mut T) -> R,
) -> Result<R> {
    let Some((kept, turn_key)) = turn else {
        let read = match get::<T, A>(access, key).await? {
            Some(read) => Some(read),
            // Not there, or not there yet on a read replica: the record as it is now decides.
            None => access
                .fetch_current(T::TABLE, &super::key_value::<T>(key)?)
                .await?
                .map(super::decode_row)
                .transpose()?,
        };
        return modify_and_put(access, key, read, f).await.map(|(result, _)| result);
    };
    let (read, from_kept) = match kept.take::<T>() {
        Some(record) => (Some(record), true),
        None => (get_current::<T, A>(access, key).await?, false),
    };
    match modify_and_put(access, key, read, f).await {
        Ok((result, written)) => {
            if keepable(turn_key, &written) {
                kept.keep(written);
            }
            Ok(result)
        }
        Err(err) => {
            // A conflict says another writer wrote the record since; any other error says
            // nothing of the record, and the next turn reads it.
            if from_kept && err.is_conflict() {
                kept.found_stale();
            }
            Err(err)
        }
    }
}

/// Whether `written`, just written, is the record the next turn would read: not when `f` moved
/// it to another key, nor on a table whose `created_at` an update never writes (whatever `f` set
/// there is not what is stored).
fn keepable<T: Entity>(key: &Value, written: &T) -> bool {
    T::TABLE.column_with(ColumnRole::CreatedAt).is_none() && written.key().to_value().is_ok_and(|now| now == *key)
}

/// The rest of an `update` attempt once the record is `read`: `f` applied, then a checked [`put`];
/// `f`'s result, and the record as written.
async fn modify_and_put<T: Entity, R, A: RowAccess>(
    access: &A,
    key: &(impl KeyFor<T::Key> + ?Sized),
    read: Option<T>,
    f: &mut impl FnMut(&mut T) -> R,
) -> Result<(R, T)> {
    let mut t = read.ok_or_else(|| Error::not_found::<T>(key))?;
    let result = f(&mut t);
    put(&Allowed(access), &mut t).await?;
    Ok((result, t))
}

/// Row operations an executor already allowed (its `writer` check was made by the caller), as an
/// executor again, for [`put`].
struct Allowed<'a, A>(&'a A);

impl<A: RowAccess> Executor for Allowed<'_, A> {
    type Access = A;

    fn reader(&self, _: &'static str) -> Result<&A> {
        Ok(self.0)
    }

    fn writer(&self, _: &'static str) -> Result<&A> {
        Ok(self.0)
    }
}

#[cfg(all(test, feature = "conformance"))]
mod tests {
    use super::keepable;
    use crate::conformance::{Account, Contact};
    use crate::value::Value;

    #[test]
    fn a_turn_keeps_what_it_wrote_only_if_it_is_what_the_next_turn_would_read() {
        let account = |id| Account { id, balance: 1, version: 2 };
        assert!(keepable(&Value::Int(1), &account(1)), "the record as written");
        assert!(
            !keepable(&Value::Int(1), &account(2)),
            "`f` moved it to another key: the next turn's record is elsewhere"
        );
        let contact = Contact {
            id: 7,
            name: "Jo".into(),
            phone: String::new(),
            profile: serde_json::Value::Null,
            created_at: std::time::SystemTime::UNIX_EPOCH,
            updated_at: std::time::SystemTime::UNIX_EPOCH,
            updated_by: String::new(),
            version: 1,
        };
        assert!(
            !keepable(&Value::Int(7), &contact),
            "a `created_at` that `f` may have set, and the update did not write"
        );
    }
}
