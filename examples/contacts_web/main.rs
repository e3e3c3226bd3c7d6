//! OutSystems, "How To Handle Concurrent Updates on Application Data Records", as a web page.
//!
//! Amy Peters and Lawrence Ricci open contact 7 in two browser tabs. Each page carries the
//! record's `ETag` (`"contacts:7:1"`), and its script saves with `PUT` and `If-Match`. Amy saves
//! first. Lawrence's save names version 1, which is no longer stored: the write's own check
//! refuses it (`412 Precondition Failed`), and his page says "changed by Amy Peters at …" and
//! offers "Force update" (`If-Match: *`: his values over whatever is stored) or "Reload".
//!
//! With `&merge=1` on both URLs, the tabs merge instead: an edit of other fields than the ones
//! saved since is merged over them (the contact keeps its version history, which supplies the
//! version each tab started from), and only fields both changed are asked about, side by side,
//! with "Keep mine" / "Keep theirs" for each (issue 28's story).
//!
//! Run: `cargo run --example contacts_web --features axum`, then open
//! <http://127.0.0.1:3000/contacts/7?user=Amy%20Peters> and
//! <http://127.0.0.1:3000/contacts/7?user=Lawrence%20Ricci> in two tabs (Ctrl-C stops it).
//!
//! With `-- --check` (as CI runs it) it serves on a free loopback port instead, plays the two tabs
//! itself over HTTP, and exits non-zero if the story does not come out as OutSystems tells it.
//! The same page in headless Chromium: `tests/browser/`.

#[path = "../common/mod.rs"]
mod common;

mod app;

use std::future::IntoFuture;
use std::io::{Read, Write};
use std::net::SocketAddr;

use app::{Answer, Contact, Form};
use versioned::{AnyStorage, Store};

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    let check = std::env::args().skip(1).any(|arg| arg == "--check");
    let store = common::open("contacts_web").await?;
    store.create_table::<Contact>().await?;
    let form = Form { name: "Jo Doe".into(), email: "jo@example.com".into(), phone: "555-0100".into() };
    store.insert(&mut Contact::new(7, form, "admin")).await?;

    let listener = tokio::net::TcpListener::bind(if check { "127.0.0.1:0" } else { "127.0.0.1:3000" }).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(axum::serve(listener, app::router(store.clone())).into_future());
    if !check {
        println!("Open contact 7 as two users, in two tabs:");
        println!("  http://{addr}/contacts/7?user=Amy%20Peters");
        println!("  http://{addr}/contacts/7?user=Lawrence%20Ricci");
        println!("Save in one, then in the other. Ctrl-C stops the server.");
        server.await??;
        return Ok(());
    }
    let story = two_tabs(addr, &store).await;
    server.abort();
    story
}

/// The two tabs of the OutSystems sample, played over HTTP against the server at `addr`.
async fn two_tabs(addr: SocketAddr, store: &Store<AnyStorage>) -> Result<(), common::Failure> {
    let amy = "/contacts/7?user=Amy%20Peters";
    let lawrence = "/contacts/7?user=Lawrence%20Ricci";
    println!("serving on http://{addr}\n");

    // 1. Both open the contact: the same page and tag.
    let amys_page = send(addr, "GET", amy, &[], None).await?;
    let lawrences_page = send(addr, "GET", lawrence, &[], None).await?;
    let tag = amys_page.header("etag").ok_or("the page has no ETag")?.to_owned();
    println!("1. Amy and Lawrence open contact 7: {} with ETag {tag}", amys_page.status);
    common::expect(amys_page.status == 200 && lawrences_page.header("etag") == Some(&tag), "both pages carry one tag")?;
    common::expect(tag == "\"contacts:7:1\"", "the tag names the contact and its version 1")?;
    common::expect(amys_page.body.contains("value=\"Jo Doe\""), "the form shows the contact")?;
    common::expect(
        amys_page.body.contains("data-etag=\"&quot;contacts:7:1&quot;\""),
        "the page keeps the tag for its save",
    )?;
    let again = send(addr, "GET", amy, &[("If-None-Match", &tag)], None).await?;
    common::expect(again.status == 304, "a GET naming the current tag is 304 Not Modified")?;

    // 2. Amy edits the phone and saves: her tag matches.
    let amys_save = Form { name: "Jo Doe".into(), email: "jo@example.com".into(), phone: "555-0199".into() };
    let saved = send(addr, "PUT", amy, &[("If-Match", &tag)], Some(&amys_save)).await?;
    println!("2. Amy saves phone = 555-0199 with If-Match {tag}: {} {}", saved.status, saved.answer()?.message);
    common::expect(saved.status == 200, "Amy's save is accepted")?;
    common::expect(saved.header("etag") == Some("\"contacts:7:2\""), "and answers the new tag")?;

    // 3. Lawrence edits the email and saves with the tag his page has: refused.
    let lawrences_save = Form { name: "Jo Doe".into(), email: "jo.doe@example.com".into(), phone: "555-0100".into() };
    let refused = send(addr, "PUT", lawrence, &[("If-Match", &tag)], Some(&lawrences_save)).await?;
    let answer = refused.answer()?;
    println!("3. Lawrence saves email = jo.doe@example.com with If-Match {tag}: {}", refused.status);
    println!("   his page says: {}", answer.message);
    common::expect(refused.status == 412, "Lawrence's stale save is 412 Precondition Failed")?;
    common::expect(refused.header("etag") == Some("\"contacts:7:2\""), "the refusal carries the current tag")?;
    let theirs = answer.stored.ok_or("the refusal carries the stored record")?;
    common::expect(theirs.updated_by == "Amy Peters", "the page says Amy Peters changed the contact")?;
    common::expect(
        answer.message.contains(&format!("changed by Amy Peters at {}", theirs.updated_at)),
        "and when she did",
    )?;
    let now = store.get::<Contact>(&7).await?.ok_or("no contact 7")?;
    common::expect(now.version == 2 && now.phone == "555-0199", "the store still holds Amy's save")?;
    let unconditional = send(addr, "PUT", lawrence, &[], Some(&lawrences_save)).await?;
    common::expect(unconditional.status == 428, "a save without If-Match is 428 Precondition Required")?;

    // 4. Lawrence chooses Force update: his values over whatever is stored.
    let forced = send(addr, "PUT", lawrence, &[("If-Match", "*")], Some(&lawrences_save)).await?;
    println!("4. Lawrence chooses Force update (If-Match: *): {} {}", forced.status, forced.answer()?.message);
    common::expect(forced.status == 200, "the forced save is accepted")?;
    common::expect(forced.header("etag") == Some("\"contacts:7:3\""), "at version 3")?;
    let now = store.get::<Contact>(&7).await?.ok_or("no contact 7")?;
    common::expect(
        (now.email.as_str(), now.phone.as_str(), now.updated_by.as_str(), now.version)
            == ("jo.doe@example.com", "555-0100", "Lawrence Ricci", 3),
        "Lawrence's form is stored, his old phone included: that is what Force means",
    )?;
    let reloaded = send(addr, "GET", amy, &[("If-None-Match", &tag)], None).await?;
    common::expect(
        reloaded.status == 200 && reloaded.body.contains("value=\"jo.doe@example.com\""),
        "Amy's reload shows the forced contact",
    )?;

    // 5. Forcing needs a record: `If-Match: *` never creates one.
    let nobody = Form { name: "Nobody".into(), email: "-".into(), phone: "-".into() };
    let missing = send(addr, "PUT", "/contacts/8?user=Amy%20Peters", &[("If-Match", "*")], Some(&nobody)).await?;
    println!("5. Force update of contact 8, which does not exist: {}", missing.status);
    common::expect(missing.status == 412, "If-Match: * on a missing contact is 412")?;
    common::expect(store.get::<Contact>(&8).await?.is_none(), "and creates nothing")?;

    // 6. Creating is If-None-Match: *, once.
    let created = send(addr, "PUT", "/contacts/8?user=Amy%20Peters", &[("If-None-Match", "*")], Some(&nobody)).await?;
    let twice = send(addr, "PUT", "/contacts/8?user=Amy%20Peters", &[("If-None-Match", "*")], Some(&nobody)).await?;
    println!("6. Create contact 8 with If-None-Match: *: {}; again: {}", created.status, twice.status);
    common::expect(
        created.status == 201 && created.header("etag") == Some("\"contacts:8:1\""),
        "created at version 1",
    )?;
    common::expect(twice.status == 412, "a second create of the same id is 412")?;
    merging(addr, store).await
}

/// The same two tabs with `?merge=1`: edits of different fields merge; edits of one field are
/// refused with exactly that field, and resolved field by field.
async fn merging(addr: SocketAddr, store: &Store<AnyStorage>) -> Result<(), common::Failure> {
    let amy = "/contacts/7?user=Amy%20Peters&merge=1";
    let lawrence = "/contacts/7?user=Lawrence%20Ricci&merge=1";
    let page = send(addr, "GET", amy, &[], None).await?;
    let tag = page.header("etag").ok_or("the page has no ETag")?.to_owned();
    let base = store.get::<Contact>(&7).await?.ok_or("no contact 7")?;
    let form =
        |name: &str, email: &str, phone: &str| Form { name: name.into(), email: email.into(), phone: phone.into() };

    // 7. Amy changes the name, Lawrence (same version) the phone: merged, nothing asked.
    let amys = form("Jo Dough", &base.email, &base.phone);
    let saved = send(addr, "PUT", amy, &[("If-Match", &tag)], Some(&amys)).await?;
    let lawrences = form(&base.name, &base.email, "555-0123");
    let merged = send(addr, "PUT", lawrence, &[("If-Match", &tag)], Some(&lawrences)).await?;
    let answer = merged.answer()?;
    println!(
        "7. With merging, Amy saves the name and Lawrence the phone over {tag}: {} then {}",
        saved.status, merged.status
    );
    println!("   his page says: {}", answer.message);
    common::expect(saved.status == 200 && merged.status == 200, "both saves are accepted")?;
    common::expect(answer.merged == ["name"], "Lawrence's answer says Amy's name was merged in")?;
    let now = store.get::<Contact>(&7).await?.ok_or("no contact 7")?;
    common::expect(
        (now.name.as_str(), now.phone.as_str(), now.version) == ("Jo Dough", "555-0123", base.version + 2),
        "both edits are stored",
    )?;
    common::expect(merged.header("etag") == Some(&*format!("\"contacts:7:{}\"", now.version)), "with the new tag")?;

    // 8. Both change the email from the same version: 412 with exactly that field, both values.
    let tag = merged.header("etag").ok_or("no tag")?.to_owned();
    let amys = form(&now.name, "amy@example.com", &now.phone);
    send(addr, "PUT", amy, &[("If-Match", &tag)], Some(&amys)).await?;
    let lawrences = form("Joe Dough", "lawrence@example.com", &now.phone);
    let refused = send(addr, "PUT", lawrence, &[("If-Match", &tag)], Some(&lawrences)).await?;
    let answer = refused.answer()?;
    println!("8. Both change the email over {tag}: Lawrence's save is {}", refused.status);
    println!("   his page says: {}", answer.message);
    common::expect(refused.status == 412, "a collision is 412")?;
    common::expect(
        answer.collisions
            == [app::Collided {
                field: "email".into(),
                yours: "lawrence@example.com".into(),
                theirs: "amy@example.com".into(),
            }],
        "exactly the colliding field, his value and hers (his name change is not asked about)",
    )?;
    let stored = store.get::<Contact>(&7).await?.ok_or("no contact 7")?;
    common::expect(stored.email == "amy@example.com" && stored.name == "Jo Dough", "nothing of his was written")?;

    // 9. He keeps his email; saved over the stored version with his name change.
    let current = refused.header("etag").ok_or("the refusal has no tag")?.to_owned();
    let resolved = form("Joe Dough", "lawrence@example.com", &stored.phone);
    let done = send(addr, "PUT", lawrence, &[("If-Match", &current)], Some(&resolved)).await?;
    println!("9. He keeps his email and saves over {current}: {} {}", done.status, done.answer()?.message);
    let now = store.get::<Contact>(&7).await?.ok_or("no contact 7")?;
    common::expect(
        done.status == 200 && (now.name.as_str(), now.email.as_str()) == ("Joe Dough", "lawrence@example.com"),
        "his choice and his other edit are stored",
    )?;
    let history = store.history::<Contact>(&7).await?;
    println!("   contact 7's history keeps {} versions", history.len());
    common::expect(history.last().map(|r| r.version) == Some(now.version), "the history ends at the stored version")?;
    Ok(())
}

/// An HTTP response, as the tests read it.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn answer(&self) -> Result<Answer, common::Failure> {
        serde_json::from_str(&self.body).map_err(|e| format!("{}: {e}: {}", self.status, self.body).into())
    }
}

/// One HTTP/1.1 request on a connection of its own (`Connection: close`, read to the end): a
/// client in a few lines, since the server is ours and answers with a `Content-Length`.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&Form>,
) -> Result<Reply, common::Failure> {
    let body = form.map(serde_json::to_string).transpose()?.unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if form.is_some() {
        request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let raw = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        stream.write_all(request.as_bytes())?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(raw)
    })
    .await??;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("a response without a blank line")?;
    let mut lines = head.lines();
    let status = lines.next().and_then(|line| line.split(' ').nth(1)).ok_or("no status line")?.parse()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Reply { status, headers, body: body.to_owned() })
}
