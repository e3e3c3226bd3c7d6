use versioned::Versioned;

#[derive(Versioned)]
struct Pair(#[key] i64, #[version] u64);

fn main() {}
