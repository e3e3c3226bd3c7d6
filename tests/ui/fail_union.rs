use versioned::Versioned;

#[derive(Versioned)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
