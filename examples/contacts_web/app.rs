//! The contact form as a web service (axum): the page, and the handlers behind it. Shared by the
//! `contacts_web` example and the browser test (`tests/browser/`), which serve this same router.
//!
//! - `GET /contacts/{id}` answers the form with the record's `ETag` (and `304 Not Modified` when
//!   the browser's `If-None-Match` already names it).
//! - `PUT /contacts/{id}` with `If-Match: "contacts:7:1"` saves over version 1 only: the version
//!   from the header goes into the write's own check (`UPDATE … WHERE version = 1`), never a
//!   read first. A stale tag is `412 Precondition Failed` with the current `ETag` and the stored
//!   record, whose audit fields tell who changed it and when.
//! - `PUT` with `If-Match: *` is the user's "Force update": whatever version is stored is
//!   overwritten, but a deleted contact is not brought back.
//! - `PUT` with `If-None-Match: *` creates; a `PUT` with neither is `428 Precondition Required`.
//! - With `?merge=1` (on the page's URL, which its script saves to), a save whose `If-Match`
//!   names an old version is merged against that version's record, read from the contact's
//!   history (`#[versioned(history)]`): an edit of fields nobody else changed since is saved
//!   over the changes of others (the answer says what it was merged with, with the new `ETag`);
//!   fields both changed are `412` with exactly those fields, yours and theirs, which the page
//!   shows side by side with "Keep mine" / "Keep theirs" for each.
//!
//! - `GET /contacts?q=Jo&after=…` lists the contacts whose name starts with `q`, by name,
//!   [`PER_PAGE`] at a time; "Next page" links to the same list after the page's last contact (a
//!   keyset cursor in the URL, never an offset).
//!
//! Who is signed in comes from `?user=` — a stand-in for a real session (a cookie, a token).

use std::time::SystemTime;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use versioned::axum::WriteHeaders;
use versioned::http::{Precondition, Refused};
use versioned::{AnyStorage, Check, Cursor, Page, Store, Versioned};

/// The OutSystems contact, with its audit attributes.
#[derive(Versioned, Debug, Clone, PartialEq)]
#[versioned(table = "contacts", history)]
pub struct Contact {
    #[key]
    pub id: i64,
    pub name: String,
    pub email: String,
    pub phone: String,
    #[versioned(created_at)]
    pub created_on: SystemTime,
    #[versioned(updated_at)]
    pub updated_on: SystemTime,
    #[versioned(updated_by)]
    pub updated_by: String,
    #[version]
    pub version: u64,
}

impl Contact {
    /// A new contact, to be inserted (the store sets the timestamps and the version).
    pub fn new(id: i64, form: Form, by: &str) -> Self {
        Contact {
            id,
            name: form.name,
            email: form.email,
            phone: form.phone,
            created_on: SystemTime::UNIX_EPOCH, // set by the store
            updated_on: SystemTime::UNIX_EPOCH, // set by the store
            updated_by: by.to_owned(),
            version: 0,
        }
    }
}

/// What the form sends: the fields a user edits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Form {
    pub name: String,
    pub email: String,
    pub phone: String,
}

/// The stored record as the page shows it: after a save, and in a `412` (who changed it, when).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Stored {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub updated_by: String,
    pub updated_at: String,
    pub version: u64,
}

impl From<&Contact> for Stored {
    fn from(c: &Contact) -> Self {
        Stored {
            name: c.name.clone(),
            email: c.email.clone(),
            phone: c.phone.clone(),
            updated_by: c.updated_by.clone(),
            updated_at: at(c.updated_on),
            version: c.version,
        }
    }
}

/// A response body: the outcome in words, and the stored record when there is one to show; for
/// a merging save, the fields taken from others' changes, or the fields that collided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub message: String,
    pub stored: Option<Stored>,
    #[serde(default)]
    pub merged: Vec<String>,
    #[serde(default)]
    pub collisions: Vec<Collided>,
}

/// A field both you and another writer changed since the version you saved over.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Collided {
    pub field: String,
    pub yours: String,
    pub theirs: String,
}

/// A time as the page shows it: RFC 3339, UTC, to the millisecond.
pub fn at(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Who is signed in (`?user=`), and whether saves merge (`?merge=1`).
#[derive(Debug, Deserialize)]
pub struct Who {
    user: Option<String>,
    merge: Option<String>,
}

impl Who {
    fn name(&self) -> &str {
        self.user.as_deref().filter(|u| !u.trim().is_empty()).unwrap_or("Anonymous")
    }

    fn merges(&self) -> bool {
        matches!(self.merge.as_deref(), Some("1" | "true" | "on"))
    }
}

/// The application: `/contacts/{id}` over `store`, whose `contacts` table must exist.
pub fn router(store: Store<AnyStorage>) -> Router {
    Router::new().route("/contacts", get(list)).route("/contacts/{id}", get(show).put(save)).with_state(store)
}

/// How many contacts a list page shows.
pub const PER_PAGE: u64 = 3;

/// `GET /contacts`'s query: the name's start, and where the page starts.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    after: Option<String>,
}

/// `GET /contacts?q=…&after=…`: a page of the contacts whose name starts with `q`, by name, and a
/// link to the next page carrying its cursor. A cursor that is not one, or is another query's, is
/// `400 Bad Request`.
async fn list(State(store): State<Store<AnyStorage>>, Query(query): Query<ListQuery>) -> Response {
    let bad = |reason: String| (StatusCode::BAD_REQUEST, reason).into_response();
    let after = match query.after.as_deref().map(str::parse::<Cursor>).transpose() {
        Ok(after) => after,
        Err(err) => return bad(err.to_string()),
    };
    let q = query.q.unwrap_or_default();
    let page = store
        .find::<Contact>()
        .filter(Contact::NAME.starts_with(&q))
        .order_by(Contact::NAME)
        .after_opt(after)
        .page(PER_PAGE)
        .await;
    match page {
        Ok(page) => Html(list_page(&q, &page)).into_response(),
        Err(err @ versioned::Error::Query { .. }) => bad(err.to_string()),
        Err(err) => refused(&err),
    }
}

/// The list page: one line per contact, linking to its form, and "Next page" when one follows.
fn list_page(q: &str, page: &Page<Contact>) -> String {
    let mut rows = String::new();
    for c in &page.records {
        rows.push_str(&fill(
            r#"<li id="contact-{id}"><a href="/contacts/{id}">{name}</a> <span class="meta">{email}</span></li>"#,
            &[("id", c.id.to_string()), ("name", c.name.clone()), ("email", c.email.clone())],
        ));
    }
    let next = match &page.next {
        Some(cursor) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("q", q)
                .append_pair("after", &cursor.to_string())
                .finish();
            fill(r#"<a id="next" href="/contacts?{query}">Next page</a>"#, &[("query", query)])
        }
        None => r#"<p id="end">No more contacts.</p>"#.to_owned(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Contacts</title></head>\n<body>\n{}\n<ul id=\"contacts\">{rows}</ul>\n{next}\n</body>\n</html>\n",
        fill(r#"<h1>Contacts starting with “{q}”</h1>"#, &[("q", q.to_owned())])
    )
}

/// `GET /contacts/{id}`: the form, with the record's `ETag`.
async fn show(
    State(store): State<Store<AnyStorage>>,
    Path(id): Path<i64>,
    Query(who): Query<Who>,
    headers: WriteHeaders,
) -> Result<Response, Response> {
    let contact = store
        .get::<Contact>(&id)
        .await
        .map_err(|err| refusal(Refused::from_error(&err, false), None))?
        .ok_or_else(|| refusal(Refused::new(StatusCode::NOT_FOUND, format!("no contact {id}")), None))?;
    let etag = Refused::etag(&contact).map_err(|refused| refusal(refused, None))?;
    let mut response = if headers.not_modified(&etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Html(page(&contact, &etag, who.name())).into_response()
    };
    response.headers_mut().insert(header::ETAG, etag);
    // The browser keeps the page but asks again each time (answered 304 while the tag holds).
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// `PUT /contacts/{id}`: a save, checked against the version the page's `If-Match` names.
async fn save(
    State(store): State<Store<AnyStorage>>,
    Path(id): Path<i64>,
    Query(who): Query<Who>,
    headers: WriteHeaders,
    Json(form): Json<Form>,
) -> Result<Response, Response> {
    let by = who.name();
    let precondition = headers.required::<Contact>(&id).map_err(|refused| refusal(refused, None))?;
    let mut merged = Vec::new();
    let (status, contact) = match precondition {
        // Merging: the page's edit of version v, merged over what others saved since v (read
        // from the history) where no field collides; the put is checked all the same.
        Precondition::Version(version) if who.merges() => {
            let mut contact = Contact { version, ..Contact::new(id, form, by) };
            let outcome = store.put_merging_from_history(&mut contact).await.map_err(|err| refused(&err))?;
            merged = outcome.theirs.iter().map(|field| (*field).to_owned()).collect();
            (StatusCode::OK, contact)
        }
        // The page's tag names version v: write only over v, checked by the write itself.
        Precondition::Version(version) => {
            let mut contact = Contact { version, ..Contact::new(id, form, by) };
            store.put(&mut contact).await.map_err(|err| refused(&err))?;
            (StatusCode::OK, contact)
        }
        // "Force update": overwrite whatever version is stored. A patch of every field the form
        // has is a full update that never creates, as `If-Match: *` requires a record to exist
        // (`put_unchecked` would upsert, and bring a deleted contact back).
        Precondition::Exists => {
            let all = ContactPatch::default().name(form.name).email(form.email).phone(form.phone).updated_by(by);
            let contact = store.patch::<Contact>(&id, all, Check::Unchecked).await.map_err(|err| refused(&err))?;
            (StatusCode::OK, contact)
        }
        // `If-None-Match: *`: create; a taken id is refused.
        Precondition::Absent => {
            let mut contact = Contact::new(id, form, by);
            store.insert(&mut contact).await.map_err(|err| refused(&err))?;
            (StatusCode::CREATED, contact)
        }
        // `Preconditions::required()` answers 428 before this.
        Precondition::None => {
            return Err(refusal(Refused::new(StatusCode::PRECONDITION_REQUIRED, "If-Match is required"), None));
        }
    };
    let etag = Refused::etag(&contact).map_err(|refused| refusal(refused, None))?;
    let stored = Stored::from(&contact);
    let mut message = format!("Saved by {} at {} (version {})", stored.updated_by, stored.updated_at, stored.version);
    if !merged.is_empty() {
        message.push_str(&format!(", merged with what others changed since: {}", merged.join(", ")));
    }
    let answer = Answer { message, stored: Some(stored), merged, collisions: Vec::new() };
    let mut response = (status, Json(answer)).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    Ok(response)
}

/// A write's error as a response (a precondition was sent): a conflict carries the stored record,
/// which the page shows as "changed by … at …".
fn refused(err: &versioned::Error) -> Response {
    let stored = err.current::<Contact>().and_then(Result::ok);
    refusal(Refused::from_error(err, true), stored.as_ref())
}

/// The refusal's status and headers (`ETag`, `Retry-After`), with a JSON body for the page.
fn refusal(refused: Refused, stored: Option<&Contact>) -> Response {
    let text = |value: &versioned::Value| match value {
        versioned::Value::Text(text) => text.clone(),
        other => format!("{other:?}"),
    };
    let collisions: Vec<Collided> = refused
        .collisions
        .iter()
        .map(|c| Collided { field: c.field.to_owned(), yours: text(&c.mine), theirs: text(&c.theirs) })
        .collect();
    let message = match stored {
        Some(c) if !collisions.is_empty() => format!(
            "{} changed the same fields at {} (version {}): choose, for each, your value or theirs.",
            c.updated_by,
            at(c.updated_on),
            c.version
        ),
        Some(c) => format!(
            "This contact was changed by {} at {} since you opened it (it is now at version {}).",
            c.updated_by,
            at(c.updated_on),
            c.version
        ),
        None => refused.message.clone(),
    };
    let (parts, _) = refused.into_response().into_parts();
    let answer = Answer { message, stored: stored.map(Stored::from), merged: Vec::new(), collisions };
    let mut response = Json(answer).into_response();
    *response.status_mut() = parts.status;
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped (for content and quoted attributes alike).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The form page. The tag and the user travel in data attributes; the script saves with
/// `fetch(PUT)` and `If-Match`, and on a `412` shows who changed the contact and offers
/// "Force update" (`If-Match: *`) or "Reload".
fn page(c: &Contact, etag: &HeaderValue, user: &str) -> String {
    fill(
        PAGE,
        &[
            ("id", c.id.to_string()),
            ("etag", etag.to_str().unwrap_or_default().to_owned()),
            ("user", user.to_owned()),
            ("name", c.name.clone()),
            ("email", c.email.clone()),
            ("phone", c.phone.clone()),
            ("updated_by", c.updated_by.clone()),
            ("updated_at", at(c.updated_on)),
            ("version", c.version.to_string()),
        ],
    )
}

/// `template` with each `{name}` of `values` replaced by its value, escaped, in one pass (so a
/// value is never read as a placeholder); any other brace is kept as it is (CSS, JavaScript).
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            values.iter().find(|(n, _)| *n == name).map(|(_, v)| (close, v))
        });
        match value {
            Some((close, value)) => {
                out.push_str(&escape(value));
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Contact {id}</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 44em; color: #222; }
  h1 { font-size: 1.4em; margin-bottom: 0.2em; }
  .who, .meta { color: #666; font-size: 0.9em; }
  label { display: block; margin: 0.6em 0; }
  label span { display: inline-block; width: 5em; }
  input { font: inherit; padding: 0.3em; width: 20em; }
  button { font: inherit; padding: 0.35em 1em; margin-right: 0.5em; }
  #conflict { border: 2px solid #c60; background: #fff4e5; padding: 0.8em 1em; margin: 1em 0; }
  #conflict p { margin: 0.3em 0; }
  #collisions { border: 2px solid #36c; background: #eef4ff; padding: 0.8em 1em; margin: 1em 0; }
  #collisions table { border-collapse: collapse; margin: 0.5em 0; }
  #collisions th, #collisions td { border: 1px solid #9ab; padding: 0.3em 0.6em; text-align: left; }
  #collisions input[type=radio] { width: auto; margin: 0 0.3em 0 0; }
  #collisions label { margin: 0.2em 0; white-space: nowrap; }
  #message { font-weight: bold; }
  #status { color: #060; }
  #status.error { color: #a00; }
</style>
</head>
<body>
<h1>Contact {id}</h1>
<p class="who">Signed in as <b id="user">{user}</b></p>
<form id="contact" data-etag="{etag}">
  <label><span>Name</span> <input id="name" name="name" value="{name}"></label>
  <label><span>Email</span> <input id="email" name="email" value="{email}"></label>
  <label><span>Phone</span> <input id="phone" name="phone" value="{phone}"></label>
  <p class="meta">Version <span id="version">{version}</span>, last changed by
    <span id="changed-by">{updated_by}</span> at <span id="changed-at">{updated_at}</span>.
    ETag <code id="etag">{etag}</code></p>
  <button id="save" type="submit">Save</button>
</form>
<div id="conflict" hidden>
  <p id="message"></p>
  <p>Stored now: <span id="theirs"></span></p>
  <p>Save your values over theirs, or reload to see the stored contact.</p>
  <button id="force" type="button">Force update</button>
  <button id="reload" type="button">Reload</button>
</div>
<div id="collisions" hidden>
  <p id="collision-message"></p>
  <table>
    <thead><tr><th>Field</th><th>Yours</th><th>Theirs</th><th>Keep</th></tr></thead>
    <tbody id="collided"></tbody>
  </table>
  <p class="meta">Every other change, yours and theirs, is kept.</p>
  <button id="resolve" type="button">Save my choices</button>
</div>
<p id="status" role="status"></p>
<script>
const form = document.getElementById('contact');
const conflict = document.getElementById('conflict');
const collisions = document.getElementById('collisions');
const status = document.getElementById('status');
const FIELDS = ['name', 'email', 'phone'];
// The refusal being resolved: the stored record, its tag, the colliding fields.
let pending = null;

function edited() {
  return Object.fromEntries(FIELDS.map((f) => [f, form.elements[f].value]));
}

async function save(ifMatch, fields) {
  status.textContent = 'Saving…';
  status.className = '';
  let response, answer;
  try {
    response = await fetch(location.pathname + location.search, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'If-Match': ifMatch },
      body: JSON.stringify(fields),
    });
    answer = await response.json();
  } catch (err) {
    status.textContent = 'Not saved: ' + err;
    status.className = 'error';
    return;
  }
  if (response.ok) {
    form.dataset.etag = response.headers.get('ETag');
    document.getElementById('etag').textContent = form.dataset.etag;
    // What is stored now (others' merged changes included) is the base of the next edit.
    for (const f of FIELDS) {
      form.elements[f].value = answer.stored[f];
      form.elements[f].defaultValue = answer.stored[f];
    }
    document.getElementById('version').textContent = answer.stored.version;
    document.getElementById('changed-by').textContent = answer.stored.updated_by;
    document.getElementById('changed-at').textContent = answer.stored.updated_at;
    conflict.hidden = true;
    collisions.hidden = true;
    pending = null;
    status.textContent = answer.message;
  } else if (response.status === 412 && answer.collisions.length > 0) {
    showCollisions(answer, response.headers.get('ETag'));
  } else if (response.status === 412 && answer.stored) {
    const s = answer.stored;
    document.getElementById('message').textContent = answer.message;
    document.getElementById('theirs').textContent =
      `${s.name}, ${s.email}, ${s.phone} (changed by ${s.updated_by} at ${s.updated_at})`;
    conflict.hidden = false;
    status.textContent = '';
  } else {
    status.textContent = `Not saved (${response.status}): ${answer.message}`;
    status.className = 'error';
  }
}

// Only the fields both changed, side by side, each with Keep mine / Keep theirs.
function showCollisions(answer, etag) {
  pending = { etag, stored: answer.stored, collisions: answer.collisions };
  document.getElementById('collision-message').textContent = answer.message;
  const body = document.getElementById('collided');
  body.replaceChildren();
  for (const c of answer.collisions) {
    const row = body.insertRow();
    row.id = `collided-${c.field}`;
    row.insertCell().textContent = c.field;
    row.insertCell().textContent = c.yours;
    row.insertCell().textContent = c.theirs;
    const keep = row.insertCell();
    for (const [side, label] of [['mine', 'Keep mine'], ['theirs', 'Keep theirs']]) {
      const choice = document.createElement('label');
      const radio = document.createElement('input');
      Object.assign(radio, { type: 'radio', name: `keep-${c.field}`, value: side, id: `keep-${side}-${c.field}` });
      radio.checked = side === 'mine';
      choice.append(radio, ' ' + label + ' ');
      keep.append(choice);
    }
  }
  collisions.hidden = false;
  status.textContent = '';
}

// Saved over the stored version: your other edits, their other changes, and each choice.
document.getElementById('resolve').addEventListener('click', () => {
  const fields = {};
  for (const f of FIELDS) {
    const input = form.elements[f];
    fields[f] = input.value !== input.defaultValue ? input.value : pending.stored[f];
  }
  for (const c of pending.collisions) {
    const keep = document.querySelector(`input[name="keep-${c.field}"]:checked`).value;
    // Mine is what the form holds now (edited again since the refusal, maybe).
    fields[c.field] = keep === 'mine' ? form.elements[c.field].value : c.theirs;
  }
  save(pending.etag, fields);
});
form.addEventListener('submit', (event) => { event.preventDefault(); save(form.dataset.etag, edited()); });
document.getElementById('force').addEventListener('click', () => save('*', edited()));
document.getElementById('reload').addEventListener('click', () => location.reload());
</script>
</body>
</html>
"#;
