// An unknown option near none of the known ones: the error lists what the place accepts.
use versioned::Versioned;

#[derive(Versioned)]
#[versioned(schema = "app")]
struct Person {
    #[key]
    id: i64,
    #[versioned(rename = "full_name")]
    name: String,
    #[version]
    version: u64,
}

fn main() {}
