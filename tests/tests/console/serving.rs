//! The console's files and its gRPC-Web calls share the API's port with gRPC and
//! `/metrics`, each answered in its own protocol.

use ferry_tests::ControlPlane;

/// A gRPC-Web frame holding an empty message (`WhoAmIRequest {}`).
const EMPTY_FRAME: [u8; 5] = [0, 0, 0, 0, 0];

async fn who_am_i(cp: &ControlPlane, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{}/ferry.v1.AdminService/WhoAmI", cp.endpoint()))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(EMPTY_FRAME.to_vec());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_console_grpc_web_and_metrics_share_the_port() {
    let cp = ControlPlane::start().await;
    let http = reqwest::Client::new();

    let page = http.get(cp.endpoint()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/app.js") && html.contains("/app.css"),
        "{html}"
    );
    for (path, kind) in [("/app.js", "text/javascript"), ("/app.css", "text/css")] {
        let asset = http
            .get(format!("{}{path}", cp.endpoint()))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        let etag = asset.headers()["etag"].clone();
        assert!(asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(!asset.bytes().await.unwrap().is_empty(), "{path} is empty");
        // A browser holding this version revalidates for nothing.
        let again = http
            .get(format!("{}{path}", cp.endpoint()))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }

    // gRPC-Web: the same authentication as every client, answered in gRPC-Web.
    let refused = who_am_i(&cp, None).await;
    assert_eq!(refused.status(), 200);
    assert_eq!(
        refused.headers()["content-type"],
        "application/grpc-web+proto"
    );
    assert_eq!(refused.headers()["grpc-status"], "16");
    let answer = who_am_i(&cp, Some(cp.admin_token())).await;
    assert_eq!(answer.status(), 200);
    let body = answer.bytes().await.unwrap();
    // A data frame (flag 0) with the message, then a trailer frame (flag 0x80).
    assert_eq!(body[0], 0, "{body:?}");
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let message =
        <ferry_sdk::pb::WhoAmIResponse as prost::Message>::decode(&body[5..5 + len]).unwrap();
    assert_eq!(message.name, "admin");
    assert_eq!(message.role, ferry_sdk::pb::Role::Admin as i32);
    let trailer = &body[5 + len..];
    assert_eq!(trailer[0], 0x80);
    assert!(String::from_utf8_lossy(&trailer[5..]).contains("grpc-status:0"));

    // Plain HTTP/1.1 and plain gRPC still work beside it.
    let metrics = http
        .get(format!("{}/metrics", cp.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics
        .text()
        .await
        .unwrap()
        .contains("ferry_access_events_accepted_total"));
    let me = cp.client().await.who_am_i().await.unwrap();
    assert_eq!(me.principal, "token:admin");
}
