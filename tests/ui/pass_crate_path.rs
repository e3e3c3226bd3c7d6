// A crate that re-exports `versioned` under another name points the derive at it.
mod reexport {
    pub use versioned as storage;
}

#[derive(versioned::Versioned)]
#[versioned(crate = reexport::storage)]
struct Note {
    #[key]
    id: i64,
    text: String,
    #[version]
    version: u64,
}

#[derive(versioned::Versioned)]
#[versioned(crate = "reexport::storage", table = "notes2")]
struct Note2 {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

fn main() {
    use reexport::storage::Entity;
    assert_eq!(Note::TABLE.name, "note");
    assert_eq!(Note2::TABLE.name, "notes2");
    let _ = Note { id: 1, text: String::new(), version: 0 };
    let _ = Note2 { id: 1, version: 0 };
}
