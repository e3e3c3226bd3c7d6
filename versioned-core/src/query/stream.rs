//! [`Chunks`]: the stream behind [`Find::stream`](super::Find::stream). Records come a chunk at a
//! time by keyset, and the query of the next chunk is sent as soon as a chunk arrives, so that
//! the database works on it while the caller goes through the current one (two chunks in memory
//! at most, whatever the number of records).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::Stream;

use super::find::{Query, order_values};
use crate::entity::Entity;
use crate::error::Result;
use crate::storage::RowAccess;
use crate::value::Value;

/// A chunk's records, and the order values of its last row (where the next chunk starts).
type Fetched<T> = Result<(Vec<T>, Option<Vec<Value>>)>;

/// A chunk being fetched.
type InFlight<'e, T> = Pin<Box<dyn Future<Output = Fetched<T>> + Send + 'e>>;

/// The records of a query, fetched `chunk` at a time.
pub(super) struct Chunks<'e, A, T> {
    access: Option<&'e A>,
    query: Option<Query>,
    chunk: u64,
    /// How many more records the query's limit allows (`None`: no limit).
    left: Option<u64>,
    ready: VecDeque<T>,
    next: Option<InFlight<'e, T>>,
    /// An error to give once the records before it are given (a query that could not be
    /// prepared, or a chunk that failed).
    failed: Option<crate::error::Error>,
}

impl<'e, A: RowAccess, T: Entity> Chunks<'e, A, T> {
    pub(super) fn new(prepared: Result<(&'e A, Query)>, chunk: u64, limit: Option<u64>) -> Self {
        let mut chunks =
            Chunks { access: None, query: None, chunk, left: limit, ready: VecDeque::new(), next: None, failed: None };
        match prepared {
            Ok((access, query)) => {
                chunks.access = Some(access);
                chunks.query = Some(query);
                chunks.fetch_next();
            }
            Err(err) => chunks.failed = Some(err),
        }
        chunks
    }

    /// Starts fetching the next chunk, if the limit allows one.
    fn fetch_next(&mut self) {
        let (Some(access), Some(query)) = (self.access, self.query.as_ref()) else { return };
        let size = self.left.map_or(self.chunk, |left| left.min(self.chunk));
        if size == 0 {
            return;
        }
        let select = query.select(Some(size));
        let (table, order) = query.ordering();
        self.next = Some(Box::pin(async move {
            let rows = access.select(table, &select).await?;
            let last = rows.last().map(|row| order_values(table, &order, row));
            let records = rows.into_iter().map(T::from_row).collect::<Result<Vec<T>>>()?;
            Ok((records, last))
        }));
    }
}

// Nothing of a `Chunks` is pinned in place: its records sit in a `VecDeque` and its in-flight
// future in a `Box`.
impl<A, T> Unpin for Chunks<'_, A, T> {}

impl<A: RowAccess, T: Entity> Stream for Chunks<'_, A, T> {
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            // The next chunk is driven only while at most one chunk waits to be given: what is
            // buffered stays within two chunks whatever the pace of the caller.
            let room = this.ready.len() as u64 <= this.chunk;
            if let Some(next) = this.next.as_mut().filter(|_| room) {
                match next.as_mut().poll(cx) {
                    Poll::Ready(Ok((records, last))) => {
                        this.next = None;
                        let fetched = records.len() as u64;
                        let full = this.left.map_or(this.chunk, |left| left.min(this.chunk)) == fetched;
                        this.left = this.left.map(|left| left - fetched);
                        this.ready.extend(records);
                        match (last, this.query.as_mut()) {
                            // A full chunk: more may follow, after its last record. Sent now, and
                            // polled once by the loop, so the database starts on it.
                            (Some(values), Some(query)) if full && this.left != Some(0) => {
                                query.continue_after(values);
                                this.fetch_next();
                                continue;
                            }
                            _ => this.query = None,
                        }
                    }
                    Poll::Ready(Err(err)) => {
                        this.next = None;
                        this.query = None;
                        this.failed = Some(err);
                    }
                    Poll::Pending => {}
                }
            }
            if let Some(record) = this.ready.pop_front() {
                return Poll::Ready(Some(Ok(record)));
            }
            if let Some(err) = this.failed.take() {
                return Poll::Ready(Some(Err(err)));
            }
            // `ready` is empty here, so `room` held and `next`, if any, was polled: it wakes us.
            return if this.next.is_none() { Poll::Ready(None) } else { Poll::Pending };
        }
    }
}
