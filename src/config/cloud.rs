//! `edgerec serve --config cloud.toml` (cargo feature `cloud`): the settings of the cloud side,
//! which plays what a fleet of gateways uploaded (docs/cloud.md). The store keys are exactly
//! `[upload]`'s and the HTTP keys the gateway's `[http]`, checked by the same code, so a
//! malformed value gets the same message naming the key. What the server does is `crate::cloud`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{
    duration_key, http_config, rule, upload_config, ConfigError, HttpConfig, RawHttp, RawUpload,
    UploadConfig, MIB,
};

/// The cloud side's configuration.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// `[store]`: where the gateways upload (same keys as `[upload]`; `url` is the fleet root,
    /// under which each gateway has its folder).
    pub store: UploadConfig,
    /// `[http]`: listen address and access tokens, as on the gateway.
    pub http: HttpConfig,
    /// `[cache] listing_ttl`: how long a folder listing is reused (default 2 s; `PT0S` lists
    /// on every request). Objects that never change (index objects by `ETag`, segment
    /// headers) are cached without a time limit, within `max_mib`.
    pub listing_ttl: Duration,
    /// `[cache] max_mib`: memory for cached listings, index objects and init segments, bytes
    /// (default 256 MiB).
    pub cache_bytes: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloud {
    store: RawUpload,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    cache: RawCache,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    listing_ttl: Option<String>,
    max_mib: Option<u64>,
}

impl CloudConfig {
    /// Reads and validates a file. Errors name the key and the rule.
    pub fn load(path: &Path) -> Result<CloudConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        CloudConfig::parse(&text)
    }

    /// Parses and validates config text (secret files are read).
    pub fn parse(text: &str) -> Result<CloudConfig, ConfigError> {
        let raw: RawCloud = toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let store = upload_config(raw.store, true).map_err(|e| match e {
            ConfigError::Rule { key, rule } => ConfigError::Rule {
                key: key.replacen("upload.", "store.", 1),
                rule,
            },
            e => e,
        })?;
        let http = http_config(raw.http)?;
        let listing_ttl = match raw.cache.listing_ttl {
            None => Duration::from_secs(2),
            Some(v) => {
                let d = duration_key("cache.listing_ttl", &v)?;
                if d > Duration::from_secs(3600) {
                    return Err(rule("cache.listing_ttl", "must be PT0S to PT1H"));
                }
                d
            }
        };
        let max_mib = raw.cache.max_mib.unwrap_or(256);
        if !(16..=65536).contains(&max_mib) {
            return Err(rule("cache.max_mib", "must be 16 to 65536"));
        }
        Ok(CloudConfig {
            store,
            http,
            listing_ttl,
            cache_bytes: max_mib * MIB,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(e: ConfigError) -> String {
        match e {
            ConfigError::Rule { key, .. } => key,
            e => panic!("{e}"),
        }
    }

    #[test]
    fn store_and_cache_keys_are_checked_and_named() {
        let ok = CloudConfig::parse("[store]\nurl = \"s3://fleet/site\"\nendpoint = \"http://127.0.0.1:9000\"\npath_style = true\n").unwrap();
        assert_eq!(ok.store.prefix, "site");
        assert_eq!(ok.listing_ttl, Duration::from_secs(2));
        assert_eq!(ok.cache_bytes, 256 * MIB);
        let e = CloudConfig::parse("[store]\nurl = \"ftp://x\"\n").unwrap_err();
        assert_eq!(key_of(e), "store.url");
        let e =
            CloudConfig::parse("[store]\nurl = \"s3://b\"\n[cache]\nmax_mib = 1\n").unwrap_err();
        assert_eq!(key_of(e), "cache.max_mib");
        let e = CloudConfig::parse("[store]\nurl = \"s3://b\"\n[cache]\nlisting_ttl = \"P1D\"\n")
            .unwrap_err();
        assert_eq!(key_of(e), "cache.listing_ttl");
        let e = CloudConfig::parse("[store]\nurl = \"s3://b\"\n[http]\nlisten = \"0.0.0.0:1\"\n")
            .unwrap_err();
        assert_eq!(key_of(e), "http.token_file");
        assert!(matches!(
            CloudConfig::parse("[store]\nurl = \"s3://b\"\nbogus = 1\n").unwrap_err(),
            ConfigError::Syntax(_)
        ));
    }
}
