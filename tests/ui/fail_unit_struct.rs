use versioned::Versioned;

#[derive(Versioned)]
struct Nothing;

fn main() {}
