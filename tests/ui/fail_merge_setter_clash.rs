// A JSON field `profile` has the patch setter `profile_merge`: a field of that name would clash.
use versioned::Versioned;

#[derive(Versioned)]
struct Contact {
    #[key]
    id: i64,
    #[versioned(json)]
    profile: serde_json::Value,
    profile_merge: String,
    #[version]
    version: u64,
}

fn main() {}
