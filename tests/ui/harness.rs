//! `#[derive(Versioned)]`: what it accepts, and the compile errors (pinned by trybuild) for
//! everything it refuses.
//!
//! The cases use `versioned` as its users do (the derive's paths are `::versioned::…`), built
//! without optional features: the pinned messages do not depend on the features a test run
//! enables.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("fail_*.rs");
    t.pass("pass_*.rs");
}
