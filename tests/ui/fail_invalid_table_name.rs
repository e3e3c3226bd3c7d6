use versioned::Versioned;

#[derive(Versioned)]
#[versioned(table = "people; DROP TABLE people")]
struct Person {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

fn main() {}
