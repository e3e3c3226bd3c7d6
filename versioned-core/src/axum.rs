//! The [`http`](crate::http) layer as axum pieces (feature `axum`): an extractor for a request's
//! preconditions ([`WriteHeaders`]) and `IntoResponse` for a refusal
//! ([`Refused`](crate::http::Refused): `application/problem+json` with its status, `ETag` and
//! `Retry-After`), so that a handler reads its precondition and answers a conflict in a few
//! lines:
//!
//! ```
//! # use versioned_core as versioned;
//! use axum::extract::{Path, State};
//! use axum::http::StatusCode;
//! use versioned::axum::WriteHeaders;
//! use versioned::http::{Precondition, Refused};
//! use versioned::{MemoryStorage, Store};
//! # #[derive(versioned_derive::Versioned)]
//! # #[versioned(crate = versioned_core)]
//! # struct Contact { #[key] id: i64, name: String, #[version] version: u64 }
//!
//! /// `DELETE /contacts/{id}` with `If-Match: "contact:7:3"`.
//! async fn delete(
//!     State(store): State<Store<MemoryStorage>>,
//!     Path(id): Path<i64>,
//!     headers: WriteHeaders,
//! ) -> Result<StatusCode, Refused> {
//!     // No If-Match: 428; a tag of another record: 412.
//!     let Precondition::Version(version) = headers.required::<Contact>(&id)? else {
//!         return Err(Refused::new(StatusCode::PRECONDITION_REQUIRED, "If-Match with the ETag you read"));
//!     };
//!     // A stale version: 412 with the stored record's ETag, as problem+json.
//!     store.delete_with_version::<Contact>(&id, version).await.map_err(|err| Refused::from_error(&err, true))?;
//!     Ok(StatusCode::NO_CONTENT)
//! }
//! # let _ = axum::Router::<Store<MemoryStorage>>::new().route("/contacts/{id}", axum::routing::delete(delete));
//! ```

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::HeaderMap;
use http::header::{IF_MATCH, IF_NONE_MATCH};
use http::request::Parts;

use crate::entity::Entity;
use crate::http::{Precondition, Preconditions, Refused, not_modified};
use crate::value::KeyFor;

/// The precondition headers of a request (`If-Match`, `If-None-Match`), extracted; read them
/// for the record the request is about with [`required`](Self::required) or
/// [`optional`](Self::optional) (see [`Preconditions::read`]), or answer a `GET` with
/// [`not_modified`](Self::not_modified). Never rejects a request by itself.
#[derive(Debug, Clone, Default)]
pub struct WriteHeaders(HeaderMap);

impl WriteHeaders {
    /// The precondition of a write to the record of `T` with key `key`; a write without one is
    /// refused with `428 Precondition Required`.
    pub fn required<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
    ) -> Result<Precondition<T::Version>, Refused> {
        Preconditions::required().read::<T>(&self.0, key)
    }

    /// The precondition of a write to the record of `T` with key `key`, if any
    /// ([`Precondition::None`] without one).
    pub fn optional<T: Entity>(
        &self,
        key: &(impl KeyFor<T::Key> + ?Sized),
    ) -> Result<Precondition<T::Version>, Refused> {
        Preconditions::optional().read::<T>(&self.0, key)
    }

    /// Whether a `GET`'s `If-None-Match` already names `etag`: answer `304 Not Modified`.
    pub fn not_modified(&self, etag: &http::HeaderValue) -> bool {
        not_modified(&self.0, etag)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WriteHeaders {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut headers = HeaderMap::new();
        for name in [IF_MATCH, IF_NONE_MATCH] {
            for value in parts.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        Ok(WriteHeaders(headers))
    }
}

/// A refusal as an `application/problem+json` response (RFC 9457; see
/// [`Refused::into_problem_response`]): what a handler returning `Result<_, Refused>` answers.
/// (Called by hand, `refused.into_response()` is the inherent plain-text
/// [`Refused::into_response`]; write `IntoResponse::into_response(refused)` for this one.)
impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        self.into_problem_response().map(axum_core::body::Body::from)
    }
}

#[cfg(test)]
mod tests {
    use http::header::{CONTENT_TYPE, ETAG, RETRY_AFTER};
    use http::{HeaderValue, Request, StatusCode};

    use super::*;
    use crate::error::Error;
    use crate::value::Value;

    #[derive(versioned_derive::Versioned, Debug, Clone)]
    #[versioned(crate = crate, table = "contact")]
    struct Contact {
        #[key]
        id: i64,
        #[version]
        version: u64,
    }

    async fn extracted(request: Request<()>) -> WriteHeaders {
        let (mut parts, ()) = request.into_parts();
        let Ok(headers) = WriteHeaders::from_request_parts(&mut parts, &()).await;
        headers
    }

    #[tokio::test]
    async fn the_extractor_reads_if_match_and_if_none_match() {
        let request = Request::builder().header("If-Match", "\"contact:7:3\"").body(()).expect("a request");
        let headers = extracted(request).await;
        assert_eq!(headers.required::<Contact>(&7), Ok(Precondition::Version(3)));
        let other = headers.required::<Contact>(&8).expect_err("a tag of another record");
        assert_eq!(other.status, StatusCode::PRECONDITION_FAILED);
        let none = extracted(Request::new(())).await;
        assert_eq!(none.required::<Contact>(&7).expect_err("428").status, StatusCode::PRECONDITION_REQUIRED);
        assert_eq!(none.optional::<Contact>(&7), Ok(Precondition::None));
        let create = extracted(Request::builder().header("If-None-Match", "*").body(()).expect("a request")).await;
        assert_eq!(create.required::<Contact>(&7), Ok(Precondition::Absent));
        let get =
            extracted(Request::builder().header("If-None-Match", "\"contact:7:3\"").body(()).expect("a request")).await;
        assert!(get.not_modified(&HeaderValue::from_static("\"contact:7:3\"")));
    }

    #[test]
    fn a_refusal_is_a_problem_response_with_its_headers() {
        let stale = Error::ConcurrentModification {
            table: "contact",
            key: Value::Int(7),
            expected: 1,
            actual: Some(2),
            current: None,
        };
        let response = IntoResponse::into_response(Refused::from_error(&stale, true));
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(response.headers()[ETAG], "\"contact:7:2\"");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/problem+json");
        let busy = Error::LockTimeout { table: Some("contact"), key: None };
        let response = IntoResponse::into_response(Refused::from_error(&busy, true));
        assert_eq!(
            (response.status(), &response.headers()[RETRY_AFTER]),
            (StatusCode::SERVICE_UNAVAILABLE, &HeaderValue::from_static("1"))
        );
    }
}
