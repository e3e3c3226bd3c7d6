use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    #[versioned(column = "1st name")]
    name: String,
    #[version]
    version: u64,
}

fn main() {}
