// A patch is `Clone`, `Debug` and `Deserialize` only where its fields' types are: the struct
// compiles, and using the missing trait is the error, naming the field type that lacks it.
use versioned::{Field, Value, Versioned};

/// A JSON type that is neither `Clone` nor `Debug`.
#[derive(serde::Serialize, serde::Deserialize)]
struct Profile {
    city: String,
}

/// A column type of the user's own, not serde's.
struct Cents(i64);

impl Field for Cents {
    const TYPE: versioned::ColumnType = versioned::ColumnType::Int64;

    fn to_value(&self) -> Result<Value, String> {
        Ok(Value::Int(self.0))
    }

    fn from_value(value: Value) -> Result<Self, String> {
        i64::from_value(value).map(Cents)
    }
}

#[derive(Versioned)]
struct Contact {
    #[key]
    id: i64,
    #[versioned(json)]
    profile: Profile,
    #[version]
    version: u64,
}

#[derive(Versioned)]
struct Invoice {
    #[key]
    id: i64,
    total: Cents,
    #[version]
    version: u64,
}

fn main() {
    let patch = ContactPatch::default();
    let _ = patch.clone();
    println!("{patch:?}");
    let _: InvoicePatch = serde_json::from_str("{}").unwrap();
    let _ = |p: Profile, c: Cents| (p.city, c.0);
}
