//! Secrets kept out of the config file: `password_file` (cameras, MQTT), `access_key_file` and
//! `secret_access_key_file` (upload). A relative path names a systemd credential of the unit
//! (`LoadCredential=name:/path` in a drop-in; systemd.exec(5) "Credentials"), read from
//! `$CREDENTIALS_DIRECTORY`; an absolute path is read as it is. The file holds the secret; one
//! trailing newline is dropped. Rules only; what a secret is for belongs to the callers.

use std::path::{Path, PathBuf};

use super::{rule, ConfigError};

/// Whether secret files are read while the config is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Read them (`run`, `check-config`): a missing or unreadable one is an error naming its key.
    Read,
    /// Leave them unread (`fsck`): only the rules that need no file are checked.
    Skip,
}

/// Where a secret file is: `path` itself when absolute, else `$CREDENTIALS_DIRECTORY/path`.
///
/// Errors: a relative path without `$CREDENTIALS_DIRECTORY` (not started by systemd with
/// credentials), or one that leaves that directory.
pub fn resolve(key: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    if path
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(rule(
            key,
            format!(
                "a credential name must not leave the credentials directory, got {}",
                path.display()
            ),
        ));
    }
    match std::env::var_os("CREDENTIALS_DIRECTORY") {
        Some(dir) => Ok(Path::new(&dir).join(path)),
        None => Err(rule(
            key,
            format!(
                "{} is relative: use an absolute path, or a credential of the unit (LoadCredential=) under $CREDENTIALS_DIRECTORY, which is not set",
                path.display()
            ),
        )),
    }
}

/// The secret from `value` (in the config) or `file` (`<key>_file`); at most one of them. With
/// `read` false a file is not read and the secret is `None`.
///
/// Errors: both given, the file cannot be read or is empty; the message names `<key>_file` and
/// the path, never the secret.
pub fn secret(
    key: &str,
    value: Option<String>,
    file: Option<PathBuf>,
    read: bool,
) -> Result<Option<String>, ConfigError> {
    let file_key = format!("{key}_file");
    match (value, file) {
        (Some(_), Some(_)) => Err(rule(
            &file_key,
            format!("give {key} or {file_key}, not both"),
        )),
        (v, None) => Ok(v),
        (None, Some(_)) if !read => Ok(None),
        (None, Some(f)) => {
            let path = resolve(&file_key, &f)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| rule(&file_key, format!("cannot read {}: {e}", path.display())))?;
            let s = text
                .strip_suffix('\n')
                .map(|s| s.strip_suffix('\r').unwrap_or(s))
                .unwrap_or(&text);
            if s.is_empty() {
                return Err(rule(&file_key, format!("{} is empty", path.display())));
            }
            Ok(Some(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_comes_from_the_config_or_a_file_not_both() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(
            secret("camera[0].password", None, Some(f.clone()), true).unwrap(),
            Some("s3cret".into())
        );
        assert_eq!(
            secret("camera[0].password", Some("x".into()), None, true).unwrap(),
            Some("x".into())
        );
        let key_of = |e: ConfigError| match e {
            ConfigError::Rule { key, rule } => (key, rule),
            e => panic!("{e}"),
        };
        let (k, r) = key_of(secret("mqtt.password", Some("x".into()), Some(f), true).unwrap_err());
        assert_eq!(k, "mqtt.password_file");
        assert!(r.contains("not both"), "{r}");
        let (k, r) = key_of(
            secret(
                "mqtt.password",
                None,
                Some(dir.path().join("missing")),
                true,
            )
            .unwrap_err(),
        );
        assert_eq!(k, "mqtt.password_file");
        assert!(r.contains("cannot read") && r.contains("missing"), "{r}");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let (_, r) = key_of(
            secret("mqtt.password", None, Some(dir.path().join("empty")), true).unwrap_err(),
        );
        assert!(r.contains("empty"), "{r}");
        let (_, r) = key_of(resolve("k", Path::new("../etc/shadow")).unwrap_err());
        assert!(r.contains("must not leave"), "{r}");
        // A credential of the unit: relative to $CREDENTIALS_DIRECTORY (only this test sets it).
        std::env::set_var("CREDENTIALS_DIRECTORY", dir.path());
        let got = secret("camera[0].password", None, Some("pw".into()), true);
        std::env::remove_var("CREDENTIALS_DIRECTORY");
        assert_eq!(got.unwrap(), Some("s3cret".into()));
        assert_eq!(
            secret("camera[0].password", None, Some("pw".into()), false).unwrap(),
            None,
            "fsck does not read secrets"
        );
        let (_, r) = key_of(resolve("k", Path::new("pw")).unwrap_err());
        assert!(r.contains("CREDENTIALS_DIRECTORY"), "{r}");
    }
}
