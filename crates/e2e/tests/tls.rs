//! An operator serves Bulwark over HTTPS with a certificate from
//! `bulwark cert self-signed`: the AWS SDK stores and reads objects over it,
//! a client offering both protocols gets HTTP/1.1 (as from Amazon S3), clients
//! that speak only HTTP/2 or only HTTP/1.1 are both served (HTTP/2 clients
//! may upload in large frames and well ahead of the server), plain HTTP gets
//! no answer, and SIGHUP swaps in a renewed certificate for new connections while
//! connections already open keep working (and a broken renewal changes nothing).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use bulwark_e2e::tls::{Protocol, TlsConnection, certificate_der};
use bulwark_e2e::{TestServer, create_bucket, get_bytes, payload, sign_by_hand, write_self_signed_certificate};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUCKET: &str = "tls";
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// The body of the broken key file; it must never show up in the log.
const BROKEN_KEY_TEXT: &str = "bulwarke2ebrokenkeymaterial";
const RELOAD_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Opens a connection to `server` as `localhost`, trusting the PEM files given.
async fn connect(server: &TestServer, trusted: &[&std::path::Path], protocol: Protocol) -> TlsConnection {
    TlsConnection::open(server.address(), "localhost", trusted, protocol)
        .await
        .unwrap_or_else(|e| panic!("open a {protocol:?} TLS connection: {e}"))
}

/// Sends a request signed with the root credentials on `connection`.
async fn send_signed(
    server: &TestServer,
    connection: &mut TlsConnection,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> bulwark_e2e::tls::TlsResponse {
    let hash = hex::encode(sha2::Sha256::digest(&body));
    let headers = sign_by_hand(server, method, path, &[], &hash);
    let mut with_host = vec![("host".to_owned(), server.host())];
    with_host.extend(headers);
    connection.send(method, path, &with_host, body).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// An unsigned `GET /metrics` (always 200) on `connection`, to show it still works.
async fn get_metrics(connection: &mut TlsConnection) -> u16 {
    connection.send("GET", "/metrics", &[], Vec::new()).await.unwrap_or_else(|e| panic!("GET /metrics: {e}")).status
}

/// Opens new connections trusting both certificates until one is served
/// `expected_der`; panics after [`RELOAD_TIMEOUT`] with what was served instead.
async fn wait_for_served_certificate(server: &TestServer, trusted: &[&std::path::Path], expected_der: &[u8]) {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    loop {
        let connection = connect(server, trusted, Protocol::Http1).await;
        if connection.peer_certificate() == expected_der {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate {RELOAD_TIMEOUT:?} after SIGHUP\n--- server log ---\n{}",
            server.log()
        );
        tokio::time::sleep(RELOAD_POLL_INTERVAL).await;
    }
}

/// Waits until the server log holds `count` lines containing `needle`.
async fn wait_for_log_lines(server: &TestServer, needle: &str, count: usize) {
    let deadline = Instant::now() + RELOAD_TIMEOUT;
    while server.log().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "the server did not log {needle:?} ({count} times) within {RELOAD_TIMEOUT:?}\n--- server log ---\n{}",
            server.log()
        );
        tokio::time::sleep(RELOAD_POLL_INTERVAL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_self_signed_writes_a_certificate_and_a_key_only_its_owner_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_self_signed_certificate(dir.path(), &["localhost", "127.0.0.1"]);

    let der = certificate_der(&dir.path().join("cert.pem"));
    assert!(!der.is_empty(), "cert.pem holds a certificate");
    let key = std::fs::read_to_string(dir.path().join("key.pem")).expect("read key.pem");
    assert!(key.contains("PRIVATE KEY-----"), "key.pem holds a PEM private key: {key:.40}");
    let mode = std::fs::metadata(dir.path().join("key.pem")).expect("stat key.pem").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key.pem mode is {mode:o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_stores_and_returns_an_object_for_the_sdk_over_https() {
    let server = TestServer::start_tls().await;
    assert!(server.endpoint().starts_with("https://localhost:"), "endpoint {}", server.endpoint());
    let client = server.client();
    create_bucket(&client, BUCKET).await;
    let body = payload(1, 300 * 1024);

    client
        .put_object()
        .bucket(BUCKET)
        .key("over-https")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("PUT over HTTPS");
    assert!(get_bytes(&client, BUCKET, "over-https").await == body, "the object read back over HTTPS differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_server_gives_plain_http_no_http_answer() {
    let server = TestServer::start_tls().await;
    let mut socket = tokio::net::TcpStream::connect(server.address()).await.expect("connect");
    socket
        .write_all(format!("GET /metrics HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n", server.host()).as_bytes())
        .await
        .expect("send a plain HTTP request");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP got an HTTP answer from the TLS port: {}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_only_h2_is_served_over_http2_and_one_offering_only_http1_over_http11() {
    let server = TestServer::start_tls().await;
    create_bucket(&server.client(), BUCKET).await;
    let cert = server.tls_cert_path();
    let body = payload(2, 200 * 1024);

    let mut h2 = connect(&server, &[&cert], Protocol::Http2).await;
    assert_eq!(h2.alpn(), Some(&b"h2"[..]), "ALPN chose h2");
    let put = send_signed(&server, &mut h2, "PUT", &format!("/{BUCKET}/h2"), body.clone()).await;
    assert_eq!((put.status, put.version), (200, http::Version::HTTP_2), "PUT over h2: {}", put.text());
    let get = send_signed(&server, &mut h2, "GET", &format!("/{BUCKET}/h2"), Vec::new()).await;
    assert_eq!((get.status, get.version), (200, http::Version::HTTP_2), "GET over h2: {}", get.text());
    assert!(get.body == body, "the object read back over HTTP/2 differs");

    let mut h1 = connect(&server, &[&cert], Protocol::Http1).await;
    assert_eq!(h1.alpn(), Some(&b"http/1.1"[..]), "ALPN chose http/1.1");
    let get = send_signed(&server, &mut h1, "GET", &format!("/{BUCKET}/h2"), Vec::new()).await;
    assert_eq!((get.status, get.version), (200, http::Version::HTTP_11), "GET over HTTP/1.1: {}", get.text());
    assert!(get.body == body, "the object read back over HTTP/1.1 differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_offering_h2_and_http1_is_given_http11_as_amazon_s3_does() {
    // The SDKs' hyper-rustls client offers h2 first. Over HTTP/1.1 they spread
    // concurrent requests over a pool of connections instead of multiplexing
    // them all on one.
    let server = TestServer::start_tls().await;
    let config = bulwark_e2e::tls::client_config(&[&server.tls_cert_path()], &[b"h2", b"http/1.1"]);
    let tcp = tokio::net::TcpStream::connect(server.address()).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
    let tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]), "ALPN chose http/1.1");
}

/// HTTP/2 frame types and SETTINGS parameters (RFC 9113 §6).
const H2_FRAME_SETTINGS: u8 = 0x4;
const H2_FRAME_WINDOW_UPDATE: u8 = 0x8;
const H2_FLAG_ACK: u8 = 0x1;
const H2_SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
const H2_SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
/// What a client starts with before the server says otherwise (RFC 9113 §6.5.2, §6.9.2).
const H2_DEFAULT_WINDOW: u32 = 65_535;
const H2_DEFAULT_FRAME_SIZE: u32 = 16_384;

/// Reads one HTTP/2 frame: (type, flags, stream id, payload).
async fn read_h2_frame(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> (u8, u8, u32, Vec<u8>) {
    let mut header = [0u8; 9];
    stream.read_exact(&mut header).await.expect("read an HTTP/2 frame header");
    let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let stream_id = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.expect("read an HTTP/2 frame payload");
    (header[3], header[4], stream_id, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_may_send_large_frames_and_two_mib_per_upload_ahead_of_the_server() {
    // A client uploading over HTTP/2 (the AWS SDKs for Rust and Go do, over
    // https) sends no more than the server's SETTINGS allow: with the protocol's
    // defaults, 16 KiB frames and 64 KiB windows, uploads crawl.
    let server = TestServer::start_tls().await;
    let config = bulwark_e2e::tls::client_config(&[&server.tls_cert_path()], &[b"h2"]);
    let tcp = tokio::net::TcpStream::connect(server.address()).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a server name");
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN chose h2");
    // The connection preface, then our (empty) SETTINGS.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.expect("send the preface");
    tls.flush().await.expect("flush the preface");

    let mut stream_window = H2_DEFAULT_WINDOW;
    let mut frame_size = H2_DEFAULT_FRAME_SIZE;
    let mut connection_window = u64::from(H2_DEFAULT_WINDOW);
    let mut settings_seen = false;
    let read_settings = async {
        // The server's SETTINGS come first; hyper then widens the connection
        // window with a WINDOW_UPDATE on stream 0.
        while !settings_seen || connection_window == u64::from(H2_DEFAULT_WINDOW) {
            let (kind, flags, stream_id, payload) = read_h2_frame(&mut tls).await;
            match kind {
                H2_FRAME_SETTINGS if flags & H2_FLAG_ACK == 0 => {
                    settings_seen = true;
                    for setting in payload.chunks_exact(6) {
                        let value = u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]);
                        match u16::from_be_bytes([setting[0], setting[1]]) {
                            H2_SETTINGS_INITIAL_WINDOW_SIZE => stream_window = value,
                            H2_SETTINGS_MAX_FRAME_SIZE => frame_size = value,
                            _ => {}
                        }
                    }
                }
                H2_FRAME_WINDOW_UPDATE if stream_id == 0 => {
                    let increment = u32::from_be_bytes(payload[..4].try_into().expect("4 bytes")) & 0x7fff_ffff;
                    connection_window += u64::from(increment);
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_settings)
        .await
        .expect("the server sent its SETTINGS and a connection WINDOW_UPDATE within 10 s");

    assert_eq!(frame_size, 256 * 1024, "SETTINGS_MAX_FRAME_SIZE: clients may send 256 KiB DATA frames");
    assert_eq!(stream_window, 2 * 1024 * 1024, "SETTINGS_INITIAL_WINDOW_SIZE: 2 MiB of each body ahead");
    assert_eq!(connection_window, 8 * 1024 * 1024, "connection window: 8 MiB of all bodies together");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_a_renewed_certificate_to_new_connections_while_open_ones_keep_working() {
    let server = TestServer::start_tls().await;
    create_bucket(&server.client(), BUCKET).await;
    let scratch = server.scratch_dir();
    let old_cert = scratch.join("old-cert.pem");
    std::fs::copy(server.tls_cert_path(), &old_cert).expect("keep a copy of the first certificate");
    let old_der = certificate_der(&old_cert);

    // Connections opened before the reload, one per protocol, each used once.
    let mut open_h1 = connect(&server, &[&old_cert], Protocol::Http1).await;
    let mut open_h2 = connect(&server, &[&old_cert], Protocol::Http2).await;
    assert_eq!(open_h1.peer_certificate(), old_der.as_slice(), "the first certificate is served");
    assert_eq!(get_metrics(&mut open_h1).await, 200);
    assert_eq!(get_metrics(&mut open_h2).await, 200);

    server.regenerate_certificate();
    let new_cert = server.tls_cert_path();
    let new_der = certificate_der(&new_cert);
    assert_ne!(new_der, old_der, "the regenerated certificate is a new one");
    server.signal_hangup();
    wait_for_log_lines(&server, "TLS certificate reloaded", 1).await;

    wait_for_served_certificate(&server, &[&old_cert, &new_cert], &new_der).await;
    let fresh = connect(&server, &[&new_cert], Protocol::Http2).await;
    assert_eq!(fresh.peer_certificate(), new_der.as_slice(), "a new connection gets the new certificate");
    // A new SDK client trusts only the new certificate (it reads cert.pem now).
    let client = server.client_without_retries();
    client.list_buckets().send().await.expect("ListBuckets with a client that trusts only the new certificate");

    for (name, connection) in [("HTTP/1.1", &mut open_h1), ("HTTP/2", &mut open_h2)] {
        assert_eq!(connection.peer_certificate(), old_der.as_slice(), "{name} connection's certificate");
        assert_eq!(get_metrics(connection).await, 200, "the {name} connection opened before the reload still works");
        let put = send_signed(&server, connection, "PUT", &format!("/{BUCKET}/after-reload"), b"kept".to_vec()).await;
        assert_eq!(put.status, 200, "a signed PUT on the {name} connection opened before the reload: {}", put.text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_key_keeps_serving_the_current_certificate() {
    let server = TestServer::start_tls().await;
    let cert = server.tls_cert_path();
    let served_der = certificate_der(&cert);

    std::fs::write(
        server.tls_key_path(),
        format!("-----BEGIN PRIVATE KEY-----\n{BROKEN_KEY_TEXT}\n-----END PRIVATE KEY-----\n"),
    )
    .expect("break key.pem");
    server.signal_hangup();
    wait_for_log_lines(&server, "TLS certificate reload failed", 1).await;

    let connection = connect(&server, &[&cert], Protocol::Http1).await;
    assert_eq!(connection.peer_certificate(), served_der.as_slice(), "the certificate served before the broken reload");
    server.client_without_retries().list_buckets().send().await.expect("ListBuckets after a failed reload");
    assert!(server.log().contains("TLS certificate reload failed"), "the failed reload is logged");
    assert!(!server.log().contains(BROKEN_KEY_TEXT), "the key file's contents are not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_administers_a_tls_only_server_when_it_trusts_its_certificate() {
    let server = TestServer::start_tls().await;
    let status = server.admin(&["status", "--json"]).await;
    assert!(status.success, "admin status over https with --ca-cert: {}", status.stderr);
    let parsed: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(parsed["drives"].as_array().map(Vec::len), Some(6), "six drives reported");
    let heal = server.admin(&["heal", "--wait"]).await;
    assert!(heal.success, "admin heal --wait over https: {}", heal.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_bucket_host_in_the_authority_addresses_the_bucket_not_the_metrics() {
    // HTTP/2 carries the host in `:authority`, with no Host header.
    let server = TestServer::start_tls_with_env(&[("BULWARK_DOMAINS", "s3.localhost")]).await;
    let cert = server.tls_cert_path();
    let mut service = connect(&server, &[&cert], Protocol::Http2).await;
    assert_eq!(get_metrics(&mut service).await, 200, "on the service's own host: the metrics");
    let mut bucket = TlsConnection::open(server.address(), "photos.s3.localhost", &[&cert], Protocol::Http2)
        .await
        .unwrap_or_else(|e| panic!("open an h2 connection to photos.s3.localhost: {e}"));
    let response = bucket.send("GET", "/metrics", &[], Vec::new()).await.expect("GET /metrics on a bucket host");
    assert_eq!(response.version, http::Version::HTTP_2);
    assert!(
        response.status == 403 && response.text().contains("<Code>AccessDenied</Code>"),
        "an anonymous GetObject of the key `metrics` in bucket `photos`: {} {}",
        response.status,
        response.text()
    );
}
