//! What every hook delivery shares: its error, and the HMAC signature a webhook carries.
//! Kept apart from the schedule (`hook`) and the two ways of delivering (`hook_webhook`,
//! `hook_exec`), so each of those imports it and none imports another.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the body's HMAC-SHA256 signature, as `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Causeway-Signature";
/// The prefix of the signature header's value.
pub const SIGNATURE_PREFIX: &str = "sha256=";

/// A failed delivery.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The receiver could not be reached or timed out, on every attempt.
    #[error("webhook {hook} at {url}: {reason}")]
    Webhook {
        /// The hook's name.
        hook: String,
        /// Where it posts.
        url: String,
        /// What went wrong on the last attempt.
        reason: String,
    },
    /// The command could not start, failed, or ran out of time.
    #[error("exec hook {hook} ({command}): {reason}")]
    Exec {
        /// The hook's name.
        hook: String,
        /// The program.
        command: String,
        /// What went wrong.
        reason: String,
    },
    /// The payload could not be encoded.
    #[error("hook {hook}: cannot encode the payload: {source}")]
    Encode {
        /// The hook's name.
        hook: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this constructor cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!(
        "{SIGNATURE_PREFIX}{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
