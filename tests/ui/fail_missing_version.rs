use versioned::Versioned;

#[derive(Versioned)]
struct Person {
    #[key]
    id: i64,
    name: String,
}

fn main() {}
