use versioned::Versioned;

#[derive(Versioned)]
#[versioned(tabel = "people")]
struct Person {
    #[key]
    id: i64,
    #[version]
    version: u64,
}

fn main() {}
