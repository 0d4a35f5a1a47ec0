//! Requests `s3s` 0.14.1 cannot model, served as custom routes after its
//! signature check: the admin API, and Put/GetBucketEncryption, whose
//! `BlockedEncryptionTypes` element the pinned XML model does not know (it
//! would refuse the whole document on PUT and drop it on GET). The
//! bucket-encryption route parses and writes the configuration itself and is
//! authorised by the same policy check as every S3 operation
//! (`s3:PutEncryptionConfiguration` / `s3:GetEncryptionConfiguration`).

use std::sync::Arc;

use bulwark_object::{DefaultEncryption, ObjectStore};
use http::{Extensions, HeaderMap, Method, Uri};
use quick_xml::events::Event;
use s3s::path::S3Path;
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};

use crate::Transport;
use crate::access::PolicyAccess;
use crate::admin::AdminRoute;
use crate::errors::to_s3;
use crate::hosts::VirtualHosts;

/// Largest encryption configuration accepted.
const CONFIGURATION_BYTES_MAX: usize = 64 * 1024;

/// Every custom route, in order.
pub struct Routes {
    admin: AdminRoute,
    encryption: BucketEncryptionRoute,
    hosts: VirtualHosts,
}

impl Routes {
    /// `hosts`: the domains under which the `Host` names the bucket (the
    /// same as the S3 service's).
    pub fn new(admin: AdminRoute, encryption: BucketEncryptionRoute, hosts: VirtualHosts) -> Routes {
        Routes { admin, encryption, hosts }
    }
}

/// The bucket a request addresses, by its `Host` (virtual-hosted style) or
/// else by its path, set by `is_match` for the routes that need it.
#[derive(Clone)]
struct AddressedBucket(Option<String>);

#[async_trait::async_trait]
impl S3Route for Routes {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, extensions: &mut Extensions) -> bool {
        // Most requests are neither (checked on the query alone).
        let admin_shaped = self.admin.is_match(method, uri, headers, extensions);
        if !admin_shaped && !BucketEncryptionRoute::is_shaped(method, uri) {
            return false;
        }
        let virtual_bucket = self.hosts.bucket_of_headers(headers);
        // The admin API lives at the service's root, never inside a bucket.
        let admin = admin_shaped && virtual_bucket.is_none();
        let bucket = match virtual_bucket {
            Some(bucket) => (uri.path() == "/").then_some(bucket),
            None => bucket_of(uri),
        };
        extensions.insert(AddressedBucket(bucket));
        let encryption = !admin && self.encryption.is_match(method, uri, headers, extensions);
        extensions.insert(RouteChoice { admin });
        admin || encryption
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        if Self::is_admin(req) { self.admin.check_access(req).await } else { self.encryption.check_access(req).await }
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if Self::is_admin(&req) { self.admin.call(req).await } else { self.encryption.call(req).await }
    }
}

/// Which route matched (set by `is_match`).
#[derive(Clone, Copy)]
struct RouteChoice {
    admin: bool,
}

impl Routes {
    fn is_admin(req: &S3Request<Body>) -> bool {
        req.extensions.get::<RouteChoice>().is_some_and(|c| c.admin)
    }
}

/// `PUT|GET /{bucket}?encryption`.
pub struct BucketEncryptionRoute {
    store: Arc<ObjectStore>,
    kms: Option<Arc<bulwark_kms::Kms>>,
    access: PolicyAccess,
}

impl BucketEncryptionRoute {
    /// `PUT|GET ?encryption`, whatever the bucket.
    fn is_shaped(method: &Method, uri: &Uri) -> bool {
        (*method == Method::PUT || *method == Method::GET) && has_encryption_query(uri)
    }

    pub fn new(store: Arc<ObjectStore>, kms: Option<Arc<bulwark_kms::Kms>>, access: PolicyAccess) -> Self {
        BucketEncryptionRoute { store, kms, access }
    }
}

/// The bucket of a path-style bucket request (`/{bucket}` or `/{bucket}/`).
fn bucket_of(uri: &Uri) -> Option<String> {
    let path = uri.path().strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    (!path.is_empty() && !path.contains('/')).then(|| path.to_owned())
}

/// The bucket `Routes::is_match` found the request addressed to.
fn addressed_bucket(extensions: &Extensions) -> Option<String> {
    extensions.get::<AddressedBucket>().and_then(|b| b.0.clone())
}

fn has_encryption_query(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|p| p == "encryption" || p.starts_with("encryption=")))
}

/// One `<Rule>` of a configuration.
#[derive(Debug, Default, PartialEq, Eq)]
struct Rule {
    algorithm: Option<String>,
    kms_key_id: Option<String>,
    bucket_key: Option<bool>,
    blocked: Vec<String>,
    has_default: bool,
}

fn malformed() -> s3s::S3Error {
    s3_error!(MalformedXML, "The XML you provided was not well-formed or did not validate against our published schema")
}

/// Parses a ServerSideEncryptionConfiguration document.
fn parse_configuration(xml: &[u8]) -> S3Result<Vec<Rule>> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut rules: Vec<Rule> = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).map_err(|_| malformed())? {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                let depth = path.len();
                let expected = match (depth, path.last().map(String::as_str)) {
                    (0, _) => name == "ServerSideEncryptionConfiguration",
                    (1, _) => name == "Rule",
                    (2, _) => matches!(
                        name.as_str(),
                        "ApplyServerSideEncryptionByDefault" | "BucketKeyEnabled" | "BlockedEncryptionTypes"
                    ),
                    (3, Some("ApplyServerSideEncryptionByDefault")) => {
                        matches!(name.as_str(), "SSEAlgorithm" | "KMSMasterKeyID")
                    }
                    (3, Some("BlockedEncryptionTypes")) => name == "EncryptionType",
                    _ => false,
                };
                if !expected {
                    return Err(malformed());
                }
                if name == "Rule" {
                    rules.push(Rule::default());
                }
                if name == "ApplyServerSideEncryptionByDefault"
                    && let Some(rule) = rules.last_mut()
                {
                    rule.has_default = true;
                }
                path.push(name);
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Empty(_) => {}
            Event::Text(text) => {
                let value = text.decode().map_err(|_| malformed())?.trim().to_owned();
                let Some(rule) = rules.last_mut() else { continue };
                match path.last().map(String::as_str) {
                    Some("SSEAlgorithm") => rule.algorithm = Some(value),
                    Some("KMSMasterKeyID") => rule.kms_key_id = Some(value),
                    Some("BucketKeyEnabled") => {
                        rule.bucket_key = Some(match value.as_str() {
                            "true" => true,
                            "false" => false,
                            _ => return Err(malformed()),
                        })
                    }
                    Some("EncryptionType") => rule.blocked.push(value),
                    _ => return Err(malformed()),
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !path.is_empty() {
        return Err(malformed());
    }
    Ok(rules)
}

/// Checks a configuration and turns it into the bucket's default rule.
fn default_rule(rules: Vec<Rule>) -> S3Result<DefaultEncryption> {
    let [rule] = <[Rule; 1]>::try_from(rules).map_err(|_| malformed())?;
    if !rule.has_default {
        return Err(malformed());
    }
    let algorithm = rule.algorithm.ok_or_else(malformed)?;
    match algorithm.as_str() {
        crate::managed::AES256 if rule.kms_key_id.is_some() => {
            return Err(s3_error!(
                InvalidArgument,
                "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse"
            ));
        }
        crate::managed::AES256 | crate::managed::AWS_KMS => {}
        _ => return Err(s3_error!(InvalidArgument, "The encryption method specified is not supported")),
    }
    let mut blocked_sse_c = false;
    for kind in &rule.blocked {
        match kind.as_str() {
            "SSE-C" => blocked_sse_c = true,
            "NONE" => {}
            _ => return Err(s3_error!(InvalidArgument, "BlockedEncryptionTypes may contain only SSE-C or NONE")),
        }
    }
    Ok(DefaultEncryption {
        algorithm,
        kms_key_id: rule.kms_key_id,
        bucket_key: rule.bucket_key.unwrap_or(false),
        blocked_sse_c,
    })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The GetBucketEncryption document of a default rule.
fn configuration_xml(rule: &DefaultEncryption) -> String {
    let key = rule
        .kms_key_id
        .as_deref()
        .map(|k| format!("<KMSMasterKeyID>{}</KMSMasterKeyID>", xml_escape(k)))
        .unwrap_or_default();
    let blocked = if rule.blocked_sse_c {
        "<BlockedEncryptionTypes><EncryptionType>SSE-C</EncryptionType></BlockedEncryptionTypes>"
    } else {
        ""
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>\
         <ApplyServerSideEncryptionByDefault><SSEAlgorithm>{}</SSEAlgorithm>{key}</ApplyServerSideEncryptionByDefault>\
         <BucketKeyEnabled>{}</BucketKeyEnabled>{blocked}</Rule></ServerSideEncryptionConfiguration>",
        xml_escape(&rule.algorithm),
        rule.bucket_key
    )
}

#[async_trait::async_trait]
impl S3Route for BucketEncryptionRoute {
    fn is_match(&self, method: &Method, uri: &Uri, _headers: &HeaderMap, extensions: &mut Extensions) -> bool {
        Self::is_shaped(method, uri) && addressed_bucket(extensions).is_some()
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let bucket = addressed_bucket(&req.extensions).ok_or_else(malformed)?;
        let path = S3Path::Bucket { bucket: bucket.into() };
        let transport = req.extensions.get::<Transport>().copied();
        let op = if req.method == Method::GET { "GetBucketEncryption" } else { "PutBucketEncryption" };
        let grant = self.access.authorize_request(
            req.credentials.as_ref(),
            op,
            &path,
            &req.uri,
            &req.headers,
            transport,
            None,
        )?;
        req.extensions.insert(grant);
        Ok(())
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let bucket = addressed_bucket(&req.extensions).ok_or_else(malformed)?;
        self.store.head_bucket(&bucket).map_err(to_s3)?;
        if req.method == Method::GET {
            let record = self.store.bucket_config(&bucket).map_err(to_s3)?;
            let Some(rule) = record.default_encryption else {
                return Err(s3_error!(
                    ServerSideEncryptionConfigurationNotFoundError,
                    "The server side encryption configuration was not found"
                ));
            };
            let mut response = S3Response::new(Body::from(configuration_xml(&rule)));
            response.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
            return Ok(response);
        }
        let body = crate::admin::read_body(&mut req, CONFIGURATION_BYTES_MAX).await?;
        let rule = default_rule(parse_configuration(&body)?)?;
        if rule.algorithm == crate::managed::AWS_KMS
            && let Some(kms) = &self.kms
        {
            // An unknown key is refused now rather than on every later write.
            kms.key_arn(rule.kms_key_id.as_deref()).await.map_err(crate::managed::kms_error)?;
        }
        self.store
            .update_bucket_config(&bucket, |record| {
                record.default_encryption = Some(rule);
                Ok(())
            })
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(Body::empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
      <Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm>
        <KMSMasterKeyID>alias/k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>
        <BucketKeyEnabled>true</BucketKeyEnabled>
        <BlockedEncryptionTypes><EncryptionType>SSE-C</EncryptionType></BlockedEncryptionTypes></Rule>
    </ServerSideEncryptionConfiguration>"#;

    #[test]
    fn a_configuration_with_blocked_types_parses_into_the_default_rule() {
        let rule = parse_configuration(DOC.as_bytes()).and_then(default_rule).expect("valid");
        assert_eq!(
            rule,
            DefaultEncryption {
                algorithm: "aws:kms".into(),
                kms_key_id: Some("alias/k".into()),
                bucket_key: true,
                blocked_sse_c: true
            }
        );
    }

    #[test]
    fn the_configuration_written_back_parses_to_the_same_rule() {
        let rule = parse_configuration(DOC.as_bytes()).and_then(default_rule).expect("valid");
        let again = parse_configuration(configuration_xml(&rule).as_bytes()).and_then(default_rule).expect("valid");
        assert_eq!(again, rule);
    }

    #[test]
    fn malformed_configurations_are_refused() {
        let two_rules = DOC.replace("</Rule>", "</Rule><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>");
        for bad in [
            "<ServerSideEncryptionConfiguration></ServerSideEncryptionConfiguration>",
            two_rules.as_str(),
            "<ServerSideEncryptionConfiguration><Rule><Nope/></Rule></ServerSideEncryptionConfiguration>",
            "<ServerSideEncryptionConfiguration><Rule>",
            "not xml",
        ] {
            let result = parse_configuration(bad.as_bytes()).and_then(default_rule);
            assert!(result.is_err(), "{bad}");
        }
        let kms_key_with_aes = DOC.replace("aws:kms", "AES256");
        let e = parse_configuration(kms_key_with_aes.as_bytes()).and_then(default_rule).expect_err("AES256 + key id");
        assert_eq!(e.code().as_str(), "InvalidArgument");
    }
}
