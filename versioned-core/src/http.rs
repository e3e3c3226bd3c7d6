//! The version as an HTTP precondition (RFC 9110 §8.8.3, §13): entity tags made from a record's
//! key and version, `If-Match` / `If-None-Match` read into the version a write must find, and our
//! errors as responses. Framework-independent, on the [`http`](https://docs.rs/http) crate's types
//! (feature `http`).
//!
//! A handler of `PUT /contacts/7` reads the precondition, sets the version it names on the record,
//! and writes with a checked `put`: a stale tag is refused by the write's own check (no read
//! first), and the refusal is a `412 Precondition Failed` carrying the current tag.
//!
//! ```
//! # use versioned_core as versioned;
//! use versioned::http::{Precondition, Preconditions, Refused};
//! use versioned::{MemoryStorage, Store};
//! # #[derive(versioned_derive::Versioned, Clone, Debug, PartialEq)]
//! # #[versioned(crate = versioned_core)]
//! # struct Contact { #[key] id: i64, name: String, #[version] version: u64 }
//!
//! async fn put_contact(
//!     store: &Store<MemoryStorage>,
//!     headers: &http::HeaderMap,
//!     mut contact: Contact,
//! ) -> Result<http::HeaderValue, Refused> {
//!     match Preconditions::required().read::<Contact>(headers, &contact.id)? {
//!         // `If-Match: "contact:7:3"`: write only over version 3.
//!         Precondition::Version(version) => contact.version = version,
//!         // `If-None-Match: *`: create; a taken key is refused.
//!         Precondition::Absent => contact.version = 0,
//!         // `If-Match: *` (any version: a forced update), or no header in optional mode.
//!         _ => return Err(Refused::new(http::StatusCode::NOT_IMPLEMENTED, "not in this example")),
//!     }
//!     store.save(&mut contact).await.map_err(|err| Refused::from_error(&err, true))?;
//!     Refused::etag(&contact) // the new tag, for the response's `ETag`
//! }
//! # let store = Store::memory();
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! # store.create_table::<Contact>().await.unwrap();
//! let mut headers = http::HeaderMap::new();
//! headers.insert(http::header::IF_NONE_MATCH, "*".parse().unwrap());
//! let created = put_contact(&store, &headers, Contact { id: 7, name: "Amy".into(), version: 0 }).await.unwrap();
//! assert_eq!(created, "\"contact:7:1\"");
//!
//! // Two tabs hold version 1; the first save wins, the second is refused with the current tag.
//! headers.clear();
//! headers.insert(http::header::IF_MATCH, created.clone());
//! put_contact(&store, &headers, Contact { id: 7, name: "Amy Peters".into(), version: 0 }).await.unwrap();
//! let refused = put_contact(&store, &headers, Contact { id: 7, name: "Amy P.".into(), version: 0 }).await.unwrap_err();
//! assert_eq!(refused.status, http::StatusCode::PRECONDITION_FAILED);
//! assert_eq!(refused.etag.unwrap(), "\"contact:7:2\"");
//!
//! // Without a precondition the required mode answers 428.
//! headers.clear();
//! let missing = put_contact(&store, &headers, Contact { id: 7, name: "?".into(), version: 0 }).await.unwrap_err();
//! assert_eq!(missing.status, http::StatusCode::PRECONDITION_REQUIRED);
//! # });
//! ```

use http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::entity::Entity;
use crate::error::Error;
use crate::merge::Collision;
use crate::value::{KeyFor, Value, VersionField};

/// The strong entity tag of version `version` of the record with key `key` in table `table`:
/// `"<table>:<key>:<version>"`, the key percent-encoded. It changes exactly when the version does.
pub fn etag_of(table: &str, key: &Value, version: u64) -> HeaderValue {
    let tag = format!("\"{table}:{}:{version}\"", key_token(key));
    // The derive accepts only identifiers as table names, and the key token is percent-encoded
    // ASCII: every byte is allowed in a header value, so the fallback is never taken.
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// The key as it appears in a tag: unreserved characters as they are, every other byte as `%XX`
/// (so a tag never holds `"`, `,` or `:` from a key).
fn key_token(key: &Value) -> String {
    let raw = match key {
        Value::Text(text) => text.clone().into_bytes(),
        Value::Bytes(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    let mut token = String::with_capacity(raw.len());
    for byte in raw {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            token.push(char::from(byte));
        } else {
            token.push_str(&format!("%{byte:02X}"));
        }
    }
    token
}

/// What a write's request requires of the stored record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition<V> {
    /// `If-Match` names this version of this record: write only over it (a checked write).
    Version(V),
    /// `If-Match: *`: the record must exist, at any version (a forced update).
    Exists,
    /// `If-None-Match: *`: the record must not exist (a create).
    Absent,
    /// No precondition (only in [`Preconditions::optional`] mode).
    None,
}

/// How a service reads preconditions: optional, or required (RFC 6585's `428 Precondition
/// Required` when a write carries neither `If-Match` nor `If-None-Match`, so that no client can
/// write without saying which version it saw).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preconditions {
    required: bool,
}

impl Preconditions {
    /// A write without a precondition is allowed ([`Precondition::None`]).
    pub fn optional() -> Self {
        Preconditions { required: false }
    }

    /// A write without a precondition is refused with `428 Precondition Required`.
    pub fn required() -> Self {
        Preconditions { required: true }
    }

    /// The precondition of a write (`PUT`, `PATCH`, `DELETE`) to the record of `T` with key `key`.
    ///
    /// `If-Match` with tags gives the version of the first strong tag made for this record
    /// ([`etag_of`]); tags of other records, weak tags (which never match a write, RFC 9110
    /// §13.1.1), a version spelled otherwise than `etag_of` spells it (`01`, `+1`: strong tags
    /// compare character by character), version 0 (no stored record has it) or a version above
    /// what the field and storage can hold ([`VersionField::MAX`]) are `412`: none of them can be
    /// the current tag. Nothing is read here: a stale version
    /// is refused by the write's own check. `If-None-Match` is accepted only as `*` on a write.
    pub fn read<T: Entity>(
        &self,
        headers: &HeaderMap,
        key: &(impl KeyFor<T::Key> + ?Sized),
    ) -> Result<Precondition<T::Version>, Refused> {
        let if_match = list(headers, IF_MATCH)?;
        let if_none_match = list(headers, IF_NONE_MATCH)?;
        match (if_match, if_none_match) {
            (Some(_), Some(_)) => {
                Err(Refused::new(StatusCode::BAD_REQUEST, "send If-Match or If-None-Match, not both"))
            }
            (Some(tags), None) => {
                if tags.iter().any(|t| t == "*") {
                    return Ok(Precondition::Exists);
                }
                let key = key.key_value().map_err(|reason| Refused::new(StatusCode::BAD_REQUEST, reason))?;
                let prefix = format!("\"{}:{}:", T::TABLE.name, key_token(&key));
                tags.iter()
                    .filter_map(|tag| stored_version(tag.strip_prefix(&prefix)?.strip_suffix('"')?))
                    .filter(|&version| version <= T::Version::MAX)
                    .find_map(T::Version::from_u64)
                    .map(Precondition::Version)
                    .ok_or_else(|| {
                        Refused::new(StatusCode::PRECONDITION_FAILED, "If-Match names no version of this record")
                    })
            }
            (None, Some(tags)) if tags.iter().all(|t| t == "*") => Ok(Precondition::Absent),
            (None, Some(_)) => {
                Err(Refused::new(StatusCode::BAD_REQUEST, "a write accepts If-None-Match only as `*` (create)"))
            }
            (None, None) if self.required => Err(Refused::new(
                StatusCode::PRECONDITION_REQUIRED,
                "this write needs If-Match with the ETag you read (or If-None-Match: * to create)",
            )),
            (None, None) => Ok(Precondition::None),
        }
    }
}

/// The version a tag's last part names, if it is one a stored record can have, spelled as
/// [`etag_of`] spells it: ASCII digits without a sign or a leading zero, from 1 (every record is
/// stored at version 1 or above) to `u64::MAX`. Any other spelling (`01`, `+1`, `0`) is not the
/// tag of any record: strong comparison is character by character (RFC 9110 §8.8.3.2).
fn stored_version(text: &str) -> Option<u64> {
    let canonical = !text.is_empty() && !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
    if !canonical {
        return None;
    }
    text.parse().ok() // `None` above u64::MAX
}

/// Whether a `GET`'s `If-None-Match` already names `etag` (weak comparison, RFC 9110 §13.1.2):
/// answer `304 Not Modified` then.
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(Some(tags)) = list(headers, IF_NONE_MATCH) else { return false };
    let Ok(etag) = etag.to_str() else { return false };
    let opaque = |tag: &str| tag.strip_prefix("W/").unwrap_or(tag).to_owned();
    tags.iter().any(|tag| tag == "*" || opaque(tag) == opaque(etag))
}

/// The entity tags of every `name` header, split at commas; `None` when there is none.
fn list(headers: &HeaderMap, name: http::header::HeaderName) -> Result<Option<Vec<String>>, Refused> {
    let mut tags = Vec::new();
    for value in headers.get_all(&name) {
        let value = value
            .to_str()
            .map_err(|_| Refused::new(StatusCode::BAD_REQUEST, format!("{name} is not visible ASCII")))?;
        tags.extend(value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned));
    }
    Ok((!tags.is_empty()).then_some(tags))
}

/// A request refused: the status, a short message for the body, the current entity tag when
/// a version check failed (so the client can reload or force), and the records refused.
///
/// [`into_response`](Self::into_response) answers it as plain text;
/// [`into_problem_response`](Self::into_problem_response) as `application/problem+json`
/// (RFC 9457), whose body ([`problem`](Self::problem)) carries the same tag and every refused
/// record, so that an API client needs neither the headers nor the wording of the message:
///
/// ```
/// # use versioned_core as versioned;
/// use versioned::http::Refused;
/// use versioned::Store;
/// # #[derive(versioned_derive::Versioned, Clone, Debug, PartialEq)]
/// # #[versioned(crate = versioned_core)]
/// # struct Contact { #[key] id: i64, name: String, #[version] version: u64 }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = Store::memory();
/// store.create_table::<Contact>().await.unwrap();
/// let mut amy = Contact { id: 7, name: "Amy".into(), version: 0 };
/// let mut jo = Contact { id: 8, name: "Jo".into(), version: 0 };
/// store.insert_all(&mut [amy.clone(), jo.clone()]).await.unwrap();
/// store.put_all(&mut [Contact { version: 1, ..amy.clone() }]).await.unwrap(); // 7 is now at 2
///
/// // One stale write: 412, the current tag in the header and in the body.
/// amy.version = 1;
/// let err = store.put(&mut amy).await.unwrap_err();
/// let response = Refused::from_error(&err, true).into_problem_response();
/// assert_eq!(response.status(), 412);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// assert_eq!(response.headers()["etag"], "\"contact:7:2\"");
/// let problem: serde_json::Value = serde_json::from_str(response.body()).unwrap();
/// assert_eq!(problem["title"], "Precondition Failed");
/// assert_eq!(problem["etag"], "\"contact:7:2\"");
///
/// // A batch refused: 409, every refused record with its stored version and tag.
/// jo.version = 1;
/// let err = store.put_all(&mut [amy, jo]).await.unwrap_err();
/// let problem = Refused::from_error(&err, false).problem();
/// assert_eq!(problem["status"], 409);
/// assert_eq!(
///     problem["records"],
///     serde_json::json!([{
///         "table": "contact", "key": 7, "expected": 1, "actual": 2, "exists": true,
///         "etag": "\"contact:7:2\"",
///     }])
/// );
/// # });
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// The response status.
    pub status: StatusCode,
    /// Why, for the response body.
    pub message: String,
    /// The stored record's tag, for a `412` whose record still exists.
    pub etag: Option<HeaderValue>,
    /// The records the request was refused for: the one of a version conflict, every refused
    /// record of a batch ([`Error::Conflicts`]); empty for other refusals.
    pub records: Vec<RefusedRecord>,
    /// The fields a merging put found changed on both sides ([`Error::Collisions`]), each with
    /// the base, your and the stored value: exactly what someone must decide; empty otherwise.
    pub collisions: Vec<Collision>,
}

/// One record a write was refused for, as a problem's `records` member lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRecord {
    /// The table.
    pub table: &'static str,
    /// The key, as JSON: a number for an integer key, a string for a text or UUID key.
    pub key: serde_json::Value,
    /// The version the write expected; `None` for an insert, which expects no record.
    pub expected: Option<u64>,
    /// The stored version; `None` when no record is stored, or for a key an insert found taken
    /// (whose version the refusal does not know).
    pub actual: Option<u64>,
    /// Whether a record is stored under the key (`false`: it was deleted, or never existed).
    pub exists: bool,
    /// The stored record's tag, where its version is known.
    pub etag: Option<HeaderValue>,
}

impl RefusedRecord {
    /// The record of a version conflict or of a key taken on insert; `None` for other errors.
    fn of(err: &Error) -> Option<Self> {
        match err {
            Error::ConcurrentModification { table, key, expected, actual, .. } => Some(RefusedRecord {
                table,
                key: key_json(key),
                expected: Some(*expected),
                actual: *actual,
                exists: actual.is_some(),
                etag: actual.map(|version| etag_of(table, key, version)),
            }),
            Error::AlreadyExists { table, key } => Some(RefusedRecord {
                table,
                key: key_json(key),
                expected: None,
                actual: None,
                exists: true,
                etag: None,
            }),
            Error::NotFound { table, key } => Some(RefusedRecord {
                table,
                key: key_json(key),
                expected: None,
                actual: None,
                exists: false,
                etag: None,
            }),
            _ => None,
        }
    }

    /// The record as a JSON object: `table`, `key`, `expected`, `actual`, `exists`, and `etag`
    /// where there is one.
    pub fn to_json(&self) -> serde_json::Value {
        let mut record = serde_json::Map::new();
        record.insert("table".to_owned(), self.table.into());
        record.insert("key".to_owned(), self.key.clone());
        record.insert("expected".to_owned(), self.expected.into());
        record.insert("actual".to_owned(), self.actual.into());
        record.insert("exists".to_owned(), self.exists.into());
        if let Some(etag) = self.etag.as_ref().and_then(|e| e.to_str().ok()) {
            record.insert("etag".to_owned(), etag.into());
        }
        serde_json::Value::Object(record)
    }
}

/// A colliding field as a problem's `collisions` member lists it: `field` (the Rust field),
/// `column`, `paths` (JSON pointers inside a JSON field, where the documents collide), and the
/// `base`, `yours` and `theirs` values (a JSON field's as its document).
pub fn collision_json(collision: &Collision) -> serde_json::Value {
    let value = |v: &Value| match v {
        // A JSON field's text is its document.
        Value::Text(text) if !collision.paths.is_empty() => {
            serde_json::from_str(text).unwrap_or_else(|_| text.clone().into())
        }
        other => key_json(other),
    };
    serde_json::json!({
        "field": collision.field,
        "column": collision.column,
        "paths": collision.paths,
        "base": value(&collision.base),
        "yours": value(&collision.mine),
        "theirs": value(&collision.theirs),
    })
}

/// A value as JSON: integers as numbers, text as strings, bytes as lowercase hex.
fn key_json(key: &Value) -> serde_json::Value {
    match key {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(x) => (*x).into(),
        Value::Text(text) => text.clone().into(),
        Value::Bytes(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>().into(),
    }
}

impl Refused {
    /// A refusal with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refused { status, message: message.into(), etag: None, records: Vec::new(), collisions: Vec::new() }
    }

    /// The tag of `t` as stored now (after a write, its new version), or a `500` if its key or
    /// version cannot be stored.
    pub fn etag<T: Entity>(t: &T) -> Result<HeaderValue, Refused> {
        let key = t.key().key_value().map_err(|reason| Refused::new(StatusCode::INTERNAL_SERVER_ERROR, reason))?;
        let version = t
            .version()
            .to_u64()
            .ok_or_else(|| Refused::new(StatusCode::INTERNAL_SERVER_ERROR, "a negative version has no tag"))?;
        Ok(etag_of(T::TABLE.name, &key, version))
    }

    /// Our error as a response, for a request that carried a precondition (`with_precondition`)
    /// or not:
    ///
    /// | error | status |
    /// |---|---|
    /// | `ConcurrentModification` (a stale version; a taken key on create) | `412`, with the current `ETag` if the record exists |
    /// | `AlreadyExists` | `412` with a precondition (`If-None-Match: *`), `409` without |
    /// | `NotFound` | `412` with a precondition (`If-Match` needs a record), `404` without |
    /// | `Conflicts` (a batch) | `409` |
    /// | `LockTimeout`, `RetriesExhausted`, a retryable storage error | `503`, `Retry-After: 1` |
    /// | anything else | `500` |
    ///
    /// [`records`](Self::records) holds the record of a conflict, a taken key or a missing
    /// record, and every refused record of a batch.
    pub fn from_error(err: &Error, with_precondition: bool) -> Self {
        let refused = |status| Refused {
            records: match err {
                Error::Conflicts { conflicts, .. } => conflicts.iter().filter_map(RefusedRecord::of).collect(),
                other => RefusedRecord::of(other).into_iter().collect(),
            },
            ..Refused::new(status, err.to_string())
        };
        match err {
            Error::ConcurrentModification { table, key, actual, .. } => Refused {
                etag: actual.map(|version| etag_of(table, key, version)),
                ..refused(StatusCode::PRECONDITION_FAILED)
            },
            Error::Collisions { table, key, version, collisions, .. } => Refused {
                etag: Some(etag_of(table, key, *version)),
                collisions: collisions.clone(),
                ..refused(StatusCode::PRECONDITION_FAILED)
            },
            Error::AlreadyExists { .. } if with_precondition => refused(StatusCode::PRECONDITION_FAILED),
            Error::AlreadyExists { .. } | Error::Conflicts { .. } => refused(StatusCode::CONFLICT),
            Error::NotFound { .. } if with_precondition => refused(StatusCode::PRECONDITION_FAILED),
            Error::NotFound { .. } => refused(StatusCode::NOT_FOUND),
            Error::LockTimeout { .. } | Error::RetriesExhausted { .. } => refused(StatusCode::SERVICE_UNAVAILABLE),
            e if e.is_retryable() => refused(StatusCode::SERVICE_UNAVAILABLE),
            _ => refused(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The refusal as an RFC 9457 problem details object: `type` (`about:blank`: the status says
    /// what happened), `title` (the status's reason phrase), `status`, `detail` (the message);
    /// and the extension members `etag`, the current tag where there is one, and `records`, the
    /// refused records ([`RefusedRecord::to_json`]) where there are any.
    pub fn problem(&self) -> serde_json::Value {
        let mut problem = serde_json::Map::new();
        problem.insert("type".to_owned(), "about:blank".into());
        problem.insert("title".to_owned(), self.status.canonical_reason().unwrap_or("Error").into());
        problem.insert("status".to_owned(), self.status.as_u16().into());
        problem.insert("detail".to_owned(), self.message.clone().into());
        if let Some(etag) = self.etag.as_ref().and_then(|e| e.to_str().ok()) {
            problem.insert("etag".to_owned(), etag.into());
        }
        if !self.records.is_empty() {
            problem.insert("records".to_owned(), self.records.iter().map(RefusedRecord::to_json).collect());
        }
        if !self.collisions.is_empty() {
            problem.insert("collisions".to_owned(), self.collisions.iter().map(collision_json).collect());
        }
        serde_json::Value::Object(problem)
    }

    /// The refusal as a response: its status, `ETag` (if any), `Retry-After` for a `503`, and
    /// the message as a plain-text body.
    pub fn into_response(self) -> Response<String> {
        let (status, etag) = (self.status, self.etag);
        with_headers(Response::new(self.message), status, etag)
    }

    /// The refusal as an `application/problem+json` response (RFC 9457): the status and headers
    /// of [`into_response`](Self::into_response), the [`problem`](Self::problem) as the body.
    pub fn into_problem_response(self) -> Response<String> {
        let mut response = Response::new(self.problem().to_string());
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        with_headers(response, self.status, self.etag)
    }
}

/// `response` with a refusal's `status`, its `etag`, and `Retry-After` for a `503`.
fn with_headers(mut response: Response<String>, status: StatusCode, etag: Option<HeaderValue>) -> Response<String> {
    *response.status_mut() = status;
    if let Some(etag) = etag {
        response.headers_mut().insert(ETAG, etag);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl std::error::Error for Refused {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(versioned_derive::Versioned, Clone, Debug, PartialEq)]
    #[versioned(crate = crate)]
    struct Book {
        #[key]
        isbn: String,
        #[version]
        version: i32,
    }

    fn headers(pairs: &[(http::header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn tags_change_with_the_version_and_escape_the_key() {
        let key = Value::Text("978-1 \"x\":y".into());
        assert_eq!(etag_of(Book::TABLE.name, &key, 3), "\"book:978-1%20%22x%22%3Ay:3\"");
        assert_ne!(etag_of(Book::TABLE.name, &key, 3), etag_of(Book::TABLE.name, &key, 4));
        let book = Book { isbn: "978-1".into(), version: 2 };
        assert_eq!(Refused::etag(&book).unwrap(), "\"book:978-1:2\"");
    }

    #[test]
    fn if_match_gives_the_version_of_this_record_only() {
        let p = Preconditions::optional();
        let read = |h: &[(http::header::HeaderName, &str)]| p.read::<Book>(&headers(h), "978-1");
        assert_eq!(read(&[(IF_MATCH, "\"book:978-1:4\"")]), Ok(Precondition::Version(4)));
        // A list, over two headers; the first tag of this record counts.
        assert_eq!(
            read(&[(IF_MATCH, "\"book:1:9\", \"book:978-1:5\""), (IF_MATCH, "\"book:978-1:6\"")]).unwrap(),
            Precondition::Version(5)
        );
        assert_eq!(read(&[(IF_MATCH, "*")]), Ok(Precondition::Exists));
        assert_eq!(read(&[(IF_NONE_MATCH, "*")]), Ok(Precondition::Absent));
        assert_eq!(read(&[]), Ok(Precondition::None));
        for refused in [
            &[(IF_MATCH, "W/\"book:978-1:4\"")][..],     // weak: never for a write
            &[(IF_MATCH, "\"book:978-2:4\"")],           // another record
            &[(IF_MATCH, "\"book:978-1:99999999999\"")], // beyond i32
        ] {
            assert_eq!(read(refused).unwrap_err().status, StatusCode::PRECONDITION_FAILED, "{refused:?}");
        }
        assert_eq!(read(&[(IF_NONE_MATCH, "\"book:978-1:4\"")]).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(
            Preconditions::required().read::<Book>(&HeaderMap::new(), "978-1").unwrap_err().status,
            StatusCode::PRECONDITION_REQUIRED
        );
    }

    /// A record whose version is a `u64`: the field holds more than storage does (`i64::MAX`).
    #[derive(versioned_derive::Versioned, Clone, Debug, PartialEq)]
    #[versioned(crate = crate)]
    struct Note {
        #[key]
        id: i64,
        text: String,
        #[version]
        version: u64,
    }

    #[test]
    fn if_match_above_the_largest_storable_version_is_412() {
        let p = Preconditions::required();
        let max = <u64 as VersionField>::MAX; // i64::MAX: what every backend stores
        let read = |version: u64| p.read::<Note>(&headers(&[(IF_MATCH, &format!("\"note:1:{version}\""))]), &1);
        assert_eq!(read(max), Ok(Precondition::Version(max)));
        for above in [max + 1, u64::MAX] {
            assert_eq!(read(above).unwrap_err().status, StatusCode::PRECONDITION_FAILED, "{above}");
        }
    }

    /// The handler of the module's example, over a `u64` version: a tag above what storage can
    /// hold is `412`, as any tag that cannot match, and nothing is written.
    #[tokio::test]
    async fn a_write_under_an_impossible_tag_is_412_not_500() {
        let store = crate::Store::memory();
        store.create_table::<Note>().await.unwrap();
        store.insert(&mut Note { id: 1, text: "a".into(), version: 0 }).await.unwrap();
        let put = async |tag: &str| -> Result<(), Refused> {
            let mut note = Note { id: 1, text: "b".into(), version: 0 };
            match Preconditions::required().read::<Note>(&headers(&[(IF_MATCH, tag)]), &1)? {
                Precondition::Version(version) => note.version = version,
                other => panic!("{other:?}"),
            }
            store.put(&mut note).await.map_err(|err| Refused::from_error(&err, true))
        };
        let above = format!("\"note:1:{}\"", i64::MAX as u64 + 1);
        assert_eq!(put(&above).await.unwrap_err().status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(store.get::<Note>(&1).await.unwrap().unwrap().text, "a");
        put("\"note:1:1\"").await.unwrap();
    }

    /// Strong comparison is character by character (RFC 9110 §8.8.3.2): a tag that spells the
    /// version otherwise than `etag_of` does (a sign, leading zeros, anything but digits) is not
    /// the record's tag, so it is `412`; so is version 0, which no stored record has.
    #[test]
    fn only_the_canonical_spelling_of_a_version_matches() {
        let p = Preconditions::optional();
        let read = |tag: &str| p.read::<Book>(&headers(&[(IF_MATCH, tag)]), "978-1");
        assert_eq!(read("\"book:978-1:1\""), Ok(Precondition::Version(1)));
        assert_eq!(read("\"book:978-1:10\""), Ok(Precondition::Version(10)));
        for tag in [
            "\"book:978-1:01\"",
            "\"book:978-1:+1\"",
            "\"book:978-1:0001\"",
            "\"book:978-1:-1\"",
            "\"book:978-1:0\"",
            "\"book:978-1:00\"",
            "\"book:978-1:-0\"",
            "\"book:978-1:\"",
            "\"book:978-1:1 \"",
            "\"book:978-1:1.0\"",
            "\"book:978-1:1\"x",
        ] {
            assert_eq!(read(tag).unwrap_err().status, StatusCode::PRECONDITION_FAILED, "{tag}");
        }
        // A non-canonical tag beside the canonical one: the canonical one matches.
        assert_eq!(read("\"book:978-1:01\", \"book:978-1:2\""), Ok(Precondition::Version(2)));
    }

    #[test]
    fn errors_map_to_statuses() {
        let key = Value::Text("978-1".into());
        let stale = Error::ConcurrentModification {
            table: "book",
            key: key.clone(),
            expected: 1,
            actual: Some(2),
            current: None,
        };
        let refused = Refused::from_error(&stale, true);
        assert_eq!(
            (refused.status, refused.etag.clone().unwrap()),
            (StatusCode::PRECONDITION_FAILED, HeaderValue::from_static("\"book:978-1:2\""))
        );
        let response = refused.into_response();
        assert_eq!(response.headers()[ETAG], "\"book:978-1:2\"");
        let gone =
            Error::ConcurrentModification { table: "book", key: key.clone(), expected: 1, actual: None, current: None };
        assert_eq!(Refused::from_error(&gone, true).etag, None);
        let missing = Error::NotFound { table: "book", key: key.clone() };
        assert_eq!(Refused::from_error(&missing, true).status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(Refused::from_error(&missing, false).status, StatusCode::NOT_FOUND);
        let collided = Error::Collisions {
            table: "book",
            key: key.clone(),
            version: 4,
            collisions: Vec::new(),
            current: crate::value::Row::new(Vec::new()),
        };
        let refused = Refused::from_error(&collided, false);
        assert_eq!(
            (refused.status, refused.etag.unwrap()),
            (StatusCode::PRECONDITION_FAILED, HeaderValue::from_static("\"book:978-1:4\""))
        );
        let taken = Error::AlreadyExists { table: "book", key };
        assert_eq!(Refused::from_error(&taken, false).status, StatusCode::CONFLICT);
        let busy = Error::LockTimeout { table: Some("book"), key: None };
        assert_eq!(Refused::from_error(&busy, false).into_response().headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn a_conflict_is_a_problem_with_the_current_tag() {
        let stale = Error::ConcurrentModification {
            table: "book",
            key: Value::Text("978-1".into()),
            expected: 1,
            actual: Some(2),
            current: None,
        };
        let refused = Refused::from_error(&stale, true);
        assert_eq!(
            refused.problem(),
            serde_json::json!({
                "type": "about:blank",
                "title": "Precondition Failed",
                "status": 412,
                "detail": stale.to_string(),
                "etag": "\"book:978-1:2\"",
                "records": [{
                    "table": "book", "key": "978-1", "expected": 1, "actual": 2, "exists": true,
                    "etag": "\"book:978-1:2\"",
                }],
            })
        );
        let response = refused.clone().into_problem_response();
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        assert_eq!(response.headers()[ETAG], "\"book:978-1:2\"");
        assert_eq!(serde_json::from_str::<serde_json::Value>(response.body()).unwrap(), refused.problem());
        // The plain-text response is as it was.
        let plain = refused.into_response();
        assert_eq!((plain.body(), plain.headers().get(CONTENT_TYPE)), (&stale.to_string(), None));

        // Deleted meanwhile: no tag anywhere.
        let gone = Error::ConcurrentModification {
            table: "book",
            key: Value::Text("978-1".into()),
            expected: 1,
            actual: None,
            current: None,
        };
        let problem = Refused::from_error(&gone, true).problem();
        assert_eq!(problem.get("etag"), None);
        assert_eq!(
            problem["records"],
            serde_json::json!([{"table": "book", "key": "978-1", "expected": 1, "actual": null, "exists": false}])
        );
    }

    #[test]
    fn a_refused_batch_lists_every_refused_record() {
        let batch = Error::Conflicts {
            table: "note",
            conflicts: vec![
                Error::ConcurrentModification {
                    table: "note",
                    key: Value::Int(1),
                    expected: 3,
                    actual: Some(5),
                    current: None,
                },
                Error::ConcurrentModification {
                    table: "note",
                    key: Value::Int(2),
                    expected: 1,
                    actual: None,
                    current: None,
                },
                Error::AlreadyExists { table: "note", key: Value::Int(3) },
            ],
        };
        let refused = Refused::from_error(&batch, false);
        assert_eq!((refused.status, refused.etag.clone()), (StatusCode::CONFLICT, None));
        let response = refused.into_problem_response();
        assert_eq!(response.headers().get(ETAG), None, "a batch has no one tag");
        let problem: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!(
            problem,
            serde_json::json!({
                "type": "about:blank",
                "title": "Conflict",
                "status": 409,
                "detail": batch.to_string(),
                "records": [
                    {"table": "note", "key": 1, "expected": 3, "actual": 5, "exists": true, "etag": "\"note:1:5\""},
                    {"table": "note", "key": 2, "expected": 1, "actual": null, "exists": false},
                    {"table": "note", "key": 3, "expected": null, "actual": null, "exists": true},
                ],
            })
        );
    }

    /// A batch refused by a store: the records as the problem lists them.
    #[tokio::test]
    async fn a_stores_refused_batch_is_a_problem() {
        let store = crate::Store::memory();
        store.create_table::<Note>().await.unwrap();
        let mut notes = [1, 2, 3].map(|id| Note { id, text: "a".into(), version: 0 });
        store.insert_all(&mut notes).await.unwrap();
        let stale = notes.clone();
        store.put_all(&mut notes[..2]).await.unwrap(); // 1 and 2 at version 2
        let mut stale = stale.to_vec();
        let err = store.put_all(&mut stale).await.unwrap_err();
        let problem = Refused::from_error(&err, false).problem();
        assert_eq!(problem["status"], 409);
        let keys: Vec<_> =
            problem["records"].as_array().unwrap().iter().map(|r| (r["key"].clone(), r["etag"].clone())).collect();
        assert_eq!(keys, [(1.into(), "\"note:1:2\"".into()), (2.into(), "\"note:2:2\"".into())], "{problem}");
        let err = store.insert_all(&mut [Note { id: 3, text: "b".into(), version: 0 }]).await.unwrap_err();
        assert_eq!(
            Refused::from_error(&err, false).problem()["records"],
            serde_json::json!([{"table": "note", "key": 3, "expected": null, "actual": null, "exists": true}])
        );
    }

    /// A merge's collision: `412` with the stored tag, and exactly the colliding fields in the
    /// problem, each with the base, your and the stored value (a JSON field's as its document).
    #[tokio::test]
    async fn a_collision_is_a_problem_listing_the_colliding_fields() {
        #[derive(versioned_derive::Versioned, Clone, Debug, PartialEq)]
        #[versioned(crate = crate, table = "contacts")]
        struct Contact {
            #[key]
            id: i64,
            name: String,
            phone: String,
            #[versioned(json)]
            address: serde_json::Value,
            #[version]
            version: u64,
        }
        let store = crate::Store::memory();
        store.create_table::<Contact>().await.unwrap();
        let address = serde_json::json!({"city": "Oslo", "street": "Main"});
        let mut base = Contact { id: 7, name: "Amy".into(), phone: "555-0100".into(), address, version: 0 };
        store.insert(&mut base).await.unwrap();
        let mut theirs = Contact { phone: "555-0101".into(), ..base.clone() };
        theirs.address["city"] = "Paris".into();
        store.put(&mut theirs).await.unwrap();
        let mut mine = Contact { phone: "555-0102".into(), name: "Amy Lee".into(), ..base.clone() };
        mine.address["city"] = "Rome".into();
        let err = store.put_merging(&base, &mut mine).await.unwrap_err();
        let refused = Refused::from_error(&err, true);
        assert_eq!(
            (refused.status, refused.etag.clone()),
            (StatusCode::PRECONDITION_FAILED, Some(etag_of("contacts", &Value::Int(base.id), 2)))
        );
        let problem = refused.problem();
        let fields: Vec<_> = problem["collisions"].as_array().unwrap().iter().map(|c| c["field"].clone()).collect();
        assert_eq!(fields, ["phone", "address"], "only what both changed: {problem}");
        assert_eq!(problem["collisions"][0]["yours"], "555-0102");
        assert_eq!(problem["collisions"][0]["theirs"], "555-0101");
        assert_eq!(problem["collisions"][1]["paths"], serde_json::json!(["/city"]));
        assert_eq!(problem["collisions"][1]["theirs"]["city"], "Paris");
    }

    #[test]
    fn other_refusals_are_problems_without_records() {
        let busy = Refused::from_error(&Error::LockTimeout { table: Some("book"), key: None }, false);
        let response = busy.into_problem_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let problem: serde_json::Value = serde_json::from_str(response.body()).unwrap();
        assert_eq!((problem["status"].clone(), problem.get("records")), (503.into(), None));
        let missing = Preconditions::required().read::<Book>(&HeaderMap::new(), "978-1").unwrap_err();
        assert_eq!(missing.problem()["title"], "Precondition Required");
    }

    #[test]
    fn get_answers_not_modified_on_a_matching_tag() {
        let etag = HeaderValue::from_static("\"book:978-1:2\"");
        assert!(not_modified(&headers(&[(IF_NONE_MATCH, "W/\"book:978-1:2\"")]), &etag));
        assert!(!not_modified(&headers(&[(IF_NONE_MATCH, "\"book:978-1:1\"")]), &etag));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }
}
