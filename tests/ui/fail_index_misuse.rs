// `#[versioned(index)]` where it cannot go, all reported at once: on the key (indexed already)
// and on a JSON field (a document has no order).
use versioned::Versioned;

#[derive(Versioned)]
struct Bug {
    #[key]
    #[versioned(index)]
    id: i64,
    #[versioned(json, index)]
    labels: Vec<String>,
    #[versioned(index)]
    status: String,
    #[version]
    version: u64,
}

fn main() {}
