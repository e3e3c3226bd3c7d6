// `history` takes at most one retention, by a known name, keeping at least one version; the
// history table's own columns are not free for fields.
use versioned::Versioned;

#[derive(Versioned)]
#[versioned(history(keep_versons = 3))]
struct Typo {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

#[derive(Versioned)]
#[versioned(history(keep_versions = 0))]
struct Nothing {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

#[derive(Versioned)]
#[versioned(history(keep_versions = 5, keep_days = 30))]
struct Both {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

#[derive(Versioned)]
#[versioned(history)]
struct Clash {
    #[key]
    id: i64,
    history_at: i64,
    #[version]
    version: u64,
}

fn main() {}
