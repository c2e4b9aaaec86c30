//! The object store behind `[upload] url` (the `object_store` crate does the protocol and the
//! request signing), object keys, and which failures are worth retrying. No policy here: order,
//! backoff and status are [`super`]'s.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use crate::config::{UploadConfig, UploadTarget};
use crate::index::SegmentRow;

/// Builds the store. S3 sends a SHA-256 checksum with every PUT and part, which the store
/// verifies. The client's own retries are kept short (2 retries within 20 s): outages are
/// handled by the uploader's backoff, which also reports them.
///
/// Errors: the URL, endpoint or credentials are rejected by the builder.
pub fn build(cfg: &UploadConfig) -> anyhow::Result<Arc<dyn ObjectStore>> {
    // The HTTP client's TLS (reqwest with `rustls-no-provider`) uses rustls' process default:
    // ring, the one crypto library of the binary. An `Err` means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 2,
        retry_timeout: Duration::from_secs(20),
    };
    let allow_http = cfg
        .endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    Ok(match &cfg.target {
        UploadTarget::S3 { bucket } => {
            let mut b = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_checksum_algorithm(Checksum::SHA256)
                .with_retry(retry)
                .with_allow_http(allow_http)
                .with_virtual_hosted_style_request(!cfg.path_style);
            if let Some(e) = &cfg.endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(r) = &cfg.region {
                b = b.with_region(r);
            } else if std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                b = b.with_region("us-east-1");
            }
            if let Some((k, s)) = &cfg.s3_credentials {
                b = b.with_access_key_id(k).with_secret_access_key(s);
            }
            Arc::new(b.build()?)
        }
        UploadTarget::Azure { container } => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .with_retry(retry)
                .with_allow_http(allow_http);
            if let Some(e) = &cfg.endpoint {
                b = b.with_endpoint(e.clone());
            }
            if let Some((a, k)) = &cfg.azure_account {
                b = b.with_account(a);
                if let Some(k) = k {
                    b = b.with_access_key(k);
                }
            }
            Arc::new(b.build()?)
        }
        UploadTarget::File { root } => Arc::new(LocalFileSystem::new_with_prefix(root)?),
    })
}

/// The object key of a segment: `<prefix>/<camera>/<YYYY>/<MM>/<DD>/<start>_<duration_ms>.mp4`
/// (start as in the segment's file name, e.g. `20191221T040108.123Z`; date of the start, UTC).
pub fn object_key(prefix: &str, s: &SegmentRow) -> ObjectPath {
    use super::hour_index::{day_folder, segment_name};
    ObjectPath::from(format!(
        "{}{}",
        day_folder(prefix, &s.camera, s.start_utc_ns),
        segment_name(s.start_utc_ns, s.duration_ns)
    ))
}

/// Whether a failed upload is worth retrying soon: connection failures, timeouts, 5xx and
/// throttling are; authentication, permissions and a missing bucket or container are not (they
/// need an operator, and are retried slowly).
pub fn retryable(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } | E::PermissionDenied { .. } | E::Unauthenticated { .. } => false,
        E::Generic { source, .. } => {
            let text = format!("{source:?} {source}");
            ![
                "NoSuchBucket",
                "ContainerNotFound",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "AuthenticationFailed",
                "AuthorizationFailure",
                "403 Forbidden",
                "401 Unauthorized",
                "404 Not Found",
            ]
            .iter()
            .any(|k| text.contains(k))
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::timeline::tests::seg;

    #[test]
    fn failures_needing_an_operator_are_not_retried_soon() {
        use object_store::Error as E;
        let generic = |m: &str| E::Generic {
            store: "S3",
            source: m.to_owned().into(),
        };
        assert!(!retryable(&E::NotFound {
            path: "x".into(),
            source: "gone".into()
        }));
        assert!(!retryable(&E::Unauthenticated {
            path: "x".into(),
            source: "no".into()
        }));
        assert!(!retryable(&generic(
            "Client error with status 404 Not Found: NoSuchBucket"
        )));
        assert!(!retryable(&generic("403 Forbidden: SignatureDoesNotMatch")));
        assert!(retryable(&generic(
            "error sending request: connection refused"
        )));
        assert!(retryable(&generic(
            "Server error, status 503 Service Unavailable: SlowDown"
        )));
    }

    #[test]
    fn keys_follow_the_layout() {
        let mut s = seg(1, 1, 1_576_900_868_123_000_000, 15, 2);
        s.camera = "lot".into();
        assert_eq!(
            object_key("site/a", &s).as_ref(),
            "site/a/lot/2019/12/21/20191221T040108.123Z_30000.mp4"
        );
        assert_eq!(
            object_key("", &s).as_ref(),
            "lot/2019/12/21/20191221T040108.123Z_30000.mp4"
        );
    }
}
