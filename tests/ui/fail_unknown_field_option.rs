use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    #[versioned(colum = "full_name")]
    name: String,
    #[version]
    version: u64,
}

fn main() {}
