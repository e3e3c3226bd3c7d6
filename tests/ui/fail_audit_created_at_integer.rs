// A `created_at` that is not a timestamp type: the error is at the field's type.
use versioned::Versioned;

#[derive(Versioned)]
struct Contact {
    #[key]
    id: i64,
    #[versioned(created_at)]
    created_at: u64,
    #[version]
    version: u64,
}

fn main() {}
