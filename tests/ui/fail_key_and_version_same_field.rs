use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    #[version]
    id: i64,
    name: String,
}

fn main() {}
