// `#[versioned(text)]` where it cannot go, all reported at once: with `json` on one field, on the
// key, on the version, with an audit role, with a value.
use versioned::Versioned;

#[derive(serde::Serialize, serde::Deserialize)]
enum Status {
    Open,
}

#[derive(Versioned)]
struct Bug {
    #[key]
    #[versioned(text)]
    id: i64,
    #[versioned(json, text)]
    status: Status,
    #[versioned(text, updated_by)]
    editor: String,
    #[versioned(text = "snake_case")]
    other: Status,
    #[version]
    #[versioned(text)]
    version: u64,
}

fn main() {}
