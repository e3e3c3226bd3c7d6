use versioned::Versioned;

#[derive(Versioned)]
struct Wrapper<T> {
    #[key]
    id: i64,
    value: T,
    #[version]
    version: u64,
}

fn main() {}
