//! The HTTP listener: HTTP/1.1 and HTTP/2 over TCP, with a thin guard in
//! front of the S3 service for checks `s3s` does not make.

use std::convert::Infallible;

use http::{Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::Body;
use s3s::service::S3Service;
use tokio::net::TcpListener;

/// Longest validity of a presigned URL (SigV4: seven days).
const PRESIGNED_EXPIRES_SECS_MAX: u64 = 7 * 24 * 3600;

pub async fn serve(listener: TcpListener, service: S3Service, shutdown: impl std::future::Future<Output = ()>) {
    let builder = ConnBuilder::new(TokioExecutor::new());
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
        let service = service.clone();
        let handler = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let service = service.clone();
            async move { Ok::<_, Infallible>(handle(&service, request).await) }
        });
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(socket), handler);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: waiting for open requests");
    graceful.shutdown().await;
}

async fn handle(service: &S3Service, request: http::Request<Incoming>) -> Response<Body> {
    if let Some(response) = precheck(&request) {
        return response;
    }
    match service.call(request.map(Body::from)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = ?e, "request failed outside the S3 layer");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "We encountered an internal error.")
        }
    }
}

/// Checks made before the S3 layer: refuses presigned URLs valid for more
/// than seven days, as S3 does.
fn precheck(request: &http::Request<Incoming>) -> Option<Response<Body>> {
    let query = request.uri().query()?;
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
    None
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
