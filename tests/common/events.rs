//! A subscriber of a test's own, as its thread's default, that sees every event of that thread
//! even while other tests run in parallel in the same process.
//!
//! `tracing` caches each callsite's interest for the whole process. While a single dispatcher is
//! registered, a callsite first reached on another test's thread (which has no subscriber) takes
//! its interest from that thread's default alone, is cached as never interesting, and the test's
//! subscriber never sees it: the events vanish, only under parallel tests. Two more dispatchers
//! kept for the whole process (ones that want to be asked every time) end that: with several
//! registered, a callsite's interest is combined from all of them, and a test's subscriber is
//! asked at each event.

use std::sync::OnceLock;

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::{DefaultGuard, Interest};
use tracing::{Dispatch, Event, Metadata, Subscriber};

/// Wants to be asked about every callsite, and records nothing.
struct AskEveryTime;

impl Subscriber for AskEveryTime {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, _: &Event<'_>) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// `subscriber` as this thread's default until the returned guard is dropped.
pub fn capture_on_this_thread(subscriber: impl Subscriber + Send + Sync + 'static) -> DefaultGuard {
    static ASKING: OnceLock<[Dispatch; 2]> = OnceLock::new();
    ASKING.get_or_init(|| [Dispatch::new(AskEveryTime), Dispatch::new(AskEveryTime)]);
    let guard = tracing::subscriber::set_default(subscriber);
    // Registering a dispatcher asks every known callsite again; this asks once more, now that
    // `subscriber` is this thread's default, for a callsite registered while it was set.
    tracing::callsite::rebuild_interest_cache();
    guard
}
