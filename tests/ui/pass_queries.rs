// Field handles under the crate path of a re-export, and every kind of value a filter takes.
mod reexport {
    pub use versioned as storage;
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy)]
enum Status {
    Open,
}

#[derive(versioned::Versioned)]
#[versioned(crate = reexport::storage)]
struct Bug {
    #[key]
    id: i64,
    title: String,
    assignee: Option<String>,
    #[versioned(text)]
    status: Status,
    #[version]
    version: u32,
}

fn main() {
    let title = String::from("crash");
    let _ = Bug::ID.eq(7).and(Bug::TITLE.eq("crash")).or(Bug::TITLE.eq(&title)).or(Bug::TITLE.eq(title.clone()));
    let _ = Bug::ASSIGNEE.eq("amy") & Bug::ASSIGNEE.eq(Some("amy".to_owned())) & Bug::ASSIGNEE.is_none();
    let _ = !Bug::STATUS.eq(Status::Open) | Bug::VERSION.ge(2u32) | Bug::TITLE.starts_with("cr");
    let _ = Bug::ID.in_list(vec![1, 2, 3]).and(Bug::ASSIGNEE.in_list(["amy", "bob"]));
    let _ = (Bug::TITLE.desc(), Bug::ASSIGNEE.asc());
}
