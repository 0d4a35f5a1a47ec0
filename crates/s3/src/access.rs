//! Authorisation of every S3 request: `s3s` calls [`PolicyAccess::check`]
//! after the signature is verified (or found absent) and before the body is
//! read, so a denied request reads and changes nothing.
//!
//! The S3 operation becomes one or more IAM actions on resources (CopyObject
//! also needs read access to its source); the request supplies the condition
//! keys. DeleteObjects is decided per key by its handler, as in S3, through
//! the [`Grant`] left in the request's extensions.

use std::sync::Arc;

use bulwark_access::{Authorizer, BucketView, Caller};
use bulwark_object::{BucketRecord, ObjectStore};
use bulwark_policy::Context;
use s3s::access::{S3Access, S3AccessContext};
use s3s::path::S3Path;
use s3s::{S3Result, s3_error};

use crate::Transport;

#[derive(Clone)]
pub struct PolicyAccess {
    authorizer: Arc<Authorizer>,
    store: Arc<ObjectStore>,
}

impl PolicyAccess {
    pub fn new(authorizer: Arc<Authorizer>, store: Arc<ObjectStore>) -> PolicyAccess {
        PolicyAccess { authorizer, store }
    }
}

/// What a handler needs to make further decisions for the same caller.
#[derive(Clone)]
pub struct Grant {
    authorizer: Arc<Authorizer>,
    pub caller: Caller,
    context: Context,
}

impl Grant {
    /// Whether the caller may take `action` on one version (or the latest) of
    /// one key of a batch (DeleteObjects), in that key's own context: its `s3:VersionId`,
    /// and its tags when a policy that applies tests `s3:ExistingObjectTag/…`,
    /// exactly as the single-key request would be judged.
    pub async fn allows_object_version(
        &self,
        store: &ObjectStore,
        action: &str,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> bool {
        let record = store.bucket_config(bucket).ok();
        let view = record.as_ref().map(|record| BucketView { name: bucket, record });
        let mut context = self.context.clone();
        if let Some(version_id) = version_id {
            context.insert("s3:VersionId", version_id.to_owned());
        }
        if self.authorizer.policies_test_key_prefix(&self.caller, view, "s3:ExistingObjectTag/")
            && let Ok((_, tags)) = store.object_tags(bucket, key, version_id).await
        {
            for (name, value) in tags {
                context.insert(&format!("s3:ExistingObjectTag/{name}"), value);
            }
        }
        self.authorizer.authorize(&self.caller, action, &object_arn(bucket, key), &context, view).allowed
    }
}

fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

/// Percent-decoded query pairs.
fn query_pairs(uri: &http::Uri) -> Vec<(String, String)> {
    let Some(query) = uri.query() else { return Vec::new() };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                let s = s.replace('+', " ");
                urlencoding_decode(&s)
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn urlencoding_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The source of a copy (`x-amz-copy-source: bucket/key[?versionId=v]`),
/// parsed by the very parser that gives the handler its input, so that the
/// object checked is the object read (a key may hold `?`).
fn copy_source(headers: &http::HeaderMap) -> Option<(String, String, Option<String>)> {
    let raw = headers.get("x-amz-copy-source")?.to_str().ok()?;
    match s3s::dto::CopySource::parse(raw).ok()? {
        s3s::dto::CopySource::Bucket { bucket, key, version_id } => {
            Some((bucket.to_string(), key.to_string(), version_id.map(|v| v.to_string())))
        }
        _ => None,
    }
}

/// The IAM actions and resources one S3 operation needs; `None` when the
/// handler decides (DeleteObjects, per key).
fn required(
    op: &str,
    path: &S3Path,
    versioned: bool,
    headers: &http::HeaderMap,
) -> S3Result<Option<Vec<(String, String)>>> {
    let (bucket, key) = match path {
        S3Path::Root => (None, None),
        S3Path::Bucket { bucket } => (Some(bucket.as_ref()), None),
        S3Path::Object { bucket, key } => (Some(bucket.as_ref()), Some(key.as_ref())),
    };
    let bucket_resource = || bucket.map(bucket_arn).unwrap_or_else(|| "arn:aws:s3:::*".to_owned());
    let object_resource = || match (bucket, key) {
        (Some(b), Some(k)) => object_arn(b, k),
        _ => bucket_resource(),
    };
    let version_or = |plain: &str, version: &str| if versioned { version.to_owned() } else { plain.to_owned() };
    let on_object = |action: String| Ok(Some(vec![(action, object_resource())]));
    let on_bucket = |action: &str| Ok(Some(vec![(action.to_owned(), bucket_resource())]));
    match op {
        "ListBuckets" => Ok(Some(vec![("s3:ListAllMyBuckets".to_owned(), "arn:aws:s3:::*".to_owned())])),
        "GetObject" | "HeadObject" => on_object(version_or("s3:GetObject", "s3:GetObjectVersion")),
        "GetObjectAttributes" => on_object(version_or("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes")),
        "DeleteObject" => on_object(version_or("s3:DeleteObject", "s3:DeleteObjectVersion")),
        "GetObjectTagging" => on_object(version_or("s3:GetObjectTagging", "s3:GetObjectVersionTagging")),
        "PutObjectTagging" => on_object(version_or("s3:PutObjectTagging", "s3:PutObjectVersionTagging")),
        "DeleteObjectTagging" => on_object(version_or("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging")),
        "PutObject" | "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload" => {
            on_object("s3:PutObject".to_owned())
        }
        "CopyObject" | "UploadPartCopy" => {
            let mut needs = vec![("s3:PutObject".to_owned(), object_resource())];
            let (src_bucket, src_key, src_version) = copy_source(headers)
                .ok_or_else(|| s3_error!(InvalidArgument, "Copy Source must mention the source bucket and key"))?;
            let action = if src_version.is_some() { "s3:GetObjectVersion" } else { "s3:GetObject" };
            needs.push((action.to_owned(), object_arn(&src_bucket, &src_key)));
            Ok(Some(needs))
        }
        "AbortMultipartUpload" => on_object("s3:AbortMultipartUpload".to_owned()),
        "ListParts" => on_object("s3:ListMultipartUploadParts".to_owned()),
        "DeleteObjects" => Ok(None),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => on_bucket("s3:ListBucket"),
        "ListObjectVersions" => on_bucket("s3:ListBucketVersions"),
        "ListMultipartUploads" => on_bucket("s3:ListBucketMultipartUploads"),
        "GetPublicAccessBlock" => on_bucket("s3:GetBucketPublicAccessBlock"),
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => on_bucket("s3:PutBucketPublicAccessBlock"),
        "GetBucketEncryption" => on_bucket("s3:GetEncryptionConfiguration"),
        "PutBucketEncryption" | "DeleteBucketEncryption" => on_bucket("s3:PutEncryptionConfiguration"),
        "DeleteBucketPolicy"
        | "GetBucketPolicy"
        | "PutBucketPolicy"
        | "GetBucketPolicyStatus"
        | "CreateBucket"
        | "DeleteBucket"
        | "GetBucketLocation"
        | "GetBucketVersioning"
        | "PutBucketVersioning" => on_bucket(&format!("s3:{op}")),
        other if key.is_some() => on_object(format!("s3:{other}")),
        other => on_bucket(&format!("s3:{other}")),
    }
}

/// The condition keys a request supplies.
fn request_context(
    authorizer: &Authorizer,
    caller: &Caller,
    headers: &http::HeaderMap,
    query: &[(String, String)],
    transport: Option<Transport>,
) -> Context {
    let mut ctx = Context::new();
    authorizer.add_principal_keys(caller, &mut ctx);
    // Our listener sets Transport on every request; without it the request
    // did not come through a known transport and counts as insecure.
    let (secure, peer) = transport.map_or((false, None), |t| (t.secure, t.peer));
    ctx.insert("aws:SecureTransport", if secure { "true" } else { "false" });
    if let Some(peer) = peer {
        ctx.insert("aws:SourceIp", peer.ip().to_canonical().to_string());
    }
    let now = time::OffsetDateTime::now_utc();
    if let Ok(text) = now.format(&time::format_description::well_known::Rfc3339) {
        ctx.insert("aws:CurrentTime", text);
    }
    ctx.insert("aws:EpochTime", now.unix_timestamp().to_string());
    let auth_type = if headers.contains_key(http::header::AUTHORIZATION) {
        Some("REST-HEADER")
    } else if query.iter().any(|(k, _)| k == "X-Amz-Signature") {
        Some("REST-QUERY-STRING")
    } else {
        None
    };
    if let Some(auth_type) = auth_type {
        ctx.insert("s3:authType", auth_type);
        ctx.insert("s3:signatureversion", "AWS4-HMAC-SHA256");
    }
    for name in [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-server-side-encryption-customer-algorithm",
        "x-amz-copy-source",
        "x-amz-metadata-directive",
        "x-amz-acl",
        "x-amz-content-sha256",
        "x-amz-storage-class",
    ] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            ctx.insert(&format!("s3:{name}"), value);
        }
    }
    for (name, key) in [("prefix", "s3:prefix"), ("delimiter", "s3:delimiter"), ("max-keys", "s3:max-keys")] {
        if let Some((_, value)) = query.iter().find(|(k, _)| k == name) {
            ctx.insert(key, value.clone());
        }
    }
    if let Some((_, value)) = query.iter().find(|(k, _)| k == "versionId") {
        ctx.insert("s3:VersionId", value.clone());
    }
    ctx
}

/// Operations on an existing object whose tags policies may test with
/// `s3:ExistingObjectTag/<key>` (for a copy: the source's).
const TAGGED_OPERATIONS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "GetObjectAttributes",
    "DeleteObject",
    "GetObjectTagging",
    "PutObjectTagging",
    "DeleteObjectTagging",
    "CopyObject",
    "UploadPartCopy",
];

impl PolicyAccess {
    /// The tags of the object a request addresses, read only when a policy
    /// that could apply tests them (the read costs a metadata round trip).
    async fn existing_tags(&self, cx: &S3AccessContext<'_>) -> Option<std::collections::BTreeMap<String, String>> {
        if !TAGGED_OPERATIONS.contains(&cx.s3_op().name()) {
            return None;
        }
        let query = query_pairs(cx.uri());
        let (bucket, key, version) = match cx.s3_op().name() {
            "CopyObject" | "UploadPartCopy" => copy_source(cx.headers())?,
            _ => match cx.s3_path() {
                S3Path::Object { bucket, key } => (
                    bucket.to_string(),
                    key.to_string(),
                    query.iter().find(|(k, _)| k == "versionId").map(|(_, v)| v.clone()),
                ),
                _ => return None,
            },
        };
        let caller = match cx.credentials() {
            Some(c) => self.authorizer.identities().caller_for(&c.access_key)?,
            None => Caller::Anonymous,
        };
        let record = self.store.bucket_config(&bucket).ok();
        let view = record.as_ref().map(|record| BucketView { name: &bucket, record });
        if !self.authorizer.policies_test_key_prefix(&caller, view, "s3:ExistingObjectTag/") {
            return None;
        }
        self.store.object_tags(&bucket, &key, version.as_deref()).await.ok().map(|(_, tags)| tags)
    }

    /// The whole decision for one request: who (from the verified
    /// credentials), which actions on which resources (from the operation),
    /// in what context. The [`Grant`] it returns belongs in the request's
    /// extensions.
    #[allow(clippy::too_many_arguments)]
    pub fn authorize_request(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        op: &str,
        path: &S3Path,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        transport: Option<Transport>,
        existing_tags: Option<&std::collections::BTreeMap<String, String>>,
    ) -> S3Result<Grant> {
        let caller = match credentials {
            Some(credentials) => self.authorizer.identities().caller_for(&credentials.access_key).ok_or_else(|| {
                s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records.")
            })?,
            None => Caller::Anonymous,
        };
        let query = query_pairs(uri);
        let mut ctx = request_context(&self.authorizer, &caller, headers, &query, transport);
        if let Some((_, version_id)) = query.iter().find(|(k, _)| k == "versionId") {
            ctx.insert("s3:VersionId", version_id.clone());
        }
        for (key, value) in existing_tags.into_iter().flatten() {
            ctx.insert(&format!("s3:ExistingObjectTag/{key}"), value.clone());
        }
        let versioned = query.iter().any(|(k, _)| k == "versionId");
        let needs = required(op, path, versioned, headers)?;
        for (action, resource) in needs.into_iter().flatten() {
            let bucket = resource.strip_prefix("arn:aws:s3:::").and_then(|r| r.split('/').next()).unwrap_or("");
            let record: Option<BucketRecord> =
                (!bucket.is_empty() && bucket != "*").then(|| self.store.bucket_config(bucket).ok()).flatten();
            let view = record.as_ref().map(|record| BucketView { name: bucket, record });
            let verdict = self.authorizer.authorize(&caller, &action, &resource, &ctx, view);
            if !verdict.allowed {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        Ok(Grant { authorizer: self.authorizer.clone(), caller, context: ctx })
    }
}

#[async_trait::async_trait]
impl S3Access for PolicyAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let transport = cx.extensions_mut().get::<Transport>().copied();
        let tags = self.existing_tags(cx).await;
        let grant = self.authorize_request(
            cx.credentials(),
            cx.s3_op().name(),
            cx.s3_path(),
            cx.uri(),
            cx.headers(),
            transport,
            tags.as_ref(),
        )?;
        cx.extensions_mut().insert(grant);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn path(bucket: &str, key: Option<&str>) -> S3Path {
        match key {
            Some(k) => S3Path::Object { bucket: bucket.into(), key: k.into() },
            None => S3Path::Bucket { bucket: bucket.into() },
        }
    }

    #[test]
    fn operations_map_to_the_actions_s3_documents() {
        let h = http::HeaderMap::new();
        let one = |op: &str, key: Option<&str>, versioned: bool| {
            required(op, &path("b", key), versioned, &h).unwrap().unwrap().remove(0)
        };
        assert_eq!(one("HeadObject", Some("k"), false), ("s3:GetObject".into(), "arn:aws:s3:::b/k".into()));
        assert_eq!(one("GetObject", Some("k"), true).0, "s3:GetObjectVersion");
        assert_eq!(one("DeleteObject", Some("k"), true).0, "s3:DeleteObjectVersion");
        assert_eq!(one("GetObjectTagging", Some("k"), false).0, "s3:GetObjectTagging");
        assert_eq!(one("GetObjectTagging", Some("k"), true).0, "s3:GetObjectVersionTagging");
        assert_eq!(one("PutObjectTagging", Some("k"), true).0, "s3:PutObjectVersionTagging");
        assert_eq!(one("DeleteObjectTagging", Some("k"), true).0, "s3:DeleteObjectVersionTagging");
        assert_eq!(one("UploadPart", Some("k"), false).0, "s3:PutObject");
        assert_eq!(one("ListObjectsV2", None, false), ("s3:ListBucket".into(), "arn:aws:s3:::b".into()));
        assert_eq!(one("HeadBucket", None, false).0, "s3:ListBucket");
        assert_eq!(one("ListObjectVersions", None, false).0, "s3:ListBucketVersions");
        assert_eq!(one("DeletePublicAccessBlock", None, false).0, "s3:PutBucketPublicAccessBlock");
        assert_eq!(one("GetBucketPolicyStatus", None, false).0, "s3:GetBucketPolicyStatus");
        assert!(required("DeleteObjects", &path("b", None), false, &h).unwrap().is_none());
    }

    #[test]
    fn a_copy_needs_read_access_to_its_source() {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-copy-source", http::HeaderValue::from_static("/src/a%20b.txt?versionId=v1"));
        let needs = required("CopyObject", &path("dst", Some("k")), false, &h).unwrap().unwrap();
        assert_eq!(
            needs,
            vec![
                ("s3:PutObject".to_owned(), "arn:aws:s3:::dst/k".to_owned()),
                ("s3:GetObjectVersion".to_owned(), "arn:aws:s3:::src/a b.txt".to_owned())
            ]
        );
    }

    #[test]
    fn the_copy_source_checked_is_the_one_the_handler_reads() {
        // A key may hold `?`: only `?versionId=` ends it, as in s3s's parser.
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-copy-source", http::HeaderValue::from_static("/src/k?x?versionId=OLD"));
        assert_eq!(copy_source(&h), Some(("src".into(), "k?x".into(), Some("OLD".into()))));
        let needs = required("CopyObject", &path("dst", Some("k")), false, &h).unwrap().unwrap();
        assert_eq!(needs[1], ("s3:GetObjectVersion".to_owned(), "arn:aws:s3:::src/k?x".to_owned()));
        h.insert("x-amz-copy-source", http::HeaderValue::from_static("src/plain"));
        assert_eq!(copy_source(&h), Some(("src".into(), "plain".into(), None)));
    }
}
