//! A minimal HTTP/1.1 client for requests the SDK cannot make: fetching presigned
//! URLs, and sending unsigned or hand-made requests.
//!
//! Contract: one request per TCP connection (`Connection: close`), only `http://`
//! URLs with a numeric host, the whole response read into memory (with a bound).
//! Request bytes go out exactly as given, so what was signed is what is sent.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A response, whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy), for error bodies in assertions.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 XML error body.
    pub fn error_code(&self) -> Option<String> {
        let text = self.text();
        let start = text.find("<Code>")? + "<Code>".len();
        let end = text[start..].find("</Code>")? + start;
        Some(text[start..end].to_owned())
    }
}

/// Sends one request to an `http://host:port/path?query` URL.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    tokio::time::timeout(REQUEST_TIMEOUT, send_inner(method, url, headers, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {url} got no response within {REQUEST_TIMEOUT:?}"))
}

/// Sends a request head and `partial_body`, then shuts down the sending side of
/// the connection while the server still expects more (its `Content-Length` says
/// so): a client dying mid-upload. Returns the server's answer, if it gave one.
pub async fn send_then_hang_up(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    partial_body: &[u8],
) -> Option<Response> {
    let exchange = async {
        let (mut stream, head) = connect_and_write_head(method, url, headers, partial_body.len()).await;
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(partial_body).await.ok()?;
        stream.shutdown().await.ok()?;
        let raw = read_to_end(&mut stream, method, url).await;
        parse_response(&raw, method == "HEAD").ok()
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {url} neither answered nor closed within {REQUEST_TIMEOUT:?}"))
}

async fn connect_and_write_head(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body_len: usize,
) -> (TcpStream, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("only http:// URLs are supported: {url}"));
    let (authority, path_and_query) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let stream = TcpStream::connect(authority).await.unwrap_or_else(|e| panic!("connect to {authority}: {e}"));
    let mut head = format!("{method} {path_and_query} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let has_length = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
    if !has_length && (body_len > 0 || method == "PUT" || method == "POST") {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    (stream, head)
}

async fn read_to_end(stream: &mut TcpStream, method: &str, url: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
            // A server may reset after answering; keep what arrived.
            Err(_) => break,
        }
        assert!(raw.len() <= RESPONSE_BYTES_MAX, "response to {method} {url} is too large");
    }
    raw
}

async fn send_inner(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let (mut stream, head) = connect_and_write_head(method, url, headers, body.len()).await;
    stream.write_all(head.as_bytes()).await.expect("send the request head");
    // A server may answer (and close) before reading a body it refuses.
    let sent = stream.write_all(body).await.and(stream.flush().await);
    let raw = read_to_end(&mut stream, method, url).await;
    if raw.is_empty()
        && let Err(e) = sent
    {
        panic!("send the body of {method} {url}: {e}");
    }
    parse_response(&raw, method == "HEAD").unwrap_or_else(|reason| panic!("bad response to {method} {url}: {reason}"))
}

fn parse_response(raw: &[u8], head_only: bool) -> Result<Response, String> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let body = if head_only || status == 204 || status == 304 {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        if rest.len() < len {
            return Err(format!("body has {} of {len} bytes", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, headers, body })
}

fn decode_chunked(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("unterminated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".to_owned());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Percent-encodes an object key for a URL path (keeps `/`), as SigV4 expects.
pub fn encode_path(key: &str) -> String {
    encode(key, true)
}

/// Percent-encodes a query parameter value (everything but unreserved characters).
pub fn encode_query_value(value: &str) -> String {
    encode(value, false)
}

fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (and nothing else).
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(value) = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
