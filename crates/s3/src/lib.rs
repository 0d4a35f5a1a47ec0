//! The S3 protocol adapter: implements the `s3s::S3` trait over the object
//! layer. This is the only crate that knows S3 DTOs, XML and error codes;
//! `s3s` (pinned, behind this crate) parses requests and checks signatures.
//!
//! Contract: every handler validates its input, calls the object layer, and
//! maps the outcome; errors are mapped in [`errors::to_s3`] only.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use bulwark_object::{
    ByteStream, ChecksumRequest, CompletedPart, ContentHeaders, ExpectedChecksum, GetOptions, ListParams, ObjectInfo,
    ObjectStore, PutOptions, PutOutcome, RangeSpec, ReadConditions, VersionListParams, Versioning, WriteCondition,
};
use futures::StreamExt;
use http::HeaderValue;
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

pub mod access;
pub mod admin;
pub mod auth;
pub mod checksums;
pub mod errors;
pub mod hosts;
pub mod managed;
pub mod rewrap;
pub mod routes;
pub mod sse;
pub mod tagging;

use errors::to_s3;

/// Receipt header: shards durable now / shards of the layout.
pub const REDUNDANCY_HEADER: &str = "x-bulwark-redundancy";

/// How the request reached us; the listener puts it in the request's
/// extensions. SSE-C over a connection that is not `secure` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    pub secure: bool,
    /// The client's address (for `aws:SourceIp`).
    pub peer: Option<std::net::SocketAddr>,
}

/// The id of one S3 request: the listener makes it, puts it in the request's
/// extensions and sends it back as `x-amz-request-id` (and as an error's
/// `<RequestId>`); the request's log lines carry it, and so do the KMS audit
/// records the request causes, so a client's report leads to both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id: 16 upper-case hex digits, like S3's.
    pub fn new() -> RequestId {
        // The halves of a v4 uuid XORed: 64 random bits (each half's fixed
        // version or variant bits meet random ones of the other).
        let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
        RequestId(format!("{:016X}", high ^ low))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keys of one DeleteObjects request deleted concurrently.
const DELETE_CONCURRENCY_MAX: usize = 16;

/// Identity shown as bucket and object owner.
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: String,
    pub display_name: String,
}

pub struct Bulwark {
    store: Arc<ObjectStore>,
    owner: Owner,
    region: String,
    kms: Option<Arc<bulwark_kms::Kms>>,
}

impl Bulwark {
    pub fn new(store: Arc<ObjectStore>, owner: Owner, region: String) -> Bulwark {
        Bulwark { store, owner, region, kms: None }
    }

    /// The KMS that SSE-S3 and SSE-KMS use; without it they are refused.
    pub fn set_kms(&mut self, kms: Arc<bulwark_kms::Kms>) {
        self.kms = Some(kms);
    }

    /// Who the request is from (the access check left it), or anonymous.
    fn caller(extensions: &http::Extensions) -> bulwark_access::Caller {
        extensions.get::<access::Grant>().map_or(bulwark_access::Caller::Anonymous, |g| g.caller.clone())
    }

    fn unwrapper(&self, extensions: &http::Extensions) -> Option<bulwark_object::Unwrapper> {
        managed::unwrapper(self.kms.as_ref(), &Self::caller(extensions), &request_id(extensions))
    }

    /// The encryption of a write: SSE-C from its customer-key headers, else
    /// SSE-S3/SSE-KMS from its `x-amz-server-side-encryption*` headers, else
    /// the bucket's default, else none.
    #[allow(clippy::too_many_arguments)]
    async fn resolve_write_encryption(
        &self,
        bucket: &str,
        key: &str,
        customer: Option<bulwark_object::Encryption>,
        algorithm: Option<&ServerSideEncryption>,
        kms_key_id: Option<&String>,
        context: Option<&String>,
        bucket_key: Option<bool>,
        extensions: &http::Extensions,
    ) -> S3Result<Option<bulwark_object::Encryption>> {
        let headers = managed::SseHeaders {
            algorithm: algorithm.map(|a| a.as_str()),
            kms_key_id: kms_key_id.map(String::as_str),
            context: context.map(String::as_str),
            bucket_key,
            customer_key: customer.is_some(),
        };
        let managed = self.write_encryption(bucket, key, headers, extensions).await?;
        Ok(customer.or(managed))
    }

    /// Changes one setting of a bucket's configuration (stored at write quorum).
    async fn change_bucket(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut bulwark_object::BucketRecord),
    ) -> S3Result<()> {
        self.store
            .update_bucket_config(bucket, |record| {
                change(record);
                Ok(())
            })
            .await
            .map_err(to_s3)
    }

    /// SSE-S3/SSE-KMS for a write (headers, else the bucket default).
    async fn write_encryption(
        &self,
        bucket: &str,
        key: &str,
        headers: managed::SseHeaders<'_>,
        extensions: &http::Extensions,
    ) -> S3Result<Option<bulwark_object::Encryption>> {
        let record = self.store.bucket_config(bucket).map_err(to_s3)?;
        managed::for_write(
            self.kms.as_ref(),
            bucket,
            key,
            &record,
            &headers,
            &Self::caller(extensions),
            &request_id(extensions),
        )
        .await
    }

    fn owner(&self) -> s3s::dto::Owner {
        s3s::dto::Owner { display_name: Some(self.owner.display_name.clone()), id: Some(self.owner.id.clone()) }
    }
}

/// SSE-S3/SSE-KMS headers belong on writes; S3 refuses them on GET/HEAD
/// (the object's own encryption applies).
fn refuse_sse_on_read(headers: &http::HeaderMap) -> S3Result<()> {
    for name in ["x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id"] {
        if headers.contains_key(name) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("The {name} header is not supported for this operation"),
            ));
        }
    }
    Ok(())
}

/// The id tying the KMS audit records of one S3 request to it: the listener's
/// (see [`RequestId`]), or a fresh one for work no request caused.
fn request_id(extensions: &http::Extensions) -> String {
    extensions.get::<RequestId>().cloned().unwrap_or_default().0
}

fn timestamp(ns: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    // S3 reports times with millisecond precision at most.
    let t = t.replace_nanosecond(t.millisecond() as u32 * 1_000_000).unwrap_or(t);
    Timestamp::from(t)
}

fn ts_to_ns(ts: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = ts.clone().into();
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn http_date(ts: &Timestamp) -> Option<String> {
    let mut out = Vec::new();
    ts.format(TimestampFormat::HttpDate, &mut out).ok()?;
    String::from_utf8(out).ok()
}

fn parse_http_date(s: &str) -> Option<Timestamp> {
    Timestamp::parse(TimestampFormat::HttpDate, s).ok()
}

fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

fn condition_str(c: &ETagCondition) -> String {
    match c.as_etag() {
        Some(e) => e.value().to_owned(),
        None => "*".to_owned(),
    }
}

fn decode_content_md5(value: Option<&str>) -> S3Result<Option<[u8; 16]>> {
    let Some(value) = value else { return Ok(None) };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
    let digest: [u8; 16] =
        bytes.try_into().map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified is not valid."))?;
    Ok(Some(digest))
}

fn body_stream(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(blob) => {
            Box::pin(blob.map(|chunk| chunk.map_err(|e| std::io::Error::other(errors::BodyError::classify(&*e)))))
        }
        None => Box::pin(futures::stream::empty()),
    }
}

fn declared_length(len: Option<i64>) -> S3Result<Option<u64>> {
    match len {
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "Content-Length must not be negative")),
        Some(n) => Ok(Some(n as u64)),
        None => Ok(None),
    }
}

fn user_meta(metadata: Option<Metadata>) -> BTreeMap<String, String> {
    metadata.unwrap_or_default().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
}

fn metadata_out(meta: &BTreeMap<String, String>) -> Option<Metadata> {
    if meta.is_empty() { None } else { Some(meta.iter().map(|(k, v)| (k.clone(), v.clone())).collect()) }
}

fn with_receipt<T>(output: T, outcome: &PutOutcome) -> S3Response<T> {
    let mut response = S3Response::new(output);
    let receipt = format!("{}/{}", outcome.redundancy.durable, outcome.redundancy.total);
    if let Ok(value) = HeaderValue::from_str(&receipt) {
        response.headers.insert(REDUNDANCY_HEADER, value);
    }
    response
}

fn range_spec(range: Option<Range>) -> Option<RangeSpec> {
    range.map(|r| match r {
        Range::Int { first, last } => RangeSpec::FromTo { first, last },
        Range::Suffix { length } => RangeSpec::Suffix { length },
    })
}

fn part_number(n: Option<i32>) -> S3Result<Option<u32>> {
    match n {
        None => Ok(None),
        Some(n) if (1..=10_000).contains(&n) => Ok(Some(n as u32)),
        Some(_) => Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive")),
    }
}

fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
    copy_source: bool,
) -> ReadConditions {
    ReadConditions {
        if_match: if_match.map(condition_str),
        if_none_match: if_none_match.map(condition_str),
        if_modified_since_ns: if_modified_since.map(ts_to_ns),
        if_unmodified_since_ns: if_unmodified_since.map(ts_to_ns),
        copy_source,
    }
}

fn content_range(range: &bulwark_object::ByteRange, size: u64) -> String {
    format!("bytes {}-{}/{}", range.start, range.end_inclusive, size)
}

/// Percent-encodes for `encoding-type=url` (everything but unreserved and `/`).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn encoder(encoding: Option<&EncodingType>) -> S3Result<fn(&str) -> String> {
    match encoding.map(EncodingType::as_str) {
        None => Ok(str::to_owned),
        Some("url") => Ok(url_encode),
        Some(other) => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("Invalid Encoding Method specified in Request: {other}"),
        )),
    }
}

fn max_keys(value: Option<i32>) -> S3Result<usize> {
    match value {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be a non-negative integer")),
        Some(n) => Ok(n as usize),
    }
}

fn object_headers_put(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<&Timestamp>,
) -> ContentHeaders {
    ContentHeaders {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        expires: expires.and_then(http_date),
    }
}

fn copy_source_of(source: &CopySource) -> S3Result<(String, String, Option<String>)> {
    match source {
        CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_id.as_ref().map(|v| v.to_string())))
        }
        _ => Err(s3_error!(NotImplemented, "Access point copy sources are not supported")),
    }
}

fn parse_copy_range(value: &str) -> S3Result<RangeSpec> {
    let invalid =
        || s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last");
    let spec = value.strip_prefix("bytes=").ok_or_else(invalid)?;
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if last < first {
        return Err(invalid());
    }
    Ok(RangeSpec::FromTo { first, last: Some(last) })
}

/// The checksum of a copy: the requested algorithm (recomputed), else the
/// source's; when the source has a full-object checksum in that algorithm the
/// copied bytes are verified against it.
fn copy_checksum(
    source: &ObjectInfo,
    requested: Option<bulwark_object::ChecksumAlgorithm>,
    range: Option<&bulwark_object::ByteRange>,
) -> ChecksumRequest {
    let source_checksum = source.checksum.as_ref();
    let algorithm = requested.or(source_checksum.map(|c| c.algorithm));
    let expected = match (source_checksum, range) {
        (Some(c), None) if Some(c.algorithm) == algorithm && c.kind == bulwark_object::ChecksumType::FullObject => {
            bulwark_object::checksum::decode(c.algorithm, &c.value).map(ExpectedChecksum::Value)
        }
        _ => None,
    };
    ChecksumRequest { algorithm, expected, also_verify: Vec::new() }
}

/// Whether an SSE-C key encrypts new data or opens existing data (GET,
/// HEAD, copy sources): a key of the wrong length is 400 for the first and a
/// wrong key (403) for the second.
#[derive(Clone, Copy)]
enum KeyUse {
    Write,
    Read,
}

/// The SSE-C key of a request, from its three headers.
fn customer_key(
    key_use: KeyUse,
    extensions: &http::Extensions,
    algorithm: Option<&String>,
    key: Option<&String>,
    key_md5: Option<&String>,
) -> S3Result<Option<bulwark_object::Encryption>> {
    let for_read = matches!(key_use, KeyUse::Read);
    sse::customer_key(
        sse::CustomerKeyHeaders {
            algorithm: algorithm.map(String::as_str),
            key: key.map(String::as_str),
            key_md5: key_md5.map(String::as_str),
            for_read,
        },
        extensions.get::<Transport>(),
    )
}

const SSE_C_ALGORITHM: &str = "AES256";

/// The parts of a request a handler needs besides its input.
struct RequestParts {
    headers: http::HeaderMap,
    trailing_headers: Option<s3s::TrailingHeaders>,
}

/// The checksum a GET or HEAD returns: the object's for a whole read, the
/// part's for a partNumber read, none for a byte range.
fn response_checksum(
    info: &ObjectInfo,
    mode: Option<&ChecksumMode>,
    part: Option<u32>,
    ranged: bool,
) -> checksums::Fields {
    if mode.is_none_or(|m| m.as_str() != ChecksumMode::ENABLED) || ranged {
        return checksums::Fields::default();
    }
    match (part, &info.checksum) {
        (None, Some(c)) => checksums::fields(Some(c)),
        (Some(number), Some(c)) => {
            let mut out = checksums::Fields::default();
            if let Some(value) = info.parts.iter().find(|p| p.number == number).and_then(|p| p.checksum.clone()) {
                checksums::set_value(&mut out, c.algorithm, value);
                out.kind = Some(ChecksumType::from(c.kind.as_str().to_owned()));
            }
            out
        }
        (_, None) => checksums::Fields::default(),
    }
}

impl Bulwark {
    fn head_output(&self, info: &ObjectInfo, range: Option<&bulwark_object::ByteRange>) -> HeadObjectOutput {
        let sse = managed::fields(info.sse.as_ref());
        HeadObjectOutput {
            accept_ranges: Some("bytes".into()),
            cache_control: info.headers.cache_control.clone(),
            content_disposition: info.headers.content_disposition.clone(),
            content_encoding: info.headers.content_encoding.clone(),
            content_language: info.headers.content_language.clone(),
            content_length: Some(range.map_or(info.size, |r| r.len()) as i64),
            content_range: range.map(|r| content_range(r, info.size)),
            content_type: info.headers.content_type.clone(),
            e_tag: Some(etag(&info.etag)),
            expires: info.headers.expires.as_deref().and_then(parse_http_date),
            last_modified: Some(timestamp(info.mod_time_ns)),
            metadata: metadata_out(&info.user_meta),
            parts_count: info.parts_count.map(|n| n as i32),
            version_id: info.version_id.clone(),
            sse_customer_algorithm: info.sse_c_key_md5.as_ref().map(|_| SSE_C_ALGORITHM.into()),
            sse_customer_key_md5: info.sse_c_key_md5.clone(),
            server_side_encryption: sse.algorithm,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            ..Default::default()
        }
    }
}

#[async_trait::async_trait]
impl S3 for Bulwark {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = &req.input.bucket;
        if let Some(constraint) =
            req.input.create_bucket_configuration.as_ref().and_then(|c| c.location_constraint.as_ref())
            && constraint.as_str() != self.region
            && !(constraint.as_str().is_empty() && self.region == "us-east-1")
        {
            return Err(s3_error!(
                IllegalLocationConstraintException,
                "The specified location-constraint is not valid for this server's region"
            ));
        }
        self.store.make_bucket(bucket).await.map_err(to_s3)?;
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) }))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store.head_bucket(&req.input.bucket).map_err(to_s3)?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() }))
    }

    async fn delete_bucket(&self, req: S3Request<DeleteBucketInput>) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store.delete_bucket(&req.input.bucket).await.map_err(to_s3)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn list_buckets(&self, _req: S3Request<ListBucketsInput>) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self
            .store
            .list_buckets()
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp(b.created_ns)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(self.owner()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store.head_bucket(&req.input.bucket).map_err(to_s3)?;
        let location_constraint =
            if self.region == "us-east-1" { None } else { Some(BucketLocationConstraint::from(self.region.clone())) };
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let S3Request { input, headers, trailing_headers, extensions, .. } = req;
        let req = RequestParts { headers, trailing_headers };
        let encryption = customer_key(
            KeyUse::Write,
            &extensions,
            input.sse_customer_algorithm.as_ref(),
            input.sse_customer_key.as_ref(),
            input.sse_customer_key_md5.as_ref(),
        )?;
        if input.write_offset_bytes.is_some() {
            return Err(s3_error!(NotImplemented, "Appending with x-amz-write-offset-bytes is not supported"));
        }
        let condition = match (&input.if_none_match, &input.if_match) {
            (Some(c), _) if c.is_any() => WriteCondition::IfNoneMatchAny,
            (Some(_), _) => {
                return Err(s3_error!(NotImplemented, "If-None-Match on PUT supports only '*'"));
            }
            (None, Some(c)) => WriteCondition::IfMatch(condition_str(c)),
            (None, None) => WriteCondition::None,
        };
        let encryption = self
            .resolve_write_encryption(
                &input.bucket,
                &input.key,
                encryption,
                input.server_side_encryption.as_ref(),
                input.ssekms_key_id.as_ref(),
                input.ssekms_encryption_context.as_ref(),
                input.bucket_key_enabled,
                &extensions,
            )
            .await?;
        let opts = PutOptions {
            headers: object_headers_put(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires.as_ref(),
            ),
            user_meta: user_meta(input.metadata),
            content_md5: decode_content_md5(input.content_md5.as_deref())?,
            condition,
            checksum: checksums::request(
                &req.headers,
                req.trailing_headers.as_ref(),
                input.checksum_algorithm.as_ref().map(|a| a.as_str()),
                checksums::ChecksumValues {
                    crc32: input.checksum_crc32.as_ref(),
                    crc32c: input.checksum_crc32c.as_ref(),
                    crc64nvme: input.checksum_crc64nvme.as_ref(),
                    sha1: input.checksum_sha1.as_ref(),
                    sha256: input.checksum_sha256.as_ref(),
                },
            )?,
            encryption,
            unwrapper: None,
            tags: tagging::from_header(input.tagging.as_deref())?,
        };
        let client_checksum = opts.checksum.algorithm.is_some();
        let size = declared_length(input.content_length)?;
        let outcome = self
            .store
            .put_object(&input.bucket, &input.key, body_stream(input.body), size, opts)
            .await
            .map_err(to_s3)?;
        let mut output = PutObjectOutput {
            e_tag: Some(etag(&outcome.etag)),
            size: Some(outcome.size as i64),
            version_id: outcome.version_id.clone(),
            ..Default::default()
        };
        if client_checksum {
            fill_checksums!(output, checksums::fields(outcome.checksum.as_ref()));
        }
        if let Some(md5) = &outcome.sse_c_key_md5 {
            output.sse_customer_algorithm = Some(SSE_C_ALGORITHM.into());
            output.sse_customer_key_md5 = Some(md5.clone());
        }
        let sse = managed::fields(outcome.sse.as_ref());
        output.server_side_encryption = sse.algorithm;
        output.ssekms_key_id = sse.kms_key_id;
        output.ssekms_encryption_context = sse.context;
        output.bucket_key_enabled = sse.bucket_key;
        Ok(with_receipt(output, &outcome))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        refuse_sse_on_read(&req.headers)?;
        let encryption = customer_key(
            KeyUse::Read,
            &req.extensions,
            req.input.sse_customer_algorithm.as_ref(),
            req.input.sse_customer_key.as_ref(),
            req.input.sse_customer_key_md5.as_ref(),
        )?;
        let extensions = req.extensions;
        let input = req.input;
        if input.range.is_some() && input.part_number.is_some() {
            return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        let opts = GetOptions {
            version_id: input.version_id.clone(),
            range: range_spec(input.range),
            part_number: part_number(input.part_number)?,
            conditions: read_conditions(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
                input.if_unmodified_since.as_ref(),
                false,
            ),
            encryption: encryption.clone(),
            unwrapper: self.unwrapper(&extensions),
        };
        let outcome = self.store.get_object(&input.bucket, &input.key, &opts).await.map_err(to_s3)?;
        let head = self.head_output(&outcome.info, outcome.range.as_ref());
        let checksum_fields =
            response_checksum(&outcome.info, input.checksum_mode.as_ref(), opts.part_number, opts.range.is_some());
        let mut output = GetObjectOutput {
            accept_ranges: head.accept_ranges,
            body: Some(StreamingBlob::wrap(outcome.body)),
            cache_control: head.cache_control,
            content_disposition: head.content_disposition,
            content_encoding: head.content_encoding,
            content_language: head.content_language,
            content_length: head.content_length,
            content_range: head.content_range,
            content_type: head.content_type,
            e_tag: head.e_tag,
            expires: head.expires,
            last_modified: head.last_modified,
            metadata: head.metadata,
            parts_count: head.parts_count,
            version_id: head.version_id,
            sse_customer_algorithm: head.sse_customer_algorithm,
            sse_customer_key_md5: head.sse_customer_key_md5,
            server_side_encryption: head.server_side_encryption,
            ssekms_key_id: head.ssekms_key_id,
            bucket_key_enabled: head.bucket_key_enabled,
            tag_count: (outcome.info.tag_count > 0).then_some(outcome.info.tag_count as i32),
            ..Default::default()
        };
        fill_checksums!(output, checksum_fields);
        Ok(S3Response::new(output))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        refuse_sse_on_read(&req.headers)?;
        let encryption = customer_key(
            KeyUse::Read,
            &req.extensions,
            req.input.sse_customer_algorithm.as_ref(),
            req.input.sse_customer_key.as_ref(),
            req.input.sse_customer_key_md5.as_ref(),
        )?;
        let input = req.input;
        if input.range.is_some() && input.part_number.is_some() {
            return Err(s3_error!(InvalidRequest, "Cannot specify both Range header and partNumber query parameter"));
        }
        let opts = GetOptions {
            version_id: input.version_id.clone(),
            range: range_spec(input.range),
            part_number: part_number(input.part_number)?,
            conditions: read_conditions(
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
                input.if_unmodified_since.as_ref(),
                false,
            ),
            encryption: encryption.clone(),
            unwrapper: None,
        };
        let (info, range) = self.store.head_object(&input.bucket, &input.key, &opts).await.map_err(to_s3)?;
        let mut output = self.head_output(&info, range.as_ref());
        fill_checksums!(
            output,
            response_checksum(&info, input.checksum_mode.as_ref(), opts.part_number, opts.range.is_some())
        );
        Ok(S3Response::new(output))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let outcome =
            self.store.delete_object(&input.bucket, &input.key, input.version_id.as_deref()).await.map_err(to_s3)?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: outcome.delete_marker.then_some(true),
            version_id: outcome.version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.store.head_bucket(&input.bucket).map_err(to_s3)?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "The request may not name more than 1000 keys"));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket.clone();
        // Authorised per key, as S3 does: a denied key is reported, the
        // others proceed. No grant means the access layer did not run: deny.
        let grant = req.extensions.get::<access::Grant>();
        // Keys are independent: delete several at once, report in request order.
        let results: Vec<_> = futures::stream::iter(input.delete.objects)
            .map(|object| {
                let bucket = bucket.clone();
                async move {
                    let action = if object.version_id.is_some() { "s3:DeleteObjectVersion" } else { "s3:DeleteObject" };
                    let permitted = match grant {
                        Some(grant) => {
                            let version = object.version_id.as_deref();
                            grant.allows_object_version(&self.store, action, &bucket, &object.key, version).await
                        }
                        None => false,
                    };
                    let result = if permitted {
                        self.store
                            .delete_object(&bucket, &object.key, object.version_id.as_deref())
                            .await
                            .map_err(to_s3)
                    } else {
                        Err(s3_error!(AccessDenied, "Access Denied"))
                    };
                    (object, result)
                }
            })
            .buffered(DELETE_CONCURRENCY_MAX)
            .collect()
            .await;
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (object, result) in results {
            match result {
                Ok(outcome) => {
                    if !quiet {
                        let marker_created = object.version_id.is_none() && outcome.delete_marker;
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            version_id: object.version_id,
                            delete_marker: outcome.delete_marker.then_some(true),
                            delete_marker_version_id: if marker_created { outcome.version_id } else { None },
                        });
                    }
                }
                Err(e) => {
                    errors.push(s3s::dto::Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(object.key),
                        message: e.message().map(str::to_owned),
                        version_id: object.version_id,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: if errors.is_empty() { None } else { Some(errors) },
            ..Default::default()
        }))
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let encryption = customer_key(
            KeyUse::Write,
            &req.extensions,
            req.input.sse_customer_algorithm.as_ref(),
            req.input.sse_customer_key.as_ref(),
            req.input.sse_customer_key_md5.as_ref(),
        )?;
        let source_encryption = customer_key(
            KeyUse::Read,
            &req.extensions,
            req.input.copy_source_sse_customer_algorithm.as_ref(),
            req.input.copy_source_sse_customer_key.as_ref(),
            req.input.copy_source_sse_customer_key_md5.as_ref(),
        )?;
        let input = req.input;
        let (source_bucket, source_key, source_version) = copy_source_of(&input.copy_source)?;
        let replace = match input.metadata_directive.as_ref().map(MetadataDirective::as_str) {
            None | Some("COPY") => false,
            Some("REPLACE") => true,
            Some(other) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("Unknown metadata directive: {other}"),
                ));
            }
        };
        let changes_encryption =
            encryption.is_some() || source_encryption.is_some() || input.server_side_encryption.is_some();
        let encryption = self
            .resolve_write_encryption(
                &input.bucket,
                &input.key,
                encryption,
                input.server_side_encryption.as_ref(),
                input.ssekms_key_id.as_ref(),
                input.ssekms_encryption_context.as_ref(),
                input.bucket_key_enabled,
                &req.extensions,
            )
            .await?;
        if source_bucket == input.bucket
            && source_key == input.key
            && source_version.is_none()
            && !replace
            && !changes_encryption
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let opts = GetOptions {
            version_id: source_version.clone(),
            conditions: read_conditions(
                input.copy_source_if_match.as_ref(),
                input.copy_source_if_none_match.as_ref(),
                input.copy_source_if_modified_since.as_ref(),
                input.copy_source_if_unmodified_since.as_ref(),
                true,
            ),
            encryption: source_encryption.clone(),
            unwrapper: self.unwrapper(&req.extensions),
            ..Default::default()
        };
        self.store.head_bucket(&input.bucket).map_err(to_s3)?;
        let source = self.store.get_object(&source_bucket, &source_key, &opts).await.map_err(to_s3)?;
        let (headers, meta) = if replace {
            (
                object_headers_put(
                    input.content_type,
                    input.content_encoding,
                    input.content_disposition,
                    input.content_language,
                    input.cache_control,
                    input.expires.as_ref(),
                ),
                user_meta(input.metadata),
            )
        } else {
            (source.info.headers.clone(), source.info.user_meta.clone())
        };
        let requested_algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(|a| checksums::parse_algorithm(a.as_str(), "x-amz-checksum-algorithm"))
            .transpose()?;
        let tags = match input.tagging_directive.as_ref().map(|d| d.as_str()) {
            Some("REPLACE") => tagging::from_header(input.tagging.as_deref())?,
            None | Some("COPY") => {
                self.store
                    .object_tags(&source_bucket, &source_key, source.info.version_id.as_deref())
                    .await
                    .map_err(to_s3)?
                    .1
            }
            Some(other) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!("Unknown tagging directive: {other}"),
                ));
            }
        };
        let put = PutOptions {
            headers,
            user_meta: meta,
            content_md5: None,
            condition: WriteCondition::None,
            checksum: copy_checksum(&source.info, requested_algorithm, None),
            encryption,
            unwrapper: None,
            tags,
        };
        let outcome = self
            .store
            .put_object(&input.bucket, &input.key, source.body, Some(source.info.size), put)
            .await
            .map_err(to_s3)?;
        let sse = managed::fields(outcome.sse.as_ref());
        let output = CopyObjectOutput {
            copy_object_result: Some({
                let mut result = CopyObjectResult {
                    e_tag: Some(etag(&outcome.etag)),
                    last_modified: Some(timestamp(outcome.mod_time_ns)),
                    ..Default::default()
                };
                fill_checksums!(result, checksums::fields(outcome.checksum.as_ref()));
                result
            }),
            copy_source_version_id: source.info.version_id.clone().or(source_version.map(|_| "null".to_owned())),
            version_id: outcome.version_id.clone(),
            sse_customer_algorithm: outcome.sse_c_key_md5.as_ref().map(|_| SSE_C_ALGORITHM.into()),
            sse_customer_key_md5: outcome.sse_c_key_md5.clone(),
            server_side_encryption: sse.algorithm,
            ssekms_key_id: sse.kms_key_id,
            ssekms_encryption_context: sse.context,
            bucket_key_enabled: sse.bucket_key,
            ..Default::default()
        };
        Ok(with_receipt(output, &outcome))
    }

    async fn list_objects(&self, req: S3Request<ListObjectsInput>) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let encode = encoder(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = self
            .store
            .list_objects(
                &input.bucket,
                ListParams {
                    prefix: prefix.clone(),
                    delimiter: input.delimiter.clone(),
                    start_after: input.marker.clone().filter(|m| !m.is_empty()),
                    max_keys: max_keys(input.max_keys)?,
                },
            )
            .await
            .map_err(to_s3)?;
        let owner = self.owner();
        let contents = page
            .objects
            .iter()
            .map(|o| Object {
                key: Some(encode(&o.key)),
                size: Some(o.size as i64),
                e_tag: Some(etag(&o.etag)),
                last_modified: Some(timestamp(o.mod_time_ns)),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                owner: Some(owner.clone()),
                ..Default::default()
            })
            .collect();
        let common_prefixes = page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(encode(p)) }).collect();
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix)),
            marker: Some(input.marker.as_deref().map(encode).unwrap_or_default()),
            max_keys: Some(input.max_keys.unwrap_or(1000)),
            is_truncated: Some(page.is_truncated),
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            delimiter: input.delimiter.as_deref().map(encode),
            next_marker: if page.is_truncated && input.delimiter.is_some() {
                page.next_marker.as_deref().map(encode)
            } else {
                None
            },
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let encode = encoder(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let after_token = match &input.continuation_token {
            Some(token) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
            ),
            None => None,
        };
        let start_after = after_token.or_else(|| input.start_after.clone().filter(|s| !s.is_empty()));
        let page = self
            .store
            .list_objects(
                &input.bucket,
                ListParams {
                    prefix: prefix.clone(),
                    delimiter: input.delimiter.clone(),
                    start_after,
                    max_keys: max_keys(input.max_keys)?,
                },
            )
            .await
            .map_err(to_s3)?;
        let fetch_owner = input.fetch_owner.unwrap_or(false);
        let owner = self.owner();
        let contents: Vec<Object> = page
            .objects
            .iter()
            .map(|o| Object {
                key: Some(encode(&o.key)),
                size: Some(o.size as i64),
                e_tag: Some(etag(&o.etag)),
                last_modified: Some(timestamp(o.mod_time_ns)),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                owner: fetch_owner.then(|| owner.clone()),
                ..Default::default()
            })
            .collect();
        let common_prefixes: Vec<CommonPrefix> =
            page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(encode(p)) }).collect();
        let key_count = (contents.len() + common_prefixes.len()) as i32;
        let next_token = if page.is_truncated {
            page.next_marker.as_deref().map(|m| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m))
        } else {
            None
        };
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encode(&prefix)),
            max_keys: Some(input.max_keys.unwrap_or(1000)),
            key_count: Some(key_count),
            continuation_token: input.continuation_token,
            is_truncated: Some(page.is_truncated),
            next_continuation_token: next_token,
            contents: Some(contents),
            common_prefixes: Some(common_prefixes),
            delimiter: input.delimiter.as_deref().map(encode),
            encoding_type: input.encoding_type,
            start_after: input.start_after.as_deref().map(encode),
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let S3Request { input, extensions, .. } = req;
        let encryption = customer_key(
            KeyUse::Write,
            &extensions,
            input.sse_customer_algorithm.as_ref(),
            input.sse_customer_key.as_ref(),
            input.sse_customer_key_md5.as_ref(),
        )?;
        let encryption = self
            .resolve_write_encryption(
                &input.bucket,
                &input.key,
                encryption,
                input.server_side_encryption.as_ref(),
                input.ssekms_key_id.as_ref(),
                input.ssekms_encryption_context.as_ref(),
                input.bucket_key_enabled,
                &extensions,
            )
            .await?;
        let sse = managed::fields(managed::summary_of(encryption.as_ref()).as_ref());
        let algorithm = input
            .checksum_algorithm
            .as_ref()
            .map(|a| checksums::parse_algorithm(a.as_str(), "x-amz-checksum-algorithm"))
            .transpose()?;
        let kind = match input.checksum_type.as_ref().map(|t| t.as_str()) {
            None => None,
            Some("COMPOSITE") => Some(bulwark_object::ChecksumType::Composite),
            Some("FULL_OBJECT") => Some(bulwark_object::ChecksumType::FullObject),
            Some(_) => {
                return Err(s3_error!(InvalidRequest, "Value for x-amz-checksum-type header is invalid."));
            }
        };
        if kind.is_some() && algorithm.is_none() {
            return Err(s3_error!(
                InvalidRequest,
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            ));
        }
        let opts = PutOptions {
            headers: object_headers_put(
                input.content_type,
                input.content_encoding,
                input.content_disposition,
                input.content_language,
                input.cache_control,
                input.expires.as_ref(),
            ),
            user_meta: user_meta(input.metadata),
            content_md5: None,
            condition: WriteCondition::None,
            checksum: ChecksumRequest { algorithm, ..Default::default() },
            encryption: encryption.clone(),
            unwrapper: None,
            tags: tagging::from_header(input.tagging.as_deref())?,
        };
        let sse_c_key_md5 = match &encryption {
            Some(bulwark_object::Encryption::CustomerKey { key_md5, .. }) => Some(key_md5.clone()),
            _ => None,
        };
        let upload_id =
            self.store.create_multipart_upload(&input.bucket, &input.key, opts, kind).await.map_err(to_s3)?;
        let (echo_algorithm, echo_type) = match algorithm {
            Some(a) => {
                let kind = kind.unwrap_or(if a == bulwark_object::ChecksumAlgorithm::Crc64nvme {
                    bulwark_object::ChecksumType::FullObject
                } else {
                    bulwark_object::ChecksumType::Composite
                });
                (
                    Some(s3s::dto::ChecksumAlgorithm::from(a.as_str().to_owned())),
                    Some(ChecksumType::from(kind.as_str().to_owned())),
                )
            }
            None => (None, None),
        };
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: echo_algorithm,
            checksum_type: echo_type,
            sse_customer_algorithm: sse_c_key_md5.as_ref().map(|_| SSE_C_ALGORITHM.into()),
            sse_customer_key_md5: sse_c_key_md5,
            server_side_encryption: sse.algorithm,
            ssekms_key_id: sse.kms_key_id,
            ssekms_encryption_context: sse.context,
            bucket_key_enabled: sse.bucket_key,
            ..Default::default()
        }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let S3Request { input, headers, trailing_headers, extensions, .. } = req;
        let encryption = customer_key(
            KeyUse::Write,
            &extensions,
            input.sse_customer_algorithm.as_ref(),
            input.sse_customer_key.as_ref(),
            input.sse_customer_key_md5.as_ref(),
        )?;
        let number = part_number(Some(input.part_number))?.unwrap_or(1);
        let checksum = checksums::request(
            &headers,
            trailing_headers.as_ref(),
            input.checksum_algorithm.as_ref().map(|a| a.as_str()),
            checksums::ChecksumValues {
                crc32: input.checksum_crc32.as_ref(),
                crc32c: input.checksum_crc32c.as_ref(),
                crc64nvme: input.checksum_crc64nvme.as_ref(),
                sha1: input.checksum_sha1.as_ref(),
                sha256: input.checksum_sha256.as_ref(),
            },
        )?;
        let client_algorithm = checksum.algorithm;
        let opts = PutOptions {
            content_md5: decode_content_md5(input.content_md5.as_deref())?,
            checksum,
            encryption,
            unwrapper: self.unwrapper(&extensions),
            ..Default::default()
        };
        let outcome = self
            .store
            .upload_part(
                &input.bucket,
                &input.key,
                &input.upload_id,
                number,
                body_stream(input.body),
                declared_length(input.content_length)?,
                opts,
            )
            .await
            .map_err(to_s3)?;
        let sse = managed::fields(outcome.sse.as_ref());
        let mut output = UploadPartOutput {
            e_tag: Some(etag(&outcome.etag)),
            sse_customer_algorithm: outcome.sse_c_key_md5.as_ref().map(|_| SSE_C_ALGORITHM.into()),
            sse_customer_key_md5: outcome.sse_c_key_md5.clone(),
            server_side_encryption: sse.algorithm,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            ..Default::default()
        };
        if let (Some(_), Some(c)) = (client_algorithm, &outcome.checksum) {
            let f = checksums::fields(Some(c));
            output.checksum_crc32 = f.crc32;
            output.checksum_crc32c = f.crc32c;
            output.checksum_crc64nvme = f.crc64nvme;
            output.checksum_sha1 = f.sha1;
            output.checksum_sha256 = f.sha256;
        }
        Ok(with_receipt(output, &outcome))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let encryption = customer_key(
            KeyUse::Write,
            &req.extensions,
            req.input.sse_customer_algorithm.as_ref(),
            req.input.sse_customer_key.as_ref(),
            req.input.sse_customer_key_md5.as_ref(),
        )?;
        let source_encryption = customer_key(
            KeyUse::Read,
            &req.extensions,
            req.input.copy_source_sse_customer_algorithm.as_ref(),
            req.input.copy_source_sse_customer_key.as_ref(),
            req.input.copy_source_sse_customer_key_md5.as_ref(),
        )?;
        let input = req.input;
        let (source_bucket, source_key, source_version) = copy_source_of(&input.copy_source)?;
        let number = part_number(Some(input.part_number))?.unwrap_or(1);
        let opts = GetOptions {
            version_id: source_version.clone(),
            range: input.copy_source_range.as_deref().map(parse_copy_range).transpose()?,
            conditions: read_conditions(
                input.copy_source_if_match.as_ref(),
                input.copy_source_if_none_match.as_ref(),
                input.copy_source_if_modified_since.as_ref(),
                input.copy_source_if_unmodified_since.as_ref(),
                true,
            ),
            encryption: source_encryption.clone(),
            unwrapper: self.unwrapper(&req.extensions),
            ..Default::default()
        };
        self.store.head_bucket(&input.bucket).map_err(to_s3)?;
        let source = self.store.get_object(&source_bucket, &source_key, &opts).await.map_err(|e| match e {
            bulwark_object::Error::InvalidRange => S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "The x-amz-copy-source-range value is outside the source object",
            ),
            other => to_s3(other),
        })?;
        let length = source.range.map_or(source.info.size, |r| r.len());
        let opts = PutOptions {
            checksum: copy_checksum(&source.info, None, source.range.as_ref()),
            encryption,
            unwrapper: self.unwrapper(&req.extensions),
            ..Default::default()
        };
        let outcome = self
            .store
            .upload_part(&input.bucket, &input.key, &input.upload_id, number, source.body, Some(length), opts)
            .await
            .map_err(to_s3)?;
        let sse = managed::fields(outcome.sse.as_ref());
        let output = UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(etag(&outcome.etag)),
                last_modified: Some(timestamp(outcome.mod_time_ns)),
                ..Default::default()
            }),
            copy_source_version_id: source_version,
            sse_customer_algorithm: outcome.sse_c_key_md5.as_ref().map(|_| SSE_C_ALGORITHM.into()),
            sse_customer_key_md5: outcome.sse_c_key_md5.clone(),
            server_side_encryption: sse.algorithm,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            ..Default::default()
        };
        Ok(with_receipt(output, &outcome))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let parts = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        let mut requested = Vec::with_capacity(parts.len());
        for part in parts {
            let number =
                part.part_number.ok_or_else(|| s3_error!(InvalidPart, "Every part must name its PartNumber"))?;
            let number = part_number(Some(number))?.unwrap_or(1);
            let tag = part
                .e_tag
                .as_ref()
                .map(|e| e.value().to_owned())
                .ok_or_else(|| s3_error!(InvalidPart, "Every part must carry its ETag"))?;
            let claimed = checksums::ChecksumValues {
                crc32: part.checksum_crc32.as_ref(),
                crc32c: part.checksum_crc32c.as_ref(),
                crc64nvme: part.checksum_crc64nvme.as_ref(),
                sha1: part.checksum_sha1.as_ref(),
                sha256: part.checksum_sha256.as_ref(),
            };
            let claimed = checksums::request(&http::HeaderMap::new(), None, None, claimed)?;
            let checksum = match (claimed.algorithm, claimed.expected) {
                (Some(a), Some(ExpectedChecksum::Value(v))) => Some((a, v)),
                _ => None,
            };
            requested.push(CompletedPart { number, etag: tag, checksum });
        }
        if requested.is_empty() {
            return Err(s3_error!(MalformedXML, "The XML you provided did not list any parts"));
        }
        let full_checksum = [
            (bulwark_object::ChecksumAlgorithm::Crc32, &input.checksum_crc32),
            (bulwark_object::ChecksumAlgorithm::Crc32c, &input.checksum_crc32c),
            (bulwark_object::ChecksumAlgorithm::Crc64nvme, &input.checksum_crc64nvme),
            (bulwark_object::ChecksumAlgorithm::Sha1, &input.checksum_sha1),
            (bulwark_object::ChecksumAlgorithm::Sha256, &input.checksum_sha256),
        ]
        .into_iter()
        .find_map(|(a, v)| v.clone().map(|v| (a, v)));
        let condition = match (&input.if_none_match, &input.if_match) {
            (Some(c), _) if c.is_any() => WriteCondition::IfNoneMatchAny,
            (None, Some(c)) => WriteCondition::IfMatch(condition_str(c)),
            _ => WriteCondition::None,
        };
        let outcome = self
            .store
            .complete_multipart_upload(
                &input.bucket,
                &input.key,
                &input.upload_id,
                &requested,
                full_checksum,
                &condition,
            )
            .await
            .map_err(to_s3)?;
        let sse = managed::fields(outcome.sse.as_ref());
        let mut output = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(etag(&outcome.etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: outcome.version_id.clone(),
            server_side_encryption: sse.algorithm,
            ssekms_key_id: sse.kms_key_id,
            bucket_key_enabled: sse.bucket_key,
            ..Default::default()
        };
        fill_checksums!(output, checksums::fields(outcome.checksum.as_ref()));
        Ok(with_receipt(output, &outcome))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.store.abort_multipart_upload(&input.bucket, &input.key, &input.upload_id).await.map_err(to_s3)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let (upload, parts, upload_checksum) =
            self.store.list_parts(&input.bucket, &input.key, &input.upload_id).await.map_err(to_s3)?;
        let _ = upload;
        let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
        let max_parts = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let after: Vec<_> = parts.into_iter().filter(|p| p.number > marker).collect();
        let is_truncated = after.len() > max_parts;
        let page: Vec<_> = after.into_iter().take(max_parts).collect();
        let next_marker = page.last().map(|p| p.number as i32);
        let owner = self.owner();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next_marker,
            max_parts: Some(max_parts as i32),
            is_truncated: Some(is_truncated),
            parts: Some(
                page.into_iter()
                    .map(|p| {
                        let f = checksums::fields(p.checksum.as_ref().filter(|_| upload_checksum.is_some()));
                        Part {
                            part_number: Some(p.number as i32),
                            size: Some(p.size as i64),
                            e_tag: Some(etag(&p.etag)),
                            last_modified: Some(timestamp(p.mod_time_ns)),
                            checksum_crc32: f.crc32,
                            checksum_crc32c: f.crc32c,
                            checksum_crc64nvme: f.crc64nvme,
                            checksum_sha1: f.sha1,
                            checksum_sha256: f.sha256,
                        }
                    })
                    .collect(),
            ),
            owner: Some(owner.clone()),
            initiator: Some(Initiator { display_name: owner.display_name, id: owner.id }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: upload_checksum.map(|(a, _)| s3s::dto::ChecksumAlgorithm::from(a.as_str().to_owned())),
            checksum_type: upload_checksum.map(|(_, t)| ChecksumType::from(t.as_str().to_owned())),
            ..Default::default()
        }))
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        let policy = bulwark_policy::Policy::parse_bucket(&input.policy, &input.bucket, bulwark_access::ACCOUNT_ID)
            .map_err(|e| S3Error::with_message(S3ErrorCode::MalformedPolicy, e.to_string()))?;
        let text = input.policy;
        self.store
            .update_bucket_config(&input.bucket, |record| {
                if record.public_access_block.is_some_and(|b| b.block_public_policy) && policy.is_public() {
                    return Err(bulwark_object::Error::Forbidden(
                        "public policies are blocked by the BlockPublicPolicy block public access setting".into(),
                    ));
                }
                record.policy = Some(text);
                Ok(())
            })
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(PutBucketPolicyOutput {}, http::StatusCode::NO_CONTENT))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let record = self.store.bucket_config(&req.input.bucket).map_err(to_s3)?;
        match record.policy {
            Some(policy) => Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) })),
            None => Err(s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist")),
        }
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.change_bucket(&req.input.bucket, |record| record.policy = None).await?;
        Ok(S3Response::with_status(DeleteBucketPolicyOutput {}, http::StatusCode::NO_CONTENT))
    }

    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let bucket = req.input.bucket;
        let record = self.store.bucket_config(&bucket).map_err(to_s3)?;
        let Some(text) = record.policy else {
            return Err(s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"));
        };
        let is_public = bulwark_policy::Policy::parse_bucket(&text, &bucket, bulwark_access::ACCOUNT_ID)
            .map(|p| p.is_public())
            .map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, format!("stored policy: {e}")))?;
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus { is_public: Some(is_public) }),
        }))
    }

    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let input = req.input;
        let c = input.public_access_block_configuration;
        let block = bulwark_object::PublicAccessBlock {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        };
        self.change_bucket(&input.bucket, |record| record.public_access_block = Some(block)).await?;
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    }

    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let record = self.store.bucket_config(&req.input.bucket).map_err(to_s3)?;
        let Some(b) = record.public_access_block else {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                "The public access block configuration was not found",
            );
            e.set_status_code(http::StatusCode::NOT_FOUND);
            return Err(e);
        };
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(b.block_public_acls),
                ignore_public_acls: Some(b.ignore_public_acls),
                block_public_policy: Some(b.block_public_policy),
                restrict_public_buckets: Some(b.restrict_public_buckets),
            }),
        }))
    }

    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.change_bucket(&req.input.bucket, |record| record.public_access_block = None).await?;
        Ok(S3Response::with_status(DeletePublicAccessBlockOutput {}, http::StatusCode::NO_CONTENT))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        self.change_bucket(&req.input.bucket, |record| record.default_encryption = None).await?;
        Ok(S3Response::with_status(DeleteBucketEncryptionOutput {}, http::StatusCode::NO_CONTENT))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags = tagging::from_tag_set(input.tagging.tag_set)?;
        let version_id = self
            .store
            .set_object_tags(&input.bucket, &input.key, input.version_id.as_deref(), tags)
            .await
            .map_err(to_s3)?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let (version_id, tags) =
            self.store.object_tags(&input.bucket, &input.key, input.version_id.as_deref()).await.map_err(to_s3)?;
        Ok(S3Response::new(GetObjectTaggingOutput { tag_set: tagging::to_tag_set(tags), version_id }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let version_id = self
            .store
            .set_object_tags(&input.bucket, &input.key, input.version_id.as_deref(), BTreeMap::new())
            .await
            .map_err(to_s3)?;
        Ok(S3Response::with_status(DeleteObjectTaggingOutput { version_id }, http::StatusCode::NO_CONTENT))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        if input.versioning_configuration.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(s3_error!(NotImplemented, "MFA delete is not supported"));
        }
        let state = match input.versioning_configuration.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
            Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            }
        };
        self.store.put_bucket_versioning(&input.bucket, state).await.map_err(to_s3)?;
        Ok(S3Response::new(PutBucketVersioningOutput {}))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let status = match self.store.bucket_versioning(&req.input.bucket).map_err(to_s3)? {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
        };
        Ok(S3Response::new(GetBucketVersioningOutput { status, mfa_delete: None }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let encode = encoder(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let page = self
            .store
            .list_object_versions(
                &input.bucket,
                VersionListParams {
                    prefix: prefix.clone(),
                    delimiter: input.delimiter.clone(),
                    key_marker: input.key_marker.clone(),
                    version_id_marker: input.version_id_marker.clone(),
                    max_keys: max_keys(input.max_keys)?,
                },
            )
            .await
            .map_err(to_s3)?;
        let owner = self.owner();
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        for v in page.versions {
            let version_id = Some(v.version_id.unwrap_or_else(|| "null".into()));
            if v.delete_marker {
                markers.push(DeleteMarkerEntry {
                    is_latest: Some(v.is_latest),
                    key: Some(encode(&v.key)),
                    last_modified: Some(timestamp(v.mod_time_ns)),
                    owner: Some(owner.clone()),
                    version_id,
                });
            } else {
                versions.push(ObjectVersion {
                    e_tag: Some(etag(&v.etag)),
                    is_latest: Some(v.is_latest),
                    key: Some(encode(&v.key)),
                    last_modified: Some(timestamp(v.mod_time_ns)),
                    owner: Some(owner.clone()),
                    size: Some(v.size as i64),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    version_id,
                    ..Default::default()
                });
            }
        }
        Ok(S3Response::new(ListObjectVersionsOutput {
            common_prefixes: Some(
                page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(encode(p)) }).collect(),
            ),
            delete_markers: Some(markers),
            delimiter: input.delimiter.as_deref().map(encode),
            encoding_type: input.encoding_type,
            is_truncated: Some(page.is_truncated),
            key_marker: Some(input.key_marker.as_deref().map(encode).unwrap_or_default()),
            max_keys: Some(input.max_keys.unwrap_or(1000)),
            name: Some(input.bucket),
            next_key_marker: if page.is_truncated { page.next_key_marker.as_deref().map(encode) } else { None },
            next_version_id_marker: if page.is_truncated { page.next_version_id_marker } else { None },
            prefix: Some(encode(&prefix)),
            version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
            versions: Some(versions),
            ..Default::default()
        }))
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        // One header may list several attributes, comma-separated.
        let wants =
            |name: &str| input.object_attributes.iter().any(|a| a.as_str().split(',').any(|part| part.trim() == name));
        let opts = GetOptions { version_id: input.version_id.clone(), ..Default::default() };
        let (info, _) = self.store.head_object(&input.bucket, &input.key, &opts).await.map_err(to_s3)?;
        let mut output = GetObjectAttributesOutput {
            last_modified: Some(timestamp(info.mod_time_ns)),
            version_id: info.version_id.clone(),
            ..Default::default()
        };
        if wants(ObjectAttributes::ETAG) {
            output.e_tag = Some(etag(&info.etag));
        }
        if wants(ObjectAttributes::OBJECT_SIZE) {
            output.object_size = Some(info.size as i64);
        }
        if wants(ObjectAttributes::STORAGE_CLASS) {
            output.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wants(ObjectAttributes::CHECKSUM)
            && let Some(c) = &info.checksum
        {
            // GetObjectAttributes reports a composite checksum without its `-N`.
            let mut c = c.clone();
            if let Some((value, _)) = c.value.split_once('-') {
                c.value = value.to_owned();
            }
            let f = checksums::fields(Some(&c));
            output.checksum = Some(Checksum {
                checksum_crc32: f.crc32,
                checksum_crc32c: f.crc32c,
                checksum_crc64nvme: f.crc64nvme,
                checksum_sha1: f.sha1,
                checksum_sha256: f.sha256,
                checksum_type: f.kind,
            });
        }
        if wants(ObjectAttributes::OBJECT_PARTS)
            && let Some(count) = info.parts_count
        {
            let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
            let max_parts = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
            let after: Vec<_> = info.parts.iter().filter(|p| p.number > marker).collect();
            let page: Vec<_> = after.iter().take(max_parts).collect();
            let algorithm = info.checksum.as_ref().map(|c| c.algorithm);
            output.object_parts = Some(GetObjectAttributesParts {
                is_truncated: Some(after.len() > max_parts),
                max_parts: Some(max_parts as i32),
                next_part_number_marker: page.last().map(|p| p.number as i32),
                part_number_marker: input.part_number_marker,
                total_parts_count: Some(count as i32),
                parts: Some(
                    page.iter()
                        .map(|p| {
                            let mut f = checksums::Fields::default();
                            if let (Some(a), Some(v)) = (algorithm, p.checksum.clone()) {
                                checksums::set_value(&mut f, a, v);
                            }
                            ObjectPart {
                                part_number: Some(p.number as i32),
                                size: Some(p.size as i64),
                                checksum_crc32: f.crc32,
                                checksum_crc32c: f.crc32c,
                                checksum_crc64nvme: f.crc64nvme,
                                checksum_sha1: f.sha1,
                                checksum_sha256: f.sha256,
                            }
                        })
                        .collect(),
                ),
            });
        }
        Ok(S3Response::new(output))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let encode = encoder(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let max_uploads = input.max_uploads.unwrap_or(1000).max(0) as usize;
        let page = self
            .store
            .list_multipart_uploads(
                &input.bucket,
                &prefix,
                input.delimiter.as_deref(),
                input.key_marker.as_deref().filter(|m| !m.is_empty()),
                input.upload_id_marker.as_deref().filter(|m| !m.is_empty()),
                max_uploads,
            )
            .await
            .map_err(to_s3)?;
        let owner = self.owner();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: Some(encode(&prefix)),
            delimiter: input.delimiter.as_deref().map(encode),
            key_marker: input.key_marker.as_deref().map(encode),
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max_uploads as i32),
            is_truncated: Some(page.is_truncated),
            next_key_marker: page.next_key_marker.as_deref().map(encode),
            next_upload_id_marker: page.next_upload_id_marker,
            common_prefixes: Some(
                page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(encode(p)) }).collect(),
            ),
            uploads: Some(
                page.uploads
                    .into_iter()
                    .map(|u| MultipartUpload {
                        key: Some(encode(&u.key)),
                        upload_id: Some(u.upload_id),
                        initiated: Some(timestamp(u.initiated_ns)),
                        owner: Some(owner.clone()),
                        initiator: Some(Initiator { display_name: owner.display_name.clone(), id: owner.id.clone() }),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        ..Default::default()
                    })
                    .collect(),
            ),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a/b c+d%é"), "a/b%20c%2Bd%25%C3%A9");
        assert_eq!(url_encode("A-z_0.9~"), "A-z_0.9~");
    }

    #[test]
    fn copy_ranges_must_be_closed() {
        assert_eq!(parse_copy_range("bytes=0-9").expect("valid"), RangeSpec::FromTo { first: 0, last: Some(9) });
        assert!(parse_copy_range("bytes=5-").is_err());
        assert!(parse_copy_range("bytes=9-0").is_err());
        assert!(parse_copy_range("0-9").is_err());
    }

    #[test]
    fn content_md5_must_be_sixteen_base64_bytes() {
        assert!(decode_content_md5(Some("1B2M2Y8AsgTpgAmY7PhCfg==")).expect("valid").is_some());
        for bad in ["not base64!", "AAAA"] {
            let e = decode_content_md5(Some(bad)).expect_err("invalid");
            assert_eq!(e.code(), &S3ErrorCode::InvalidDigest);
        }
    }
}
