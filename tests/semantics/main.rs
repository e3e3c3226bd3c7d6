//! The semantics table of `versioned`, run against every backend by one shared test body
//! (`versioned_core::conformance`).

mod memory {
    versioned_core::conformance_tests!(|| async { versioned::Store::memory() });
}
