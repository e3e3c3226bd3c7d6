//! Slim3, "Optimistic Locking with version property": Bug 838.
//!
//! Time 1: user A brings up the details page for Bug 838. Time 2: user B does too. Time 3: A
//! assigns it to Jim. Time 4: B assigns it to Sally, and without a version check B's update would
//! silently stomp on A's. With one, B gets `ConcurrentModification`, and sees who it is assigned to
//! now before deciding again.
//!
//! Each "page" carries the version it was rendered with, and the save is Slim3's
//! `Datastore.get(class, key, version)` followed by a checked `put`.
//!
//! Then the tracker's list: the open bugs assigned to Jim, newest first, two a page, each page
//! after the last bug of the one before (a keyset cursor, as a web API's `?after=` carries it).
//!
//! Run: `cargo run --example bug_tracker`

mod common;

use versioned::{AnyStorage, Cursor, Error, Store, Versioned};

#[derive(Versioned, Debug, Clone)]
#[versioned(table = "bugs")]
struct Bug {
    #[key]
    id: i64,
    title: String,
    #[versioned(index)]
    assignee: Option<String>,
    open: bool,
    /// When it was reported, in seconds.
    opened: i64,
    #[version]
    version: u64,
}

/// What a details page holds: the record as rendered, and so its version.
struct Page {
    bug_id: i64,
    version: u64,
}

async fn open_page(store: &Store<AnyStorage>, user: &str, bug_id: i64) -> Result<Page, common::Failure> {
    let bug = store.get::<Bug>(&bug_id).await?.ok_or("no such bug")?;
    println!("{user} opens Bug {}: {:?}, assigned to {:?} (version {})", bug.id, bug.title, bug.assignee, bug.version);
    Ok(Page { bug_id, version: bug.version })
}

/// Slim3's `updateSalary` shape: read at the page's version, change, checked put.
async fn assign(store: &Store<AnyStorage>, user: &str, page: &Page, to: &str) -> versioned::Result<Bug> {
    let mut bug = Bug::get_with_version(store, &page.bug_id, page.version).await?;
    bug.assignee = Some(to.into());
    bug.put(store).await?;
    println!("{user} assigns Bug {} to {to} (now version {})", bug.id, bug.version);
    Ok(bug)
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    let store = common::open("bug_tracker").await?;
    store.create_table::<Bug>().await?;
    store
        .insert(&mut Bug {
            id: 838,
            title: "Crash on save".into(),
            assignee: None,
            open: true,
            opened: 100,
            version: 0,
        })
        .await?;

    let page_a = open_page(&store, "Time 1: user A", 838).await?;
    let page_b = open_page(&store, "Time 2: user B", 838).await?;
    assign(&store, "Time 3: user A", &page_a, "Jim").await?;

    let refused = match assign(&store, "Time 4: user B", &page_b, "Sally").await {
        Err(err @ Error::ConcurrentModification { .. }) => err,
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("B's stale assignment was accepted: A's update was stomped on".into()),
    };
    println!("Time 4: user B is refused: {refused}");
    let now = refused.current::<Bug>().ok_or("a conflict carries the stored record")??;
    println!("        B's page reloads: assigned to {:?} (version {})", now.assignee, now.version);
    common::expect(now.assignee.as_deref() == Some("Jim"), "B sees A's assignment to Jim, not a silent overwrite")?;

    // B decides with the fresh state: Sally it is, on purpose this time.
    let page_b = open_page(&store, "Time 5: user B", 838).await?;
    let bug = assign(&store, "Time 5: user B", &page_b, "Sally").await?;
    common::expect(
        bug.assignee.as_deref() == Some("Sally") && bug.version == 3,
        "B's informed reassignment is version 3",
    )?;

    list_open_bugs(&store).await
}

/// The list page: Jim's open bugs, newest first, two a page.
async fn list_open_bugs(store: &Store<AnyStorage>) -> Result<(), common::Failure> {
    for (id, title, assignee, open, opened) in [
        (839, "Typo on the about page", "Jim", true, 110),
        (840, "Slow search", "Jim", true, 120),
        (841, "Logo blurry", "Sally", true, 130),
        (842, "Export fails", "Jim", false, 140),
        (843, "Dark mode", "Jim", true, 150),
    ] {
        let mut bug = Bug { id, title: title.into(), assignee: Some(assignee.into()), open, opened, version: 0 };
        store.insert(&mut bug).await?;
    }
    let jims = || store.find::<Bug>().filter(Bug::ASSIGNEE.eq("Jim") & Bug::OPEN.eq(true)).order_by(Bug::OPENED.desc());
    let mut after: Option<Cursor> = None;
    let mut listed = Vec::new();
    for number in 1.. {
        let page = jims().after_opt(after.take()).page(2).await?;
        let ids: Vec<i64> = page.records.iter().map(|b| b.id).collect();
        println!("Jim's open bugs, page {number}: {ids:?}");
        listed.extend(ids);
        match page.next {
            // What a web page puts in its "next" link, and parses back from it.
            Some(next) => after = Some(next.to_string().parse().map_err(|_| "a cursor parses back")?),
            None => break,
        }
    }
    common::expect(listed == [843, 840, 839], "Jim's open bugs, newest first: Dark mode, Slow search, Typo")?;
    common::expect(jims().count().await? == 3, "three of them")?;
    Ok(())
}
