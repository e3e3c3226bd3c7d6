use versioned::Versioned;

// Every problem of one struct is reported in one compilation.
#[derive(Versioned)]
#[versioned(table = "two words", colour = "red")]
struct Person {
    #[key]
    id: i64,
    #[key]
    email: String,
    #[versioned(column = "email")]
    contact: String,
    #[version]
    version: f64,
}

fn main() {}
