//! Mapping the SDK's errors onto [`StoreError`], with what to check.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::Settings;
use crate::store::StoreError;

pub(super) fn no_bucket(s: &Settings) -> StoreError {
    StoreError::Backend {
        store: s.describe.clone(),
        message: format!(
            "bucket {:?} does not exist: check the --vault name, AWS_REGION and AWS_ENDPOINT_URL",
            s.bucket
        ),
        source: None,
    }
}

pub(super) fn map_error<E>(
    s: &Settings,
    op: &'static str,
    key: &str,
    e: SdkError<E, HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let said = e.message().unwrap_or("").to_string();
    let store = s.describe.clone();
    let key = key.to_string();
    // For matching only, never shown whole (see `error_chain`).
    let detail = DisplayErrorContext(&e).to_string();
    let denied = |message: String| StoreError::AccessDenied {
        store: store.clone(),
        key: key.clone(),
        message,
    };
    match (code.as_deref(), status) {
        (Some("NoSuchKey" | "NotFound"), _) | (None, Some(404)) => {
            StoreError::NotFound { store, key }
        }
        (Some("PreconditionFailed"), _) | (_, Some(412)) => {
            StoreError::AlreadyExists { store, key }
        }
        (Some("NoSuchBucket"), _) => no_bucket(s),
        (Some("InvalidAccessKeyId" | "SignatureDoesNotMatch"), _) => denied(format!(
            "the S3 server refuses the credentials ({}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
            code.as_deref().unwrap_or_default()
        )),
        (Some("ExpiredToken" | "TokenRefreshRequired" | "RequestExpired"), _) => denied(
            "the AWS credentials have expired: refresh them (aws sso login, or the role's session)"
                .into(),
        ),
        // A HEAD has no body to say why: it may be either.
        (None, Some(403)) => denied(format!(
            "{op} was refused (HTTP 403): the credentials are wrong, or lack permission for this bucket and prefix: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and the IAM policy (see deploy/iam/policy.json)"
        )),
        (Some("AccessDenied" | "AllAccessDisabled"), _) => denied(format!(
            "{op} was refused: check that the IAM policy allows it on this bucket and prefix (see deploy/iam/policy.json){}",
            if said.is_empty() {
                String::new()
            } else {
                format!("; the server says: {said}")
            }
        )),
        (
            Some(
                "PermanentRedirect"
                | "AuthorizationHeaderMalformed"
                | "IllegalLocationConstraintException",
            ),
            _,
        )
        | (None, Some(301)) => StoreError::Backend {
            store,
            message: format!(
                "the bucket is not in region {}: set AWS_REGION to the bucket's region (or AWS_ENDPOINT_URL for another S3 server){}",
                s.region,
                if said.is_empty() {
                    String::new()
                } else {
                    format!("; the server says: {said}")
                }
            ),
            source: None,
        },
        _ => {
            let hint = if matches!(e, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)) {
                if detail.contains("credential") {
                    ": no usable AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or use a pod/instance role)"
                } else {
                    ": cannot reach the S3 endpoint (check AWS_ENDPOINT_URL / network)"
                }
            } else {
                ""
            };
            let hint = match status {
                Some(ok @ 200..=299) if hint.is_empty() && code.is_none() => format!(
                    ": the server answered HTTP {ok} with a reply the S3 client cannot read (is it fully S3-compatible for this request?)"
                ),
                _ => hint.to_string(),
            };
            // The chain's messages only: the SDK's Debug form carries the
            // whole raw response, which is no error line.
            StoreError::Backend {
                store,
                message: format!("{op} {key} failed{hint}: {}", error_chain(&e)),
                source: None,
            }
        }
    }
}

/// Longest error text shown; the SDK's messages can embed whole replies.
const MAX_DETAIL: usize = 400;

/// [`crate::error_line::one_line`], cut at [`MAX_DETAIL`] bytes.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = crate::error_line::one_line(e);
    if out.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str(" [...]");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_is_cut_at_a_char_boundary() {
        let long = std::io::Error::other("é".repeat(MAX_DETAIL));
        let shown = error_chain(&long);
        assert!(shown.ends_with(" [...]"), "{shown}");
        assert!(shown.len() <= MAX_DETAIL + " [...]".len());
    }
}
