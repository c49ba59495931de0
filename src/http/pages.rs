//! The owner's HTML pages: the askama templates (in `templates/`), the stylesheet, and `render`,
//! which sends every page with headers that forbid framing, caching, sniffing and referrers, and
//! a CSP whose `form-action` names only where the page's form may lead.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub issuer: &'a str,
    pub heading: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub issuer: &'a str,
    pub client_name: &'a str,
    pub redirect_host: &'a str,
    pub request_id: &'a str,
    pub csrf: &'a str,
    pub problem: Option<&'a str>,
    pub telegram_approval: bool,
}

#[derive(Template)]
#[template(path = "waiting.html")]
pub struct WaitingPage<'a> {
    pub issuer: &'a str,
    pub client_name: &'a str,
    pub redirect_host: &'a str,
    pub refresh_url: &'a str,
    pub pairing_code: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub issuer: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub redirect_host: &'a str,
    /// For a client named by a metadata document: the host that published it.
    pub document_host: Option<String>,
    pub permissions: Vec<String>,
    pub request_id: &'a str,
    pub csrf: &'a str,
}

/// Renders a page with headers that forbid framing, caching and referrers. `form_target`
/// is where the page's form may end up: the consent form's 303 goes to the client.
pub fn render(status: StatusCode, page: &impl Template, form_target: Option<&str>) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(error) => {
            crate::telemetry::log_internal("page rendering", &error);
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let form_action = match form_target.and_then(form_action_source) {
        Some(source) => format!("'self' {source}"),
        None => "'self'".into(),
    };
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = (status, Html(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The CSP source for a redirect URI: its origin, or its scheme for custom schemes.
fn form_action_source(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}:")),
    }
}

/// `GET /assets/nexus.css`.
pub async fn stylesheet() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        include_str!("../../assets/nexus.css"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_action_names_the_client_origin() {
        assert_eq!(
            form_action_source("https://claude.ai/api/mcp/auth_callback").as_deref(),
            Some("https://claude.ai")
        );
        assert_eq!(
            form_action_source("http://127.0.0.1:3000/cb").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            form_action_source("cursor://anysphere.cursor-mcp/cb").as_deref(),
            Some("cursor:")
        );
    }
}
