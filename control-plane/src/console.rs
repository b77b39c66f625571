//! The web console: three files built from `console/` (see console/README.md) and
//! embedded in the binary, served at `/` on the API's own port. The console is a
//! gRPC-Web client of the same `ferry.v1` API as every other client, so it passes the
//! same authentication, roles and validation; this module only hands out its files.

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

/// One embedded file: its bytes, type and a validator for conditional requests.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../console/dist/index.html"
    )),
    content_type: "text/html; charset=utf-8",
};
const SCRIPT: Asset = Asset {
    body: include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../console/dist/app.js"
    )),
    content_type: "text/javascript; charset=utf-8",
};
const STYLE: Asset = Asset {
    body: include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../console/dist/app.css"
    )),
    content_type: "text/css; charset=utf-8",
};

/// Nothing but this origin: no inline script, no third party, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's routes, to merge into the API's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route(
            "/app.js",
            get(|h: HeaderMap| async move { serve(&SCRIPT, &h) }),
        )
        .route(
            "/app.css",
            get(|h: HeaderMap| async move { serve(&STYLE, &h) }),
        )
}

/// The file, or `304 Not Modified` when the browser holds this very version. Browsers
/// revalidate every time (`no-cache`), so a new binary's console is picked up at once.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(asset.body));
    let headers = [
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    ];
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let etag = HeaderValue::from_str(&etag).expect("a hex etag is a valid header");
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers, [(header::ETAG, etag)]).into_response();
    }
    (
        headers,
        [
            (header::ETAG, etag),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
        ],
        asset.body,
    )
        .into_response()
}
