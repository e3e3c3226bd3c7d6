//! The contact form (`examples/contacts_web`) in a real headless browser: OutSystems' two users in
//! two Chromium windows, the second one's save refused with "changed by Amy Peters at …", then
//! forced.
//!
//! Runs when `VERSIONED_CHROMEDRIVER` names a chromedriver (`.ci/run` installs Debian's
//! `chromium` and `chromium-driver` and sets it); says it was skipped otherwise:
//!
//! ```sh
//! VERSIONED_CHROMEDRIVER=/usr/bin/chromedriver cargo test --all-features --test browser
//! ```
//!
//! The test serves the example's router on 127.0.0.1 (a free port), starts chromedriver on another
//! free loopback port with Chromium headless, and stops chromedriver (and the browser under it)
//! when it ends, panics included. A screenshot of the conflict goes to `target/browser/`.

#[allow(dead_code)] // the example's module; the test uses part of it
#[path = "../../examples/contacts_web/app.rs"]
mod app;

use std::future::IntoFuture;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::{Contact, Form};
use fantoccini::wd::{Capabilities, WindowHandle};
use fantoccini::{Client, ClientBuilder, Locator};
use versioned::{AnyStorage, Store};

/// Held by each test for its whole run: two at once would race for loopback ports (a port one
/// test's chromedriver was given can be handed to the other's app before chromedriver binds it)
/// and share two cores between two browsers.
static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long any one thing in the page may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(10);

/// Says `line` in the test's output even when libtest captures `println!` (written to the
/// process's stderr directly, which the capture does not take).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// chromedriver, started by the test in a process group of its own, so that the browsers it
/// starts go with it. Dropping it (at the end, or while a failed assertion unwinds) kills the
/// group by its id, then reaps the driver.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start(path: &str, log: &std::path::Path) -> Chromedriver {
        let port = free_port();
        let mut command = Command::new(path);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = command.spawn().unwrap_or_else(|e| panic!("VERSIONED_CHROMEDRIVER={path} cannot be started: {e}"));
        let driver = Chromedriver { child, port };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on port {port} (log: {})", log.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The group's id is the driver's pid (process_group(0)); Chromium's processes are in it.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|status| {
            status.lines().any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `target/browser/`, beside the test's own scratch directory.
fn output_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().map_or(tmp.clone(), |target| target.join("browser"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

async fn browser(driver: &Chromedriver) -> Client {
    let mut args = vec!["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,720"];
    if running_as_root() {
        args.push("--no-sandbox");
    }
    let mut capabilities = Capabilities::new();
    capabilities.insert("goog:chromeOptions".into(), serde_json::json!({ "args": args }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("a Chromium session from chromedriver at {}: {e}", driver.url()))
}

/// Replaces the text of the input `#id` with `value`.
async fn type_into(client: &Client, id: &str, value: &str) {
    let input = client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("no input #{id}: {e}"));
    input.clear().await.expect("clear the input");
    input.send_keys(value).await.expect("type into the input");
}

/// Waits for an element with `id` whose text contains `text`, and returns its text.
async fn wait_for_text(client: &Client, id: &str, text: &str) -> String {
    let xpath = format!("//*[@id='{id}'][contains(., '{text}')]");
    let found = client.wait().at_most(PATIENCE).for_element(Locator::XPath(&xpath)).await;
    match found {
        Ok(element) => element.text().await.expect("the element's text"),
        Err(e) => {
            let now = match client.find(Locator::Id(id)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => "(no such element)".into(),
            };
            panic!("#{id} never said {text:?} ({e}); it says {now:?}")
        }
    }
}

/// The app, on a free loopback port, over a memory store holding contact 7 (version 1): the
/// store, the app's address, and its server task.
async fn contact_seven() -> (Store<AnyStorage>, String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let store: Store<AnyStorage> = Store::connect("memory:").await.expect("a memory store");
    store.create_table::<Contact>().await.expect("the contacts table");
    let form = Form { name: "Jo Doe".into(), email: "jo@example.com".into(), phone: "555-0100".into() };
    store.insert(&mut Contact::new(7, form, "admin")).await.expect("contact 7");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the app");
    let app = format!("http://{}", listener.local_addr().expect("the app's address"));
    let server = tokio::spawn(axum::serve(listener, app::router(store.clone())).into_future());
    (store, app, server)
}

/// Two windows open contact 7 at `app` (with `query` after the user): Amy's, then Lawrence's.
async fn two_windows(client: &Client, app: &str, query: &str) -> (WindowHandle, WindowHandle) {
    let amy = client.window().await.expect("the first window");
    client.goto(&format!("{app}/contacts/7?user=Amy%20Peters{query}")).await.expect("Amy opens contact 7");
    wait_for_text(client, "etag", "contacts:7:1").await;
    let lawrence = client.new_window(false).await.expect("a second window").handle;
    client.switch_to_window(lawrence.clone()).await.expect("switch to Lawrence's window");
    client.goto(&format!("{app}/contacts/7?user=Lawrence%20Ricci{query}")).await.expect("Lawrence opens contact 7");
    wait_for_text(client, "etag", "contacts:7:1").await;
    wait_for_text(client, "user", "Lawrence Ricci").await;
    (amy, lawrence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_windows_conflict_and_force_update() {
    let Ok(chromedriver) = std::env::var("VERSIONED_CHROMEDRIVER") else {
        say("skipped: set VERSIONED_CHROMEDRIVER=/usr/bin/chromedriver");
        return;
    };
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let started = Instant::now();
    let out = output_dir();

    let (store, app, server) = contact_seven().await;
    let driver = Chromedriver::start(&chromedriver, &out.join("chromedriver.log"));
    let client = browser(&driver).await;
    let (amy, lawrence) = two_windows(&client, &app, "").await;

    // Window 1: Amy edits the phone and saves.
    client.switch_to_window(amy).await.expect("switch to Amy's window");
    type_into(&client, "phone", "555-0199").await;
    client.find(Locator::Id("save")).await.expect("Save").click().await.expect("click Save");
    let saved = wait_for_text(&client, "status", "Saved by Amy Peters").await;
    say(&format!("window 1 (Amy): {saved}"));
    wait_for_text(&client, "etag", "contacts:7:2").await;

    // Window 2: Lawrence edits the email and saves with the tag his page has: refused.
    client.switch_to_window(lawrence).await.expect("switch to Lawrence's window");
    type_into(&client, "email", "jo.doe@example.com").await;
    client.find(Locator::Id("save")).await.expect("Save").click().await.expect("click Save");
    let message = wait_for_text(&client, "message", "changed by Amy Peters at").await;
    say(&format!("window 2 (Lawrence): {message}"));
    let force = client.find(Locator::Id("force")).await.expect("a Force update button");
    assert!(force.is_displayed().await.expect("is it shown"), "Force update is offered");
    let reload = client.find(Locator::Id("reload")).await.expect("a Reload button");
    assert!(reload.is_displayed().await.expect("is it shown"), "Reload is offered");
    let stored = store.get::<Contact>(&7).await.expect("read contact 7").expect("contact 7");
    assert_eq!((stored.version, stored.phone.as_str()), (2, "555-0199"), "the refused save wrote nothing");
    assert!(message.contains(&app::at(stored.updated_on)), "the message says when Amy saved: {message}");
    let screenshot = out.join("conflict.png");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(&screenshot, png).unwrap_or_else(|e| panic!("write {}: {e}", screenshot.display()));
    say(&format!("screenshot of the conflict: {}", screenshot.display()));

    // Lawrence chooses Force update.
    force.click().await.expect("click Force update");
    let forced = wait_for_text(&client, "status", "Saved by Lawrence Ricci").await;
    say(&format!("window 2 (Lawrence) forced: {forced}"));
    wait_for_text(&client, "etag", "contacts:7:3").await;
    let conflict_shown = client
        .find(Locator::Id("conflict"))
        .await
        .expect("the conflict box")
        .is_displayed()
        .await
        .expect("is it shown");
    assert!(!conflict_shown, "the conflict box is gone after the forced save");

    // The store holds window 2's values at version 3 (insert 1, Amy's save 2, forced 3).
    let stored = store.get::<Contact>(&7).await.expect("read contact 7").expect("contact 7");
    assert_eq!(
        (stored.name.as_str(), stored.email.as_str(), stored.phone.as_str()),
        ("Jo Doe", "jo.doe@example.com", "555-0100"),
        "window 2's form is stored, its old phone included: that is what Force means"
    );
    assert_eq!((stored.updated_by.as_str(), stored.version), ("Lawrence Ricci", 3));

    client.close().await.expect("end the browser session");
    drop(driver);
    server.abort();
    say(&format!("browser test: {:.1} s", started.elapsed().as_secs_f64()));
}

/// The same two windows with `?merge=1`: Lawrence's edit of another field than Amy's is merged
/// without a word; then both change the email, and his page shows only that field, his value
/// beside hers, with Keep mine / Keep theirs; he keeps his, and every other change (his name, her
/// phone) is kept too. A screenshot of the collision goes to `target/browser/collision.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_windows_merge_and_resolve_field_by_field() {
    let Ok(chromedriver) = std::env::var("VERSIONED_CHROMEDRIVER") else {
        say("skipped: set VERSIONED_CHROMEDRIVER=/usr/bin/chromedriver");
        return;
    };
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let out = output_dir();
    let (store, app, server) = contact_seven().await;
    let driver = Chromedriver::start(&chromedriver, &out.join("chromedriver-merge.log"));
    let client = browser(&driver).await;
    let (amy, lawrence) = two_windows(&client, &app, "&merge=1").await;

    // A disjoint edit: Amy the phone, then Lawrence the name, both from version 1: merged.
    client.switch_to_window(amy.clone()).await.expect("switch to Amy's window");
    type_into(&client, "phone", "555-0199").await;
    client.find(Locator::Id("save")).await.expect("Save").click().await.expect("click Save");
    wait_for_text(&client, "etag", "contacts:7:2").await;
    client.switch_to_window(lawrence.clone()).await.expect("switch to Lawrence's window");
    type_into(&client, "name", "Joe Doe").await;
    client.find(Locator::Id("save")).await.expect("Save").click().await.expect("click Save");
    let merged = wait_for_text(&client, "status", "merged with what others changed since: phone").await;
    say(&format!("window 2 (Lawrence), merged: {merged}"));
    wait_for_text(&client, "etag", "contacts:7:3").await;
    let phone = client.find(Locator::Id("phone")).await.expect("the phone").prop("value").await.expect("its value");
    assert_eq!(phone.as_deref(), Some("555-0199"), "his form now shows Amy's phone");
    let stored = store.get::<Contact>(&7).await.expect("read").expect("contact 7");
    assert_eq!((stored.name.as_str(), stored.phone.as_str(), stored.version), ("Joe Doe", "555-0199", 3));

    // A collision: Amy (reloaded at 3) and Lawrence both change the email; he also fixes the name.
    client.switch_to_window(amy).await.expect("switch to Amy's window");
    client.refresh().await.expect("Amy reloads");
    wait_for_text(&client, "etag", "contacts:7:3").await;
    type_into(&client, "email", "amy.says@example.com").await;
    client.find(Locator::Id("save")).await.expect("Save").click().await.expect("click Save");
    wait_for_text(&client, "etag", "contacts:7:4").await;
    client.switch_to_window(lawrence).await.expect("switch to Lawrence's window");
    type_into(&client, "email", "lawrence.says@example.com").await;
    type_into(&client, "name", "Joe Dough").await;
    client.find(Locator::Id("save")).await.expect("Save").click().await.expect("click Save");
    let message = wait_for_text(&client, "collision-message", "changed the same fields").await;
    say(&format!("window 2 (Lawrence), collision: {message}"));
    let mut rows = Vec::new();
    for row in client.find_all(Locator::Css("#collided tr")).await.expect("the colliding fields") {
        rows.push(row.text().await.expect("a row"));
    }
    assert_eq!(rows.len(), 1, "only the email collides: {rows:?}");
    assert!(
        rows[0].contains("email")
            && rows[0].contains("lawrence.says@example.com")
            && rows[0].contains("amy.says@example.com"),
        "the field, his value and hers, side by side: {rows:?}"
    );
    client.find(Locator::Id("keep-theirs-email")).await.expect("Keep theirs").is_displayed().await.expect("shown");
    let stored = store.get::<Contact>(&7).await.expect("read").expect("contact 7");
    assert_eq!((stored.email.as_str(), stored.name.as_str()), ("amy.says@example.com", "Joe Doe"), "nothing written");
    client.execute("document.getElementById('collisions').scrollIntoView()", vec![]).await.expect("scroll");
    let screenshot = out.join("collision.png");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(&screenshot, png).unwrap_or_else(|e| panic!("write {}: {e}", screenshot.display()));
    say(&format!("screenshot of the collision: {}", screenshot.display()));

    // He keeps his email (Keep mine is chosen) and saves his choices.
    client.find(Locator::Id("keep-mine-email")).await.expect("Keep mine").click().await.expect("choose mine");
    client.find(Locator::Id("resolve")).await.expect("Save my choices").click().await.expect("click");
    let saved = wait_for_text(&client, "status", "Saved by Lawrence Ricci").await;
    say(&format!("window 2 (Lawrence), resolved: {saved}"));
    wait_for_text(&client, "etag", "contacts:7:5").await;
    let stored = store.get::<Contact>(&7).await.expect("read").expect("contact 7");
    assert_eq!(
        (stored.name.as_str(), stored.email.as_str(), stored.phone.as_str(), stored.version),
        ("Joe Dough", "lawrence.says@example.com", "555-0199", 5),
        "his choice, his name fix and Amy's phone"
    );
    let versions: Vec<u64> = store.history::<Contact>(&7).await.expect("history").iter().map(|r| r.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);

    client.close().await.expect("end the browser session");
    drop(driver);
    server.abort();
}

/// The contact list, filtered by the start of the name, walked page by page through its "Next
/// page" links: each page's contacts in name order, every contact once, though one is added
/// before the page it would sort into has been reached and one ahead of the pages is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contact_list_pages_by_cursor() {
    let Ok(chromedriver) = std::env::var("VERSIONED_CHROMEDRIVER") else {
        say("skipped: set VERSIONED_CHROMEDRIVER=/usr/bin/chromedriver");
        return;
    };
    let _one = ONE_BROWSER_AT_A_TIME.lock().await;
    let out = output_dir();
    let store: Store<AnyStorage> = Store::connect("memory:").await.expect("a memory store");
    store.create_table::<Contact>().await.expect("the contacts table");
    let names =
        ["Ann Fox", "Ann Bell", "Bob Ray", "Ann Cole", "Ann Dahl", "Ann Eve", "ann low", "Ann Gray", "Ann Hill"];
    for (id, name) in (1..).zip(names) {
        let form = Form { name: name.into(), email: format!("{id}@example.com"), phone: "555-0100".into() };
        store.insert(&mut Contact::new(id, form, "admin")).await.expect("a contact");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the app");
    let app = format!("http://{}", listener.local_addr().expect("the app's address"));
    let server = tokio::spawn(axum::serve(listener, app::router(store.clone())).into_future());
    let driver = Chromedriver::start(&chromedriver, &out.join("chromedriver-list.log"));
    let client = browser(&driver).await;

    client.goto(&format!("{app}/contacts?q=Ann")).await.expect("open the list");
    let mut pages = Vec::new();
    loop {
        client.wait().at_most(PATIENCE).for_element(Locator::Id("contacts")).await.expect("the list");
        let mut page = Vec::new();
        for row in client.find_all(Locator::Css("#contacts li a")).await.expect("the rows") {
            page.push(row.text().await.expect("a name"));
        }
        say(&format!("list page {}: {page:?}", pages.len() + 1));
        pages.push(page);
        if pages.len() == 1 {
            // Between pages: a contact that sorts into the first page (already shown), and one
            // of a later page deleted.
            let form = Form { name: "Ann Abe".into(), email: "abe@example.com".into(), phone: "555-0101".into() };
            store.insert(&mut Contact::new(50, form, "admin")).await.expect("a contact added");
            store.delete_unchecked::<Contact>(&6).await.expect("Ann Eve deleted");
        }
        match client.find(Locator::Id("next")).await {
            Ok(next) => next.click().await.expect("click Next page"),
            Err(_) => break,
        }
    }
    assert_eq!(
        pages,
        [vec!["Ann Bell", "Ann Cole", "Ann Dahl"], vec!["Ann Fox", "Ann Gray", "Ann Hill"]],
        "by name, case-sensitive (\"ann low\" is not an \"Ann\"), each once, the deleted one gone"
    );
    client.find(Locator::Id("end")).await.expect("the last page says so");

    // A cursor that is not one is refused.
    client.goto(&format!("{app}/contacts?q=Ann&after=nonsense")).await.expect("a bad cursor");
    let body = client.find(Locator::Css("body")).await.expect("the body").text().await.expect("its text");
    assert!(body.contains("not a cursor"), "{body}");

    client.close().await.expect("end the browser session");
    drop(driver);
    server.abort();
}
