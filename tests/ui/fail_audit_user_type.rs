use versioned::Versioned;

#[derive(Versioned)]
struct Contact {
    #[key]
    id: i64,
    #[versioned(updated_by)]
    updated_by: i64,
    #[version]
    version: u64,
}

fn main() {}
