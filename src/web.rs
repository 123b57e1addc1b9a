//! The browser pages, served by the daemon from the binary itself (no internet, no
//! files to lose on the box): the landing page and the clerk's console. Plain
//! HTML/CSS/JS from `web/`, embedded at build time: the landing page, the clerk's
//! console (`/console`) and hearing review (`/review`, with hls.js vendored).

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// (path under `/assets/`, content type, bytes)
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../web/style.css"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/i18n.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/api.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/console.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/live.js"),
    ),
    (
        "fleet.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/fleet.js"),
    ),
    (
        "review.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/review.js"),
    ),
    // hls.js (Apache-2.0, web/vendor/hls.js.LICENSE), vendored by scripts/vendor-web.
    (
        "hls.light.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../web/vendor/hls.light.min.js"),
    ),
];

fn page(html: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => (
            [
                (header::CONTENT_TYPE, *ct),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// Routes of the pages (merged beside the API).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { page(include_str!("../web/index.html")) }),
        )
        .route(
            "/console",
            get(|| async { page(include_str!("../web/console.html")) }),
        )
        .route(
            "/review",
            get(|| async { page(include_str!("../web/review.html")) }),
        )
        .route(
            "/fleet",
            get(|| async { page(include_str!("../web/fleet.html")) }),
        )
        .route(
            "/live",
            get(|| async { page(include_str!("../web/live.html")) }),
        )
        .route("/assets/{name}", get(asset))
}
