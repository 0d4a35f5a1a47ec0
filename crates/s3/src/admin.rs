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
//! | `rewrap` | POST | re-seal SSE-S3/SSE-KMS data keys under the newest KMS key versions (optionally one bucket); resumes an interrupted run |
//! | `rewrap-status` | GET | progress of the current or last rewrap run |
//! | `rotate-sse-s3` | POST | rotate the SSE-S3 master key now (objects written before stay readable; `rewrap` moves them forward) |
//!
//! Identities (all JSON; names in query parameters `user`, `group`, `policy`, `key`):
//!
//! | command | method | does |
//! |---|---|---|
//! | `user-list`, `user-info` | GET | users (with keys, groups, policies) |
//! | `user-create`, `user-delete`, `user-enable`, `user-disable` | POST | manage a user (delete also deletes its keys) |
//! | `key-create` | POST | a new access key for `user`; the only answer that contains the secret |
//! | `key-list` | GET | access keys (of `user`, or all); never secrets |
//! | `key-enable`, `key-disable`, `key-delete` | POST | manage a key; disabling revokes its presigned URLs too |
//! | `group-list`, `group-create`, `group-delete`, `group-add`, `group-remove` | GET/POST | groups and membership (`group`, `user`) |
//! | `policy-list`, `policy-get` | GET | managed policies and where they are attached |
//! | `policy-put` | POST | create or replace `policy` from the JSON body (400 MalformedPolicy if invalid) |
//! | `policy-delete` | POST | delete `policy` (409 DeleteConflict while attached) |
//! | `policy-attach`, `policy-detach` | POST | attach `policy` to `user` or `group` |

use std::sync::Arc;
use std::time::Duration;

use bulwark_access::{AccessError, Attachment, Identities};
use bulwark_object::ObjectStore;
use http::Extensions;
use http::{HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};
use serde::Serialize;
use subtle::ConstantTimeEq;

pub const ADMIN_QUERY: &str = "bulwark-admin";
/// Longest a `wait=true` request waits for the heal queue to drain.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Largest policy document the admin API accepts.
const POLICY_BYTES_MAX: usize = 64 * 1024;

pub struct AdminRoute {
    store: Arc<ObjectStore>,
    identities: Arc<Identities>,
    rewrapper: Option<Arc<crate::rewrap::Rewrapper>>,
    kms: Option<Arc<bulwark_kms::Kms>>,
}

impl AdminRoute {
    pub fn new(store: Arc<ObjectStore>, identities: Arc<Identities>) -> AdminRoute {
        AdminRoute { store, identities, rewrapper: None, kms: None }
    }

    /// Enables `rewrap` (needs the KMS).
    pub fn set_kms(&mut self, kms: Arc<bulwark_kms::Kms>) {
        self.rewrapper = Some(Arc::new(crate::rewrap::Rewrapper::new(self.store.clone(), kms.clone())));
        self.kms = Some(kms);
    }
}

fn query_value(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

fn required(uri: &Uri, name: &str) -> S3Result<String> {
    query_value(uri, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| S3Error::with_message(S3ErrorCode::InvalidRequest, format!("missing query parameter {name}")))
}

fn iam_error(e: AccessError) -> S3Error {
    let (code, status) = match &e {
        AccessError::NoSuchEntity(_) => ("NoSuchEntity", http::StatusCode::NOT_FOUND),
        AccessError::AlreadyExists(_) => ("EntityAlreadyExists", http::StatusCode::CONFLICT),
        AccessError::InvalidInput(_) => ("InvalidInput", http::StatusCode::BAD_REQUEST),
        AccessError::MalformedPolicy(_) => ("MalformedPolicy", http::StatusCode::BAD_REQUEST),
        AccessError::Conflict(_) => ("DeleteConflict", http::StatusCode::CONFLICT),
        AccessError::LimitExceeded(_) => ("LimitExceeded", http::StatusCode::CONFLICT),
        AccessError::Corrupt(detail) => {
            tracing::error!(error = %detail, "identity state");
            return s3_error!(InternalError, "We encountered an internal error.");
        }
        AccessError::Store(_) => {
            let AccessError::Store(inner) = e else { unreachable!("matched above") };
            return crate::errors::to_s3(inner);
        }
    };
    let mut error = S3Error::with_message(S3ErrorCode::Custom(code.into()), e.to_string());
    error.set_status_code(status);
    error
}

fn done() -> S3Result<S3Response<Body>> {
    json(&serde_json::json!({ "ok": true }))
}

/// Reads a small request body, checking `x-amz-content-sha256` when it
/// names a hash (the signature covers that header, so this binds the body).
pub(crate) async fn read_body(req: &mut S3Request<Body>, limit: usize) -> S3Result<bytes::Bytes> {
    let body = req
        .input
        .store_all_limited(limit)
        .await
        .map_err(|_| s3_error!(MaxMessageLengthExceeded, "Your request was too big."))?;
    if let Some(declared) = req.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok())
        && declared.len() == 64
    {
        use sha2::Digest;
        if hex::encode(sha2::Sha256::digest(&body)) != declared.to_ascii_lowercase() {
            return Err(S3Error::with_message(
                S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
    }
    Ok(body)
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
        let root = self.identities.root_access_key().as_bytes();
        match &req.credentials {
            Some(c) if bool::from(c.access_key.as_bytes().ct_eq(root)) => Ok(()),
            _ => Err(s3_error!(AccessDenied, "The admin API is for the root identity only.")),
        }
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let command = query_value(&req.uri, ADMIN_QUERY).unwrap_or_default();
        if command.starts_with("user-")
            || command.starts_with("key-")
            || command.starts_with("group-")
            || command.starts_with("policy-")
        {
            return self.identity_command(&command, &mut req).await;
        }
        let bucket = query_value(&req.uri, "bucket").filter(|b| !b.is_empty());
        let wait = query_value(&req.uri, "wait").as_deref() == Some("true");
        if command == "rotate-sse-s3" {
            let kms = self.kms.as_ref().ok_or_else(|| s3_error!(NotImplemented, "The KMS is not running"))?;
            if req.method != Method::POST {
                return Err(s3_error!(InvalidRequest, "Unknown admin command or method."));
            }
            kms.rotate_sse_s3().await.map_err(crate::managed::kms_error)?;
            return done();
        }
        if command.starts_with("rewrap") {
            let rewrapper =
                self.rewrapper.as_ref().ok_or_else(|| s3_error!(NotImplemented, "The KMS is not running"))?;
            return match (req.method.clone(), command.as_str()) {
                (Method::POST, "rewrap") => {
                    if let Some(bucket) = &bucket {
                        self.store.head_bucket(bucket).map_err(crate::errors::to_s3)?;
                    }
                    json(&rewrapper.start(bucket))
                }
                (Method::GET, "rewrap-status") => json(&rewrapper.progress()),
                _ => Err(s3_error!(InvalidRequest, "Unknown admin command or method.")),
            };
        }
        match (req.method.clone(), command.as_str()) {
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

impl AdminRoute {
    async fn identity_command(&self, command: &str, req: &mut S3Request<Body>) -> S3Result<S3Response<Body>> {
        let ids = &self.identities;
        let uri = req.uri.clone();
        let post = req.method == Method::POST;
        let attachment = || -> S3Result<Attachment> {
            match (
                query_value(&uri, "user").filter(|v| !v.is_empty()),
                query_value(&uri, "group").filter(|v| !v.is_empty()),
            ) {
                (Some(user), None) => Ok(Attachment::User(user)),
                (None, Some(group)) => Ok(Attachment::Group(group)),
                _ => Err(s3_error!(InvalidRequest, "name exactly one of user or group")),
            }
        };
        let result = match (post, command) {
            (false, "user-list") => return json(&ids.users()),
            (false, "user-info") => return json(&ids.user(&required(&uri, "user")?).map_err(iam_error)?),
            (true, "user-create") => return json(&ids.create_user(&required(&uri, "user")?).await.map_err(iam_error)?),
            (true, "user-delete") => ids.delete_user(&required(&uri, "user")?).await,
            (true, "user-enable") => ids.set_user_enabled(&required(&uri, "user")?, true).await,
            (true, "user-disable") => ids.set_user_enabled(&required(&uri, "user")?, false).await,
            (true, "key-create") => return json(&ids.create_key(&required(&uri, "user")?).await.map_err(iam_error)?),
            (false, "key-list") => {
                let user = query_value(&uri, "user").filter(|v| !v.is_empty());
                return json(&ids.keys(user.as_deref()).map_err(iam_error)?);
            }
            (true, "key-enable") => ids.set_key_enabled(&required(&uri, "key")?, true).await,
            (true, "key-disable") => ids.set_key_enabled(&required(&uri, "key")?, false).await,
            (true, "key-delete") => ids.delete_key(&required(&uri, "key")?).await,
            (false, "group-list") => return json(&ids.groups()),
            (true, "group-create") => ids.create_group(&required(&uri, "group")?).await,
            (true, "group-delete") => ids.delete_group(&required(&uri, "group")?).await,
            (true, "group-add") => ids.set_membership(&required(&uri, "group")?, &required(&uri, "user")?, true).await,
            (true, "group-remove") => {
                ids.set_membership(&required(&uri, "group")?, &required(&uri, "user")?, false).await
            }
            (false, "policy-list") => return json(&ids.policies()),
            (false, "policy-get") => return json(&ids.policy(&required(&uri, "policy")?).map_err(iam_error)?),
            (true, "policy-put") => {
                let name = required(&uri, "policy")?;
                let body = read_body(req, POLICY_BYTES_MAX).await?;
                let text = std::str::from_utf8(&body)
                    .map_err(|_| s3_error!(MalformedPolicy, "The policy document is not UTF-8"))?;
                ids.put_policy(&name, text).await
            }
            (true, "policy-delete") => ids.delete_policy(&required(&uri, "policy")?).await,
            (true, "policy-attach") => ids.attach(&required(&uri, "policy")?, &attachment()?, true).await,
            (true, "policy-detach") => ids.attach(&required(&uri, "policy")?, &attachment()?, false).await,
            _ => return Err(s3_error!(InvalidRequest, "Unknown admin command or method.")),
        };
        result.map_err(iam_error)?;
        done()
    }
}
