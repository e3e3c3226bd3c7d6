// `#[versioned(text)]` on a type serde cannot (de)serialize: one error, saying what it needs.
use versioned::Versioned;

#[derive(Debug)]
enum Status {
    Open,
}

#[derive(Versioned)]
struct Bug {
    #[key]
    id: i64,
    #[versioned(text)]
    status: Status,
    #[version]
    version: u64,
}

fn main() {
    let _ = Status::Open;
}
