//! A minimal HTTP/1.1 GET for plain-text endpoints (`/metrics`, Prometheus's API), so
//! tests read them as a scraper does, with no client library in between.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The body of `GET path` at `addr`; panics unless the answer is 200 with text.
pub async fn get_text(addr: std::net::SocketAddr, path: &str) -> String {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "GET {path} at {addr}: {body}");
    body
}

/// The status and body of `GET path` at `addr` (`Connection: close`, so the body
/// ends with the stream; a chunked body is reassembled).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} at {addr}: {e}"))
}

/// [`get`], or why no answer came (nothing listening yet, say).
pub async fn try_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("reading: {e}"))?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP answer: {response}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}
