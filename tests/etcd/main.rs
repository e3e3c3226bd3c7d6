//! The etcd backend on a 3-member cluster: the whole conformance suite, the layout and limits
//! that are etcd's own, and what happens when members die.
//!
//! Without `VERSIONED_ETCD_ENDPOINTS`, the tests start a cluster of their own from Debian's `etcd`
//! (package `etcd-server`) on free loopback ports; without either, they say they were skipped.

#[allow(dead_code)]
#[path = "../common/etcd_cluster.rs"]
mod cluster;

mod conformance {
    versioned_core::conformance_tests!(super::cluster::store);
}
