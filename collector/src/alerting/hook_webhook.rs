//! The webhook hook: POSTs the signed JSON payload, retries with back-off (honouring
//! `Retry-After`), never follows redirects, and gives up after a time limit per attempt.

use std::time::Duration;

use http::StatusCode;

use crate::alerting::delivery::{HookError, SIGNATURE_HEADER, sign};
use crate::alerting::hook_config::HookConfig;

/// First back-off between attempts; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between attempts, whatever `Retry-After` asks for.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What one attempt came to.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Delivered,
    /// Worth retrying, after at least this long when the receiver said so.
    Retry(String, Option<Duration>),
    /// Retrying will not help (a client error, a redirect).
    GiveUp(String),
}

/// Posts `body` to `url`, with up to `retries` further attempts.
pub async fn post(
    hook: &HookConfig,
    url: &str,
    secret: Option<&str>,
    retries: u32,
    body: Vec<u8>,
) -> Result<(), HookError> {
    let failure = |reason: String| HookError::Webhook {
        hook: hook.name.clone(),
        url: url.to_owned(),
        reason,
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(hook.timeout)
        .no_proxy()
        .build()
        .map_err(|e| failure(format!("cannot build the http client: {e}")))?;
    let signature = secret.map(|secret| sign(secret, &body));
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 0;
    loop {
        let mut request = client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(signature) = &signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let outcome = match request.send().await {
            Ok(response) => classify(response.status(), retry_after(response.headers())),
            Err(error) => Attempt::Retry(format!("request failed: {error}"), None),
        };
        match outcome {
            Attempt::Delivered => return Ok(()),
            Attempt::GiveUp(reason) => return Err(failure(reason)),
            Attempt::Retry(reason, _) if attempt >= retries => {
                return Err(failure(format!(
                    "{reason} (after {} attempts)",
                    attempt + 1
                )));
            }
            Attempt::Retry(reason, asked) => {
                let wait = asked.unwrap_or(backoff).min(MAX_BACKOFF);
                tracing::warn!(hook = %hook.name, %url, %reason, wait_ms = wait.as_millis() as u64, "webhook attempt failed, retrying");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
            }
        }
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>) -> Attempt {
    if status.is_success() {
        Attempt::Delivered
    } else if status.is_redirection() {
        Attempt::GiveUp(format!("answered {status}; redirects are not followed"))
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Attempt::Retry(format!("answered {status}"), retry_after)
    } else {
        Attempt::GiveUp(format!("answered {status}"))
    }
}

/// `Retry-After` in its delay-seconds form. (The HTTP-date form is ignored: the normal
/// back-off applies.)
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn responses_are_classified() {
        let wait = Some(Duration::from_secs(2));
        let cases = [
            (StatusCode::OK, None, Attempt::Delivered, "2xx delivers"),
            (
                StatusCode::NO_CONTENT,
                None,
                Attempt::Delivered,
                "any 2xx delivers",
            ),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                wait,
                Attempt::Retry("answered 503 Service Unavailable".into(), wait),
                "5xx retries with Retry-After",
            ),
            (
                StatusCode::TOO_MANY_REQUESTS,
                None,
                Attempt::Retry("answered 429 Too Many Requests".into(), None),
                "429 retries",
            ),
            (
                StatusCode::FOUND,
                None,
                Attempt::GiveUp("answered 302 Found; redirects are not followed".into()),
                "redirects are not followed",
            ),
            (
                StatusCode::BAD_REQUEST,
                None,
                Attempt::GiveUp("answered 400 Bad Request".into()),
                "4xx will not improve",
            ),
        ];
        for (status, retry_after, expected, reason) in cases {
            assert_eq!(classify(status, retry_after), expected, "{reason}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(" 3 "),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers),
            None,
            "dates fall back to the back-off"
        );
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("-1"),
        );
        assert_eq!(retry_after(&headers), None, "garbage is ignored");
    }
}
