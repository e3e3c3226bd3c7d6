use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    name: String,
    #[versioned(column = "name")]
    nickname: String,
    #[version]
    version: u64,
}

fn main() {}
