// A filter compares a field with a value of the field's own type (or a reference, `&str` for a
// `String`, the inner type for an `Option`): anything else is an error at the value.
use versioned::Versioned;

#[derive(Versioned)]
struct Bug {
    #[key]
    id: i64,
    title: String,
    assignee: Option<String>,
    #[version]
    version: u64,
}

fn main() {
    let _ = Bug::ID.eq("7");
    let _ = Bug::TITLE.lt(7);
    let _ = Bug::ASSIGNEE.in_list([1, 2]);
    let _ = Bug::ID.starts_with("1");
}
