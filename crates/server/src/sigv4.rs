//! SigV4 verification (header form) for the KMS JSON API, which `s3s` does
//! not serve (it refuses the service name `kms`).
//!
//! Nothing about the canonical request is rebuilt by hand: the request's
//! method, path, query and exactly the headers it lists in `SignedHeaders`
//! are signed again with `aws-sigv4` — the signer the AWS SDKs use — at the
//! request's own `X-Amz-Date` with the caller's secret, and the two
//! signatures are compared in constant time. The payload hash is always the
//! hash of the body received; an `x-amz-content-sha256` header, if sent,
//! must agree with it.
//!
//! Errors carry AWS's exception names: `MissingAuthenticationTokenException`,
//! `IncompleteSignatureException`, `UnrecognizedClientException`,
//! `InvalidSignatureException` (also for a scope or clock skew mismatch).

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bulwark_access::Caller;
use subtle::ConstantTimeEq;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the request's time may be from ours (AWS: 15 minutes).
pub const CLOCK_SKEW_MAX: Duration = Duration::from_secs(15 * 60);
const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub name: &'static str,
    pub message: String,
    /// The access key the request claimed, for the audit log.
    pub access_key: Option<String>,
}

impl AuthError {
    fn new(name: &'static str, message: impl Into<String>) -> AuthError {
        AuthError { name, message: message.into(), access_key: None }
    }

    fn incomplete(message: impl Into<String>) -> AuthError {
        AuthError::new("IncompleteSignatureException", message)
    }

    fn invalid(message: impl Into<String>) -> AuthError {
        AuthError::new("InvalidSignatureException", message)
    }

    fn mismatch() -> AuthError {
        AuthError::invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
             Access Key and signing method. Consult the service documentation for details.",
        )
    }
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, PartialEq, Eq)]
struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let malformed = || {
        AuthError::incomplete(format!(
            "Authorization header is malformed: expected {ALGORITHM} Credential=…, SignedHeaders=…, Signature=…"
        ))
    };
    let rest = value.strip_prefix(ALGORITHM).ok_or_else(malformed)?;
    if !rest.starts_with(' ') {
        return Err(malformed());
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (name, value) = part.trim().split_once('=').ok_or_else(malformed)?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(malformed()),
        };
        if slot.replace(value).is_some() {
            return Err(malformed());
        }
    }
    let (credential, signed_headers, signature) =
        (credential.ok_or_else(malformed)?, signed_headers.ok_or_else(malformed)?, signature.ok_or_else(malformed)?);
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err(AuthError::incomplete(format!(
            "Credential '{credential}' is not of the form access-key/date/region/service/aws4_request"
        )));
    };
    if terminator != "aws4_request" || access_key.is_empty() || signed_headers.is_empty() || signature.is_empty() {
        return Err(malformed());
    }
    Ok(Authorization { access_key, date, region, service, signed_headers, signature })
}

fn header<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the request's time against `now` (±[`CLOCK_SKEW_MAX`]).
fn check_time(amz_date: &str, now: SystemTime) -> Result<SystemTime, AuthError> {
    let parsed = time::PrimitiveDateTime::parse(amz_date, DATE_FORMAT)
        .map_err(|_| AuthError::incomplete(format!("X-Amz-Date '{amz_date}' is not of the form YYYYMMDD'T'HHMMSS'Z'")))?
        .assume_utc();
    let signed_at: SystemTime = parsed.into();
    let format = |t: SystemTime| time::OffsetDateTime::from(t).format(DATE_FORMAT).unwrap_or_default();
    if signed_at + CLOCK_SKEW_MAX < now {
        return Err(AuthError::invalid(format!(
            "Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)",
            format(now - CLOCK_SKEW_MAX),
            format(now)
        )));
    }
    if signed_at > now + CLOCK_SKEW_MAX {
        return Err(AuthError::invalid(format!(
            "Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)",
            format(now + CLOCK_SKEW_MAX),
            format(now)
        )));
    }
    Ok(signed_at)
}

/// Verifies a SigV4-signed request for `service` in `region`; `lookup`
/// gives the secret and caller of an access key. Returns the caller.
pub fn verify(
    parts: &http::request::Parts,
    body: &[u8],
    region: &str,
    service: &str,
    now: SystemTime,
    lookup: impl FnOnce(&str) -> Option<(String, Caller)>,
) -> Result<Caller, AuthError> {
    let Some(authorization) = header(parts, "authorization") else {
        return Err(AuthError::new("MissingAuthenticationTokenException", "Missing Authentication Token"));
    };
    let auth = parse_authorization(authorization)?;
    let claimed = |mut e: AuthError| {
        e.access_key = Some(auth.access_key.to_owned());
        e
    };
    let amz_date = header(parts, "x-amz-date").ok_or_else(|| {
        claimed(AuthError::incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ))
    })?;
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(claimed(AuthError::invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            amz_date.get(..8).unwrap_or(amz_date)
        ))));
    }
    if auth.service != service {
        return Err(claimed(AuthError::invalid(format!(
            "Credential should be scoped to correct service: '{service}'. "
        ))));
    }
    if auth.region != region {
        return Err(claimed(AuthError::invalid(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            auth.region
        ))));
    }
    let signed_at = check_time(amz_date, now).map_err(claimed)?;
    let names: Vec<&str> = auth.signed_headers.split(';').collect();
    // The operation travels in X-Amz-Target: unsigned, a captured DescribeKey
    // could be replayed as DisableKey or ScheduleKeyDeletion with the same body.
    if !names.contains(&"host") || !names.contains(&"x-amz-date") || !names.contains(&"x-amz-target") {
        return Err(claimed(AuthError::incomplete("SignedHeaders must include host, x-amz-date and x-amz-target")));
    }
    if header(parts, "x-amz-security-token").is_some() {
        return Err(claimed(AuthError::new(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )));
    }
    let payload_hash = hex::encode(bulwark_crypto::sha256(body));
    if let Some(declared) = header(parts, "x-amz-content-sha256")
        && declared != payload_hash
    {
        return Err(claimed(AuthError::invalid(
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )));
    }
    let (secret, caller) = lookup(auth.access_key).ok_or_else(|| {
        claimed(AuthError::new("UnrecognizedClientException", "The security token included in the request is invalid."))
    })?;
    let expected =
        expected_signature(parts, &auth, &names, payload_hash, &secret, region, service, signed_at).map_err(claimed)?;
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(caller)
    } else {
        Err(claimed(AuthError::mismatch()))
    }
}

/// Signs the request again, as the client should have, and returns the
/// signature. The signed header list that results must be the client's.
#[allow(clippy::too_many_arguments)]
fn expected_signature(
    parts: &http::request::Parts,
    auth: &Authorization<'_>,
    names: &[&str],
    payload_hash: String,
    secret: &str,
    region: &str,
    service: &str,
    signed_at: SystemTime,
) -> Result<String, AuthError> {
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
    let mut headers: Vec<(&str, String)> = Vec::with_capacity(names.len());
    for name in names {
        let values: Vec<&str> = parts
            .headers
            .get_all(*name)
            .iter()
            .map(|v| v.to_str().map_err(|_| AuthError::mismatch()))
            .collect::<Result<_, _>>()?;
        if values.is_empty() {
            // HTTP/2 carries the host as the :authority pseudo-header.
            match (*name, &authority) {
                ("host", Some(authority)) => headers.push(("host", authority.clone())),
                _ => return Err(AuthError::mismatch()),
            }
        }
        headers.extend(values.into_iter().map(|v| (*name, v.to_owned())));
    }
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let identity = Credentials::new(auth.access_key, secret, None, None, "bulwark-kms").into();
    let mut settings = SigningSettings::default();
    // Exactly the client's list is passed in, so exclude nothing from it.
    settings.excluded_headers = None;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(signed_at)
        .settings(settings)
        .build()
        .map_err(|_| AuthError::mismatch())?
        .into();
    let signable = SignableRequest::new(
        parts.method.as_str(),
        path_and_query,
        headers.iter().map(|(n, v)| (*n, v.as_str())),
        SignableBody::Precomputed(payload_hash),
    )
    .map_err(|_| AuthError::mismatch())?;
    let (instructions, signature) = sign(signable, &params).map_err(|_| AuthError::mismatch())?.into_parts();
    let ours = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.split("SignedHeaders=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default()
        .to_owned();
    if ours != auth.signed_headers {
        return Err(AuthError::incomplete(format!(
            "SignedHeaders '{}' must be sorted, lowercase and name each header once",
            auth.signed_headers
        )));
    }
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCESS: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const REGION: &str = "us-east-1";

    /// A KMS request signed by aws-sigv4 as an SDK would sign it, at `at`.
    fn signed(body: &[u8], service: &str, secret: &str, at: SystemTime) -> http::request::Parts {
        signed_with(body, service, secret, at, SigningSettings::default())
    }

    fn signed_with(
        body: &[u8],
        service: &str,
        secret: &str,
        at: SystemTime,
        settings: SigningSettings,
    ) -> http::request::Parts {
        let uri = "http://127.0.0.1:9000/";
        let base = [
            ("host", "127.0.0.1:9000"),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", "TrentService.Encrypt"),
        ];
        let identity = Credentials::new(ACCESS, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(service)
            .time(at)
            .settings(settings)
            .build()
            .expect("params")
            .into();
        let signable = SignableRequest::new("POST", uri, base.iter().copied(), SignableBody::Bytes(body)).expect("req");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        let mut builder = http::Request::builder().method("POST").uri("/");
        for (name, value) in base.iter().copied().chain(instructions.headers()) {
            builder = builder.header(name, value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    fn lookup(key: &str) -> Option<(String, Caller)> {
        (key == ACCESS).then(|| (SECRET.to_owned(), Caller::Root))
    }

    fn check(parts: &http::request::Parts, body: &[u8], now: SystemTime) -> Result<Caller, &'static str> {
        verify(parts, body, REGION, "kms", now, lookup).map_err(|e| e.name)
    }

    #[test]
    fn a_request_signed_by_aws_sigv4_verifies_and_tampered_ones_do_not() {
        let now = SystemTime::now();
        let body = br#"{"KeyId":"alias/a","Plaintext":"aGk="}"#;
        let parts = signed(body, "kms", SECRET, now);
        assert_eq!(check(&parts, body, now), Ok(Caller::Root));

        // Another body, another signed header value, another method or path.
        assert_eq!(check(&parts, br#"{"KeyId":"alias/b","Plaintext":"aGk="}"#, now), Err("InvalidSignatureException"));
        let mut target = parts.clone();
        target.headers.insert("x-amz-target", "TrentService.Decrypt".parse().expect("value"));
        assert_eq!(check(&target, body, now), Err("InvalidSignatureException"));
        let mut method = parts.clone();
        method.method = http::Method::PUT;
        assert_eq!(check(&method, body, now), Err("InvalidSignatureException"));
        let mut path = parts.clone();
        path.uri = "/other".parse().expect("uri");
        assert_eq!(check(&path, body, now), Err("InvalidSignatureException"));
        // An unsigned header may be added (proxies do), a signed one not removed.
        let mut extra = parts.clone();
        extra.headers.insert("user-agent", "curl".parse().expect("value"));
        assert_eq!(check(&extra, body, now), Ok(Caller::Root));
        let mut removed = parts.clone();
        removed.headers.remove("content-type");
        assert_eq!(check(&removed, body, now), Err("InvalidSignatureException"));
        // A declared payload hash must match the body.
        let mut declared = parts.clone();
        declared.headers.insert("x-amz-content-sha256", hex::encode([0u8; 32]).parse().expect("value"));
        assert_eq!(check(&declared, body, now), Err("InvalidSignatureException"));
    }

    #[test]
    fn a_request_that_leaves_the_operation_unsigned_is_refused() {
        let now = SystemTime::now();
        let body = br#"{"KeyId":"alias/a"}"#;
        let mut settings = SigningSettings::default();
        settings.excluded_headers = Some(vec!["x-amz-target".into()]);
        let parts = signed_with(body, "kms", SECRET, now, settings);
        let signed_headers = parts.headers["authorization"].to_str().expect("ascii").to_owned();
        assert!(!signed_headers.contains("x-amz-target"), "{signed_headers}");
        // Else a captured DescribeKey could be replayed as DisableKey.
        assert_eq!(check(&parts, body, now), Err("IncompleteSignatureException"));
    }

    #[test]
    fn wrong_secrets_keys_scopes_and_times_are_refused_with_aws_names() {
        let now = SystemTime::now();
        let body = b"{}";
        assert_eq!(check(&signed(body, "kms", "not-the-secret", now), body, now), Err("InvalidSignatureException"));
        assert_eq!(check(&signed(body, "s3", SECRET, now), body, now), Err("InvalidSignatureException"));
        let parts = signed(body, "kms", SECRET, now);
        let unknown = verify(&parts, body, REGION, "kms", now, |_| None).expect_err("unknown key");
        assert_eq!((unknown.name, unknown.access_key.as_deref()), ("UnrecognizedClientException", Some(ACCESS)));
        let other_region = verify(&parts, body, "eu-west-1", "kms", now, lookup).expect_err("region");
        assert_eq!(other_region.name, "InvalidSignatureException");
        let late = now + CLOCK_SKEW_MAX + Duration::from_secs(60);
        let expired = verify(&parts, body, REGION, "kms", late, lookup).expect_err("expired");
        assert!(expired.message.starts_with("Signature expired"), "{}", expired.message);
        let early = now - CLOCK_SKEW_MAX - Duration::from_secs(60);
        assert_eq!(check(&parts, body, early), Err("InvalidSignatureException"));
        assert_eq!(check(&parts, body, now + Duration::from_secs(14 * 60)), Ok(Caller::Root));

        let mut missing = parts.clone();
        missing.headers.remove("authorization");
        assert_eq!(check(&missing, body, now), Err("MissingAuthenticationTokenException"));
        let mut garbled = parts.clone();
        garbled.headers.insert("authorization", "AWS4-HMAC-SHA256 Credential=x".parse().expect("value"));
        assert_eq!(check(&garbled, body, now), Err("IncompleteSignatureException"));
        let mut undated = parts;
        undated.headers.remove("x-amz-date");
        assert_eq!(check(&undated, body, now), Err("IncompleteSignatureException"));
    }

    #[test]
    fn authorization_headers_parse_into_their_parts() {
        let parsed = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab12",
        )
        .expect("parse");
        assert_eq!(
            parsed,
            Authorization {
                access_key: "AK",
                date: "20260101",
                region: "us-east-1",
                service: "kms",
                signed_headers: "host;x-amz-date",
                signature: "ab12"
            }
        );
        for bad in
            ["AWS4-HMAC-SHA256", "Basic abc", "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=h, Signature=s"]
        {
            assert!(parse_authorization(bad).is_err(), "{bad}");
        }
    }
}
