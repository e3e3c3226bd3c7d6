//! `#[derive(Versioned)]`: what it accepts, and the compile errors (pinned by trybuild) for
//! everything it refuses.

/// The pinned messages include rustc's list of the types that implement a trait, which grows with
/// the `uuid`, `chrono` and `time` features: the snapshots are of a build with all of them, as the
/// README's test command (`cargo test --workspace --all-features`) runs it.
#[test]
#[cfg_attr(
    not(all(feature = "uuid", feature = "chrono", feature = "time")),
    ignore = "the pinned compiler messages are those of --all-features"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail_*.rs");
    t.pass("tests/ui/pass_*.rs");
}
