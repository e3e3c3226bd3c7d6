use versioned::Versioned;

#[derive(Versioned)]
struct Measurement {
    #[key]
    at: f64,
    value: f64,
    #[version]
    version: u64,
}

fn main() {}
