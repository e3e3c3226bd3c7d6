//! OutSystems, "How To Handle Concurrent Updates on Application Data Records": Force Update.
//!
//! Amy Peters (user A) and Lawrence Ricci (user B) open the same contact. Amy edits a field and
//! saves. Lawrence edits a field and saves: the save detects the conflict, rolls back, and tells
//! him who changed the record and when (the audit fields of the stored record the conflict
//! carries), with the versions and what is stored now.
//! Lawrence then chooses: cancel, keeping Amy's data, or Force Update with his own. Here he
//! forces, which is `put_unchecked`: no check, and the version still moves forward.
//!
//! Run: `cargo run --example force_update`

mod common;

use std::time::SystemTime;

use versioned::{Error, Versioned};

#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "contacts")]
struct Contact {
    #[key]
    id: i64,
    name: String,
    phone: String,
    email: String,
    #[versioned(created_at)]
    created_on: SystemTime,
    #[versioned(updated_at)]
    updated_on: SystemTime,
    #[versioned(updated_by)]
    updated_by: String,
    #[version]
    version: u64,
}

fn at(time: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_millis(time)
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    let store = common::open("force_update").await?;
    store.create_table::<Contact>().await?;
    let mut contact = Contact {
        id: 7,
        name: "Jo Doe".into(),
        phone: "555-0100".into(),
        email: "jo@example.com".into(),
        created_on: SystemTime::UNIX_EPOCH, // set by the store
        updated_on: SystemTime::UNIX_EPOCH, // set by the store
        updated_by: "admin".into(),
        version: 0,
    };
    store.insert(&mut contact).await?;
    println!("0. admin creates contact 7 at {}", at(contact.created_on));

    // 1. Both users access the same record.
    let mut amys_form = store.get::<Contact>(&7).await?.ok_or("no contact")?;
    let mut lawrences_form = store.get::<Contact>(&7).await?.ok_or("no contact")?;
    println!("1. Amy and Lawrence open contact 7 at version {}", amys_form.version);

    // 2. Amy edits a field and saves.
    amys_form.phone = "555-0199".into();
    amys_form.updated_by = "Amy Peters".into();
    amys_form.put(&store).await?;
    println!(
        "2. Amy saves phone = {} (version {}, at {})",
        amys_form.phone,
        amys_form.version,
        at(amys_form.updated_on)
    );

    // 3. Lawrence edits a field and tries to save: a conflict, nothing written.
    lawrences_form.email = "jo.doe@example.com".into();
    lawrences_form.updated_by = "Lawrence Ricci".into();
    let (conflict, expected, actual) = match lawrences_form.put(&store).await {
        Err(err @ Error::ConcurrentModification { expected, actual, .. }) => (err, expected, actual),
        Err(other) => return Err(other.into()),
        Ok(()) => return Err("Lawrence's stale save was accepted".into()),
    };
    let stored = conflict.current::<Contact>().ok_or("a conflict carries the stored record")??;
    println!("3. Lawrence's save is refused: {conflict}");
    println!(
        "   warning shown: this contact was changed by {} at {} since you opened it (you had version {expected}, it is now {})",
        stored.updated_by,
        at(stored.updated_on),
        actual.map_or("deleted".to_string(), |v| v.to_string())
    );
    println!("   stored now: phone = {}, email = {}", stored.phone, stored.email);
    common::expect(stored.updated_by == "Amy Peters", "the conflict says Amy changed the record")?;
    common::expect(stored.updated_on == amys_form.updated_on, "and when she did")?;
    common::expect(lawrences_form.version == 1, "the refused save left Lawrence's form as it was")?;
    common::expect(store.get::<Contact>(&7).await?.as_ref() == Some(&amys_form), "the store still holds Amy's save")?;

    // 4. Lawrence decides to force the update with his data.
    println!("4. Lawrence chooses Force Update");
    lawrences_form.put_unchecked(&store).await?;
    println!(
        "   saved: phone = {}, email = {} (version {}, by {} at {})",
        lawrences_form.phone,
        lawrences_form.email,
        lawrences_form.version,
        lawrences_form.updated_by,
        at(lawrences_form.updated_on)
    );

    let now = store.get::<Contact>(&7).await?.ok_or("no contact")?;
    common::expect(now == lawrences_form, "Lawrence's data is stored, as he chose")?;
    common::expect(now.version == 3, "the forced write still moved the version forward (3), never reusing one")?;
    common::expect(
        now.phone == "555-0100",
        "forcing a full update wrote back Lawrence's old phone: that is what Force means",
    )?;
    common::expect(now.created_on == contact.created_on, "the creation time never changes")?;
    Ok(())
}
