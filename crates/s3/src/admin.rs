//! The admin API: SigV4-signed, root only, on the S3 port.
//!
//! Requests are `GET|POST /?bulwark-admin=<command>[&bucket=B][&wait=true]`.
//! The root path with this query parameter is not an S3 operation, so it
//! cannot collide with a bucket or key name; `s3s` verifies the signature
//! before the route is called, and [`AdminRoute::check_access`] admits only
//! the root identity.
//!
//! | command | method | does |
//! |---|---|---|
//! | `status` | GET | drives, heal queue, unrepairable objects, last scan/scrub (JSON) |
//! | `heal` | POST | a scanner pass now (optionally one bucket); with `wait=true` waits for the heal queue to drain and returns the report |
//! | `scrub` | POST | a full verification pass now (reads every shard); `wait=true` as above |

use std::sync::Arc;
use std::time::Duration;

use bulwark_object::ObjectStore;
use http::Extensions;
use http::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use serde::Serialize;
use subtle::ConstantTimeEq;

pub const ADMIN_QUERY: &str = "bulwark-admin";
/// Longest a `wait=true` request waits for the heal queue to drain.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub struct AdminRoute {
    store: Arc<ObjectStore>,
    root_access_key: String,
}

impl AdminRoute {
    pub fn new(store: Arc<ObjectStore>, root_access_key: String) -> AdminRoute {
        AdminRoute { store, root_access_key }
    }
}

fn query_value<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// A pass report together with the state after it.
#[derive(Serialize)]
struct PassResult {
    pass: bulwark_object::PassReport,
    drained: bool,
    status: bulwark_object::Status,
}

fn json<T: Serialize>(value: &T) -> S3Result<S3Response<Body>> {
    let text = serde_json::to_string_pretty(value).map_err(|e| s3_error!(e, InternalError))?;
    let mut response = S3Response::new(Body::from(text));
    response.headers.insert(http::header::CONTENT_TYPE, http::header::HeaderValue::from_static("application/json"));
    Ok(response)
}

#[async_trait::async_trait]
impl S3Route for AdminRoute {
    fn is_match(&self, _method: &Method, uri: &Uri, _headers: &HeaderMap, _extensions: &mut Extensions) -> bool {
        uri.path() == "/" && query_value(uri, ADMIN_QUERY).is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        match &req.credentials {
            Some(c) if bool::from(c.access_key.as_bytes().ct_eq(self.root_access_key.as_bytes())) => Ok(()),
            _ => Err(s3_error!(AccessDenied, "The admin API is for the root identity only.")),
        }
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let command = query_value(&req.uri, ADMIN_QUERY).unwrap_or_default();
        let bucket = query_value(&req.uri, "bucket").filter(|b| !b.is_empty()).map(str::to_owned);
        let wait = query_value(&req.uri, "wait") == Some("true");
        match (req.method.clone(), command) {
            (Method::GET, "status") => json(&self.store.status()),
            (Method::POST, "heal" | "scrub") => {
                let verify = command == "scrub";
                if let Some(bucket) = &bucket {
                    self.store.head_bucket(bucket).map_err(crate::errors::to_s3)?;
                }
                if !wait {
                    let store = self.store.clone();
                    tokio::spawn(async move { store.scan_pass(verify, 0, bucket.as_deref()).await });
                    return json(&self.store.status());
                }
                let pass = self.store.scan_pass(verify, 0, bucket.as_deref()).await;
                let drained = self.store.wait_heal_idle(WAIT_TIMEOUT).await;
                json(&PassResult { pass, drained, status: self.store.status() })
            }
            _ => Err(s3_error!(InvalidRequest, "Unknown admin command or method.")),
        }
    }
}
