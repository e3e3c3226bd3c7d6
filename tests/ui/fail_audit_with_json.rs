use versioned::Versioned;

#[derive(Versioned)]
struct Contact {
    #[key]
    id: i64,
    #[versioned(json, updated_by)]
    editor: String,
    #[version]
    version: u64,
}

fn main() {}
