//! The optional plain-HTTP listener: it serves nothing but a permanent redirect to HTTPS, so a
//! browser that types the bare host name lands on TLS (HSTS keeps it there afterwards).

use axum::http::{HeaderValue, Response, StatusCode, header};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::net::Admission;
use crate::protocols::Phase;

/// `https://HOST:PORT/PATH` for a request that came in over plain HTTP.
pub fn location(host_header: Option<&str>, path_and_query: &str, https_port: u16) -> Option<String> {
    let host = host_header?.trim();
    // Drop a port from the Host header; keep IPv6 brackets.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    if !valid {
        return None;
    }
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let path = if path_and_query.starts_with('/') { path_and_query } else { "/" };
    Some(format!("https://{name}{port}{path}"))
}

/// Serves redirects until the server starts draining.
pub async fn serve(
    listener: TcpListener,
    admission: Admission,
    https_port: u16,
    phase: watch::Receiver<Phase>,
) -> std::io::Result<()> {
    super::plain::serve(listener, admission, phase, Phase::Draining, move |request, _| {
        let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let mut response = Response::new(String::new());
        match location(host, path, https_port).and_then(|l| HeaderValue::from_str(&l).ok()) {
            Some(to) => {
                *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
                response.headers_mut().insert(header::LOCATION, to);
            }
            None => *response.status_mut() = StatusCode::BAD_REQUEST,
        }
        response
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::location;

    #[test]
    fn redirects_keep_the_host_and_path_and_refuse_odd_hosts() {
        assert_eq!(
            location(Some("files.example.com"), "/a?b=1", 443).unwrap(),
            "https://files.example.com/a?b=1"
        );
        assert_eq!(
            location(Some("files.example.com:8080"), "/", 8443).unwrap(),
            "https://files.example.com:8443/"
        );
        assert_eq!(location(Some("[::1]:80"), "/x", 8443).unwrap(), "https://[::1]:8443/x");
        assert_eq!(location(Some("evil.com/@x"), "/", 443), None);
        assert_eq!(location(None, "/", 443), None);
    }
}
