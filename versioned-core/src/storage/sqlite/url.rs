//! What an SQLite URL asks for, checked before sqlx parses it: that it is an SQLite URL at all,
//! and whether it opens an in-memory or a read-only database.

use crate::error::{Error, Result};

/// What [`SqliteStorage::connect`](super::SqliteStorage::connect) needs to know of a URL before sqlx parses it.
#[derive(Debug, PartialEq)]
pub(super) struct UrlInfo {
    pub(super) in_memory: bool,
    pub(super) read_only: bool,
}

pub(super) const URL_FORMS: &str =
    "expected `sqlite://path/to/file.db` (add `?mode=rwc` to create it) or `sqlite::memory:`";

/// Checks that `url` is an SQLite URL, and says what it asks for.
pub(super) fn inspect_url(url: &str) -> Result<UrlInfo> {
    if url.trim().is_empty() {
        return Err(Error::config(format!("the SQLite URL is empty; {URL_FORMS}")));
    }
    let scheme = url.split_once(':').map(|(scheme, _)| scheme).filter(|scheme| {
        scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    let Some(scheme) = scheme else {
        return Err(Error::config(format!("{url:?} is not a URL; {URL_FORMS}")));
    };
    if !scheme.eq_ignore_ascii_case("sqlite") {
        return Err(Error::config(format!(
            "{url:?} is a `{scheme}:` URL, but this is the SQLite backend; {URL_FORMS}"
        )));
    }
    let rest = url[scheme.len() + 1..].trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(Error::config(format!("{url:?} names no database file; {URL_FORMS}")));
    }
    let params: Vec<(&str, &str)> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    let has = |key: &str, values: &[&str]| params.iter().any(|(k, v)| *k == key && values.contains(v));
    Ok(UrlInfo {
        in_memory: path == ":memory:" || has("mode", &["memory"]),
        read_only: has("mode", &["ro"]) || has("immutable", &["1", "true"]),
    })
}
