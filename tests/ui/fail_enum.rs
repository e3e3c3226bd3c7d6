use versioned::Versioned;

#[derive(Versioned)]
enum Status {
    Open,
    Closed,
}

fn main() {}
