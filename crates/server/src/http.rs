//! The HTTP listener: HTTP/1.1 and HTTP/2 over TCP, with a thin guard in
//! front of the S3 service for checks `s3s` does not make.

use std::convert::Infallible;
use std::sync::Arc;

use bulwark_object::ObjectStore;

use bytes::Bytes;
use http::{Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::Body;
use s3s::service::S3Service;
use tokio::net::TcpListener;

/// A TLS client that has not finished its handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Longest validity of a presigned URL (SigV4: seven days).
const PRESIGNED_EXPIRES_SECS_MAX: u64 = 7 * 24 * 3600;

/// Largest KMS API request body (the largest legal request, a 128 KiB key
/// policy, fits many times).
const KMS_BODY_BYTES_MAX: usize = 1024 * 1024;

/// HTTP/2 DATA frames a client may send us (SETTINGS_MAX_FRAME_SIZE). The
/// protocol's default, 16 KiB, costs an uploading client a TLS write per 16 KiB
/// and us a frame per 16 KiB; 256 KiB frames cut both by 16.
const H2_FRAME_BYTES_MAX: u32 = 256 * 1024;
/// How much of one request body a client may send ahead of what we have read
/// (SETTINGS_INITIAL_WINDOW_SIZE), and of all bodies on one connection
/// together. hyper's 1 MiB for the whole connection throttles 16 concurrent
/// uploads multiplexed on one connection, which is how the AWS SDKs for Rust and
/// Go talk over https; the connection window also bounds what one connection
/// can make us buffer.
const H2_STREAM_WINDOW_BYTES: u32 = 2 * 1024 * 1024;
const H2_CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
const KMS_TARGET_PREFIX: &str = "TrentService.";
const KMS_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The AWS KMS JSON API, served on the S3 port before `s3s` sees the request.
pub struct KmsEndpoint {
    pub kms: Arc<bulwark_kms::Kms>,
    pub identities: Arc<bulwark_access::Identities>,
    pub region: String,
}

/// A secret that must be presented as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub struct MetricsToken(Arc<str>);

impl MetricsToken {
    pub fn new(token: String) -> MetricsToken {
        MetricsToken(token.into())
    }

    /// Whether the request's `Authorization` is `Bearer ` and this token
    /// (compared in constant time).
    fn admits(&self, request: &http::Request<Incoming>) -> bool {
        use subtle::ConstantTimeEq;
        let presented = request.headers().get(http::header::AUTHORIZATION).and_then(bearer).unwrap_or_default();
        bool::from(presented.ct_eq(self.0.as_bytes()))
    }
}

/// The credentials of an `Authorization: Bearer <credentials>` value (the
/// scheme is case-insensitive, RFC 9110 11.1); `None` for any other scheme.
fn bearer(value: &http::HeaderValue) -> Option<&[u8]> {
    let value = value.as_bytes();
    let (scheme, rest) = value.split_at_checked(6)?;
    (scheme.eq_ignore_ascii_case(b"bearer") && (rest.is_empty() || rest[0] == b' ')).then(|| rest.trim_ascii())
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// What is served on the S3 port beside S3.
pub struct Endpoints {
    /// The AWS KMS JSON API.
    pub kms: Option<Arc<KmsEndpoint>>,
    /// The token `GET /metrics` needs, if any.
    pub metrics_token: Option<MetricsToken>,
    /// Domains of virtual-hosted-style requests: `GET /metrics` on a
    /// bucket's host is that bucket's object, not the metrics.
    pub hosts: bulwark_s3::hosts::VirtualHosts,
}

pub async fn serve(
    listener: TcpListener,
    service: S3Service,
    store: Arc<ObjectStore>,
    endpoints: Endpoints,
    tls: Option<Arc<crate::tls::TlsReloader>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder
        .http2()
        .max_frame_size(H2_FRAME_BYTES_MAX)
        .initial_stream_window_size(H2_STREAM_WINDOW_BYTES)
        .initial_connection_window_size(H2_CONNECTION_WINDOW_BYTES);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = socket.set_nodelay(true);
        let secure = tls.is_some();
        let service = service.clone();
        let store = store.clone();
        let kms = endpoints.kms.clone();
        let metrics_token = endpoints.metrics_token.clone();
        let hosts = Arc::new(endpoints.hosts.clone());
        let handler = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            let service = service.clone();
            let store = store.clone();
            let kms = kms.clone();
            let metrics_token = metrics_token.clone();
            let hosts = hosts.clone();
            request.extensions_mut().insert(bulwark_s3::Transport { secure, peer: Some(peer) });
            async move {
                if let Some(kms) = kms.as_deref()
                    && let Some(operation) = kms_operation(&request)
                {
                    return Ok::<_, Infallible>(handle_kms(kms, operation, request).await);
                }
                Ok::<_, Infallible>(handle(&service, &store, metrics_token.as_ref(), &hosts, request).await)
            }
        });
        match &tls {
            None => {
                let connection = builder.serve_connection_with_upgrades(TokioIo::new(socket), handler);
                let connection = graceful.watch(connection.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(reloader) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(reloader.current());
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), handler);
                    if let Err(e) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    tracing::info!("shutting down: waiting for open requests");
    graceful.shutdown().await;
}

/// One S3 (or metrics) request under its [`bulwark_s3::RequestId`]: the id is
/// in the request's extensions, on every log line the request causes, and in
/// the response (`x-amz-request-id`, and an error's `<RequestId>`).
async fn handle(
    service: &S3Service,
    store: &ObjectStore,
    metrics_token: Option<&MetricsToken>,
    hosts: &bulwark_s3::hosts::VirtualHosts,
    mut request: http::Request<Incoming>,
) -> Response<Body> {
    use tracing::Instrument as _;
    let request_id = bulwark_s3::RequestId::new();
    request.extensions_mut().insert(request_id.clone());
    let span = tracing::info_span!("request", id = %request_id);
    let response = respond(service, store, metrics_token, hosts, request).instrument(span).await;
    with_request_id(response, &request_id).await
}

/// Largest error document completed with its request id (S3's are a few
/// hundred bytes; anything larger goes out as it is).
const ERROR_BODY_BYTES_MAX: u64 = 64 * 1024;

/// The response with `x-amz-request-id`, and an S3 error document completed
/// as S3 sends it: with its `<RequestId>`, and with a `<Message>` when the
/// protocol layer gave none.
async fn with_request_id(response: Response<Body>, request_id: &bulwark_s3::RequestId) -> Response<Body> {
    use http_body::Body as _;
    let (mut parts, body) = response.into_parts();
    if let Ok(value) = http::HeaderValue::from_str(request_id.as_str()) {
        parts.headers.insert("x-amz-request-id", value);
    }
    let is_xml = parts.headers.get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/xml");
    let small = body.size_hint().exact().is_some_and(|n| n > 0 && n <= ERROR_BODY_BYTES_MAX);
    if !(parts.status.is_client_error() || parts.status.is_server_error()) || !is_xml || !small {
        return Response::from_parts(parts, body);
    }
    let bytes = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::warn!(error = %e, "error document could not be read");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let completed = complete_error_document(&bytes, request_id.as_str()).map_or(bytes, Bytes::from);
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(completed.len()));
    Response::from_parts(parts, Body::from(completed))
}

/// `document` with `<Message>` (if missing, for codes S3 words) and
/// `<RequestId>` added before `</Error>`; `None` if it is not an S3 error
/// document or already has both.
fn complete_error_document(document: &[u8], request_id: &str) -> Option<String> {
    let text = std::str::from_utf8(document).ok()?;
    let end = text.trim_end().strip_suffix("</Error>")?;
    let code = text.split_once("<Code>")?.1.split_once("</Code>")?.0;
    let mut added = String::new();
    if !text.contains("<Message>")
        && let Some(message) = default_error_message(code)
    {
        added.push_str(&format!("<Message>{message}</Message>"));
    }
    if !text.contains("<RequestId>") {
        added.push_str(&format!("<RequestId>{request_id}</RequestId>"));
    }
    (!added.is_empty()).then(|| format!("{end}{added}</Error>"))
}

/// S3's words for the errors the protocol layer raises without a message
/// (a request it could not route or parse).
fn default_error_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidBucketName" => "The specified bucket is not valid.",
        "KeyTooLongError" => "Your key is too long.",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "IncompleteBody" => "You did not provide the number of bytes specified by the Content-Length HTTP header.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "MalformedXML" => "The XML you provided was not well-formed or did not validate against our published schema.",
        _ => return None,
    })
}

async fn respond(
    service: &S3Service,
    store: &ObjectStore,
    metrics_token: Option<&MetricsToken>,
    hosts: &bulwark_s3::hosts::VirtualHosts,
    request: http::Request<Incoming>,
) -> Response<Body> {
    // The scrub slows down while clients are served.
    let _foreground = store.foreground_request();
    let on_bucket_host = |request: &http::Request<Incoming>| {
        hosts.bucket_of_headers(request.headers()).is_some()
            || request.uri().authority().is_some_and(|authority| hosts.bucket_of_host(authority.as_str()).is_some())
    };
    if is_metrics_request(&request) && !on_bucket_host(&request) {
        if metrics_token.is_some_and(|token| !token.admits(&request)) {
            let mut response = Response::new(Body::from("a bearer token is needed for /metrics\n".to_owned()));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer realm=\"metrics\""));
            return response;
        }
        let mut response = Response::new(Body::from(crate::metrics::render(store)));
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
        return response;
    }
    if let Some(response) = precheck(&request) {
        return response;
    }
    let request = match verify_small_body(request).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    match service.call(request).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = ?e, "request failed outside the S3 layer");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "We encountered an internal error.")
        }
    }
}

/// The KMS operation of a `POST` with `X-Amz-Target: TrentService.<Op>`.
fn kms_operation(request: &http::Request<Incoming>) -> Option<String> {
    if request.method() != http::Method::POST {
        return None;
    }
    let target = request.headers().get("x-amz-target")?.to_str().ok()?;
    target.strip_prefix(KMS_TARGET_PREFIX).map(str::to_owned)
}

/// One KMS API request: SigV4 for the `kms` service, then the KMS. Refused
/// requests are audited too, under the access key they claimed.
async fn handle_kms(endpoint: &KmsEndpoint, operation: String, request: http::Request<Incoming>) -> Response<Body> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, incoming) = request.into_parts();
    let limited = http_body_util::Limited::new(incoming, KMS_BODY_BYTES_MAX);
    let body = match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            let message = format!("The request body is larger than {KMS_BODY_BYTES_MAX} bytes or could not be read.");
            let body = kms_error_body("ValidationException", &message);
            return kms_response(400, body, &request_id);
        }
    };
    let identities = &endpoint.identities;
    let verified = crate::sigv4::verify(&parts, &body, &endpoint.region, "kms", std::time::SystemTime::now(), |key| {
        identities.secret_for(key)
    });
    match verified {
        Ok(caller) => {
            let (status, answer) = endpoint.kms.handle_api(&operation, &body, &caller, &request_id).await;
            kms_response(status, answer, &request_id)
        }
        Err(refused) => {
            tracing::warn!(operation = %operation, error = refused.name, access_key = ?refused.access_key, "KMS request not authenticated");
            let who = refused.access_key.as_deref().unwrap_or("-");
            endpoint.kms.audit_rejected(&operation, who, refused.name, &request_id).await;
            kms_response(400, kms_error_body(refused.name, &refused.message), &request_id)
        }
    }
}

fn kms_error_body(name: &str, message: &str) -> Vec<u8> {
    let value = serde_json::json!({ "__type": name, "message": message });
    serde_json::to_vec(&value).unwrap_or_default()
}

fn kms_response(status: u16, body: Vec<u8>, request_id: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(KMS_CONTENT_TYPE));
    if let Ok(value) = http::HeaderValue::from_str(request_id) {
        headers.insert("x-amz-request-id", value.clone());
        headers.insert("x-amzn-requestid", value);
    }
    response
}

/// An unsigned `GET /metrics` (no `Authorization`, or a `Bearer` one) is the
/// Prometheus endpoint; a signed one is an S3 request for a bucket named
/// `metrics` and goes to the S3 layer.
fn is_metrics_request(request: &http::Request<Incoming>) -> bool {
    let signed = request.headers().get(http::header::AUTHORIZATION).is_some_and(|value| bearer(value).is_none());
    request.method() == http::Method::GET
        && request.uri().path() == "/metrics"
        && !signed
        && !request.uri().query().unwrap_or_default().contains("X-Amz-Signature")
}

/// Checks made before the S3 layer: refuses presigned URLs valid for more
/// than seven days, as S3 does.
fn precheck(request: &http::Request<Incoming>) -> Option<Response<Body>> {
    // Browser form uploads (POST Object) are not served. s3s would read the
    // whole form, file included, into memory before any access check.
    let is_form = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if request.method() == http::Method::POST && is_form {
        return Some(error_response(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "POST Object (browser form uploads) is not implemented; use PUT or a presigned PUT URL.",
        ));
    }
    // Signature Version 2 signs neither the date window nor most of the query
    // and compares in variable time; like S3 in every region opened since
    // 2014, only Signature Version 4 is accepted.
    let sigv2_header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS "));
    let query = request.uri().query().unwrap_or_default();
    let sigv2_query = query.split('&').any(|p| p.starts_with("AWSAccessKeyId=") || p.starts_with("Signature="));
    if sigv2_header || sigv2_query {
        return Some(error_response(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
        ));
    }
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("X-Amz-Expires=") {
            let valid = value.parse::<u64>().is_ok_and(|v| v <= PRESIGNED_EXPIRES_SECS_MAX);
            if !valid {
                return Some(error_response(
                    StatusCode::BAD_REQUEST,
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800",
                ));
            }
        }
    }
    // The host is what names the bucket of a virtual-hosted request: a
    // signature that does not cover it could be sent on to another bucket.
    // S3 requires it signed, and so does this server.
    if let Some(signed) = signed_headers(request)
        && !signed.split(';').any(|name| name.eq_ignore_ascii_case("host"))
    {
        let (code, what) = if query.contains("X-Amz-SignedHeaders=") {
            ("AuthorizationQueryParametersError", "X-Amz-SignedHeaders")
        } else {
            ("AuthorizationHeaderMalformed", "SignedHeaders")
        };
        return Some(error_response(StatusCode::BAD_REQUEST, code, &format!("{what} must include host.")));
    }
    None
}

/// The SigV4 signed header names of a request (`a;b;c`), from its
/// Authorization header or its presigned query; `None` if it has neither.
fn signed_headers(request: &http::Request<Incoming>) -> Option<String> {
    if let Some(value) = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && value.starts_with("AWS4-HMAC-SHA256")
    {
        let list = value.split_once("SignedHeaders=")?.1;
        return Some(list.split(',').next().unwrap_or_default().trim().to_owned());
    }
    let query = request.uri().query()?;
    let value = query.split('&').find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))?;
    Some(percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned())
}

/// Largest configuration or command body (DeleteObjects, bucket settings)
/// that is buffered to verify its digest.
const CONTENT_MD5: &str = "content-md5";

const SMALL_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// How many such bodies are buffered at once, before any signature is
/// checked: with [`SMALL_BODY_BYTES_MAX`], at most 128 MiB held for requests
/// not yet authenticated; the others wait (their bytes stay in the socket).
const SMALL_BODIES_BUFFERED_MAX: usize = 16;
static SMALL_BODIES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(SMALL_BODIES_BUFFERED_MAX);

/// Query parameters that make a PUT a configuration document (bucket or
/// object sub-resources), never object data.
const DOCUMENT_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "policy",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "retention",
    "tagging",
    "versioning",
    "website",
];

/// Whether a request carries a small XML/JSON document rather than object
/// data: DeleteObjects and CompleteMultipartUpload, and PUTs of a named
/// sub-resource. Object data (PutObject, UploadPart, browser POST uploads)
/// is never buffered here; the object layer verifies it while it streams.
fn carries_document(method: &http::Method, query: &str) -> bool {
    let has = |name: &str| query.split('&').any(|p| p == name || p.starts_with(&format!("{name}=")));
    match *method {
        http::Method::POST => has("delete") || has("uploadId"),
        http::Method::PUT => DOCUMENT_SUBRESOURCES.iter().any(|name| has(name)),
        _ => false,
    }
}

/// Verifies `Content-MD5` and `x-amz-checksum-*` of document bodies (D4):
/// a mismatch is 400 BadDigest, a malformed value 400 InvalidDigest, and the
/// request goes no further, so nothing is changed.
/// Request bytes read and thrown away after an answer that did not need the
/// rest of the body (a refusal, an early error), and how long to keep doing so.
const LINGER_BYTES_MAX: usize = 16 << 20;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// A request body that, when dropped before its end (the answer did not need
/// the rest, e.g. a refused signature), keeps reading and discarding what the
/// client still sends, up to `LINGER_BYTES_MAX` and `LINGER_TIME`: without
/// it the connection is closed under a client still writing its body, which
/// then sees a reset instead of the S3 error ("lingering close", as web
/// servers do).
struct LingeringBody(Option<Incoming>);

impl http_body::Body for LingeringBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        match self.0.as_mut() {
            Some(incoming) => std::pin::Pin::new(incoming).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.as_ref().map(http_body::Body::size_hint).unwrap_or_else(|| http_body::SizeHint::with_exact(0))
    }
}

impl Drop for LingeringBody {
    fn drop(&mut self) {
        let Some(mut incoming) = self.0.take() else { return };
        if http_body::Body::is_end_stream(&incoming) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let mut discarded = 0usize;
            let deadline = tokio::time::Instant::now() + LINGER_TIME;
            while discarded <= LINGER_BYTES_MAX {
                match tokio::time::timeout_at(deadline, http_body_util::BodyExt::frame(&mut incoming)).await {
                    Ok(Some(Ok(frame))) => discarded += frame.data_ref().map_or(0, Bytes::len),
                    _ => break,
                }
            }
        });
    }
}

async fn verify_small_body(request: http::Request<Incoming>) -> Result<http::Request<Body>, Response<Body>> {
    let wants_md5 = request.headers().contains_key(CONTENT_MD5);
    let checksum_header = bulwark_object::ChecksumAlgorithm::ALL
        .into_iter()
        .find_map(|a| request.headers().get(format!("x-amz-checksum-{}", a.header_suffix())).map(|v| (a, v.clone())));
    // On CompleteMultipartUpload an x-amz-checksum-* header is the whole
    // object's checksum (checked by the object layer), not the XML body's.
    let completes_upload = request.method() == http::Method::POST
        && request.uri().query().unwrap_or_default().split('&').any(|p| p.starts_with("uploadId="));
    let checksum_header = if completes_upload { None } else { checksum_header };
    if !carries_document(request.method(), request.uri().query().unwrap_or_default())
        || (!wants_md5 && checksum_header.is_none())
    {
        return Ok(request.map(|incoming| Body::http_body(LingeringBody(Some(incoming)))));
    }
    let (parts, incoming) = request.into_parts();
    let Ok(_permit) = SMALL_BODIES.acquire().await else {
        return Err(error_response(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "Please reduce your request rate."));
    };
    let limited = http_body_util::Limited::new(incoming, SMALL_BODY_BYTES_MAX);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "MaxMessageLengthExceeded",
                "Your request was too big.",
            ));
        }
    };
    if let Some(value) = parts.headers.get(CONTENT_MD5) {
        use base64::Engine;
        let expected = value
            .to_str()
            .ok()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.trim()).ok())
            .filter(|d| d.len() == 16);
        let Some(expected) = expected else {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "InvalidDigest",
                "The Content-MD5 you specified is not valid.",
            ));
        };
        if bulwark_crypto::Md5::digest(&bytes).as_slice() != expected.as_slice() {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    if let Some((algorithm, value)) = checksum_header {
        let expected = value.to_str().ok().and_then(|v| bulwark_object::checksum::decode(algorithm, v));
        let Some(expected) = expected else {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!("Value for x-amz-checksum-{} header is invalid.", algorithm.header_suffix()),
            ));
        };
        let mut hasher = bulwark_object::checksum::Hasher::new(algorithm);
        hasher.update(&bytes);
        if hasher.finalize() != expected {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "BadDigest",
                &format!("The {} you specified did not match the calculated checksum.", algorithm.as_str()),
            ));
        }
    }
    Ok(http::Request::from_parts(parts, Body::from(bytes)))
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = Response::new(Body::from(xml));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_get_their_request_id_and_a_message_where_s3_words_one() {
        let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
        let bare = format!("{head}<Error><Code>InvalidBucketName</Code></Error>");
        assert_eq!(
            complete_error_document(bare.as_bytes(), "0123456789ABCDEF").as_deref(),
            Some(
                format!(
                    "{head}<Error><Code>InvalidBucketName</Code><Message>The specified bucket is not valid.</Message>\
                     <RequestId>0123456789ABCDEF</RequestId></Error>"
                )
                .as_str()
            )
        );
        // A message of its own is kept; only the id is added, before the end
        // even when the document ends with a newline.
        let worded = format!("{head}\n<Error><Code>NoSuchKey</Code><Message>The key.</Message></Error>\n");
        assert_eq!(
            complete_error_document(worded.as_bytes(), "X").as_deref(),
            Some(
                format!(
                    "{head}\n<Error><Code>NoSuchKey</Code><Message>The key.</Message><RequestId>X</RequestId></Error>"
                )
                .as_str()
            )
        );
        // A code S3 has no fixed words for gets no invented message.
        let unknown = "<Error><Code>SomethingElse</Code></Error>";
        assert_eq!(
            complete_error_document(unknown.as_bytes(), "X").as_deref(),
            Some("<Error><Code>SomethingElse</Code><RequestId>X</RequestId></Error>")
        );
        // Complete documents, and anything that is not an S3 error, stay as they are.
        let complete = "<Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>Y</RequestId></Error>";
        assert_eq!(complete_error_document(complete.as_bytes(), "X"), None);
        assert_eq!(complete_error_document(b"<ListBucketResult></ListBucketResult>", "X"), None);
        assert_eq!(complete_error_document(&[0xff, 0xfe], "X"), None);
    }

    #[test]
    fn only_documents_are_buffered_never_object_data() {
        let documents =
            ["PUT /b?versioning", "PUT /b?encryption=", "PUT /b/k?tagging", "POST /b?delete", "POST /b/k?uploadId=x"];
        let data =
            ["PUT /b/k", "PUT /b/k?x-id=PutObject", "PUT /b/k?partNumber=1&uploadId=x", "POST /b", "POST /b/k?uploads"];
        for (line, expected) in documents.iter().map(|l| (l, true)).chain(data.iter().map(|l| (l, false))) {
            let (method, uri) = line.split_once(' ').expect("method and uri");
            let method: http::Method = method.parse().expect("method");
            let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
            assert_eq!(carries_document(&method, query), expected, "{line}");
        }
    }
}
