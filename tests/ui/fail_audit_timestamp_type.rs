use versioned::Versioned;

#[derive(Versioned)]
struct Contact {
    #[key]
    id: i64,
    #[versioned(updated_at)]
    updated_at: String,
    #[version]
    version: u64,
}

fn main() {}
