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

use http::header::{ETAG, IF_MATCH, IF_NONE_MATCH, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::entity::Entity;
use crate::error::Error;
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
    /// §13.1.1) or a version the field cannot hold are `412`. Nothing is read here: a stale version
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
                    .filter_map(|tag| tag.strip_prefix(&prefix)?.strip_suffix('"')?.parse::<u64>().ok())
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

/// A request refused: the status, a short message for the body, and the current entity tag when
/// a version check failed (so the client can reload or force).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The response status.
    pub status: StatusCode,
    /// Why, for the response body.
    pub message: String,
    /// The stored record's tag, for a `412` whose record still exists.
    pub etag: Option<HeaderValue>,
}

impl Refused {
    /// A refusal with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refused { status, message: message.into(), etag: None }
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
    pub fn from_error(err: &Error, with_precondition: bool) -> Self {
        let refused = |status| Refused::new(status, err.to_string());
        match err {
            Error::ConcurrentModification { table, key, actual, .. } => Refused {
                etag: actual.map(|version| etag_of(table, key, version)),
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

    /// The refusal as a response: its status, `ETag` (if any), `Retry-After` for a `503`, and
    /// the message as a plain-text body.
    pub fn into_response(self) -> Response<String> {
        let mut response = Response::new(self.message);
        *response.status_mut() = self.status;
        if let Some(etag) = self.etag {
            response.headers_mut().insert(ETAG, etag);
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
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
        let taken = Error::AlreadyExists { table: "book", key };
        assert_eq!(Refused::from_error(&taken, false).status, StatusCode::CONFLICT);
        let busy = Error::LockTimeout { table: Some("book"), key: None };
        assert_eq!(Refused::from_error(&busy, false).into_response().headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn get_answers_not_modified_on_a_matching_tag() {
        let etag = HeaderValue::from_static("\"book:978-1:2\"");
        assert!(not_modified(&headers(&[(IF_NONE_MATCH, "W/\"book:978-1:2\"")]), &etag));
        assert!(!not_modified(&headers(&[(IF_NONE_MATCH, "\"book:978-1:1\"")]), &etag));
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }
}
