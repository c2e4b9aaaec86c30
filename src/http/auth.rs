//! Access tokens for the HTTP server (DESIGN section 6): a file of tokens, one per line (blank
//! lines and lines starting with `#` ignored), re-read when its modification time changes, so that
//! tokens can be rotated without a restart. A request presents one as `Authorization: Bearer
//! <token>` or, for players that cannot set headers, as the `token` query parameter. Tokens are
//! compared in constant time and never logged.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The token file and its last-read contents.
pub struct Tokens {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<String>)>,
}

/// Errors reading the token file.
#[derive(Debug, thiserror::Error)]
#[error("http.token_file {path}: {source}")]
pub struct TokenFileError {
    /// The file.
    pub path: PathBuf,
    /// Why it could not be read.
    pub source: std::io::Error,
}

fn read_tokens(path: &Path) -> Result<(Option<SystemTime>, Vec<String>), TokenFileError> {
    let err = |source| TokenFileError {
        path: path.to_owned(),
        source,
    };
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path).map_err(err)?;
    let tokens = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    Ok((mtime, tokens))
}

impl Tokens {
    /// Reads the token file. Errors: it cannot be read, or it holds no token.
    pub fn load(path: &Path) -> Result<Tokens, TokenFileError> {
        let (mtime, tokens) = read_tokens(path)?;
        if tokens.is_empty() {
            return Err(TokenFileError {
                path: path.to_owned(),
                source: std::io::Error::other("holds no token (one per line)"),
            });
        }
        Ok(Tokens {
            path: path.to_owned(),
            cache: Mutex::new((mtime, tokens)),
        })
    }

    /// Whether `presented` is one of the tokens (re-reading the file if it changed; if it became
    /// unreadable, the tokens last read stay in force).
    pub fn accepts(&self, presented: &str) -> bool {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime.is_some() && mtime != c.0 {
            match read_tokens(&self.path) {
                Ok(fresh) => *c = fresh,
                Err(e) => tracing::warn!("{e}; keeping the tokens read before"),
            }
        }
        c.1.iter()
            .any(|t| constant_time_eq(t.as_bytes(), presented.as_bytes()))
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_match_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens");
        std::fs::write(&p, "# viewers\nalpha\n\n  beta  \n").unwrap();
        let t = Tokens::load(&p).unwrap();
        assert!(t.accepts("alpha") && t.accepts("beta"));
        assert!(!t.accepts("alph") && !t.accepts("") && !t.accepts("# viewers"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, "gamma\n").unwrap();
        let f = std::fs::File::options().append(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() + std::time::Duration::from_secs(5))
            .unwrap();
        assert!(t.accepts("gamma") && !t.accepts("alpha"));
        std::fs::write(&p, "\n").unwrap();
        assert!(Tokens::load(&p).is_err());
    }
}
