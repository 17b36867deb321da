//! One bare repository per source, fetching one branch with a forced refspec: a force-pushed
//! branch simply moves the mirror's ref, as `git fetch +ref:ref` does.

use std::path::{Path, PathBuf};

use git2::{CredentialType, FetchOptions, RemoteCallbacks, Repository};
use sha2::{Digest, Sha256};

use super::GitError;
use crate::clients::Secret;

/// Where the fetched branch is kept inside the mirror.
const FETCHED_REF: &str = "refs/nomarch/fetched";

/// Credentials for a remote, from the source's `secretRef`.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// An https password or access token; the user name comes from the URL, else `git`.
    Token(Secret),
    /// An ssh private key (PEM or OpenSSH format); the user name comes from the URL, else `git`.
    SshKey(Secret),
}

impl Credentials {
    /// ssh URLs take the secret as a private key, everything else as a token.
    pub fn for_url(url: &str, secret: Secret) -> Credentials {
        let ssh = url.starts_with("ssh://") || (!url.contains("://") && url.contains('@'));
        if ssh {
            Credentials::SshKey(secret)
        } else {
            Credentials::Token(secret)
        }
    }
}

pub struct Mirror {
    path: PathBuf,
}

impl Mirror {
    /// The mirror of `url` for one source under `cache`. The folder name includes a hash of
    /// the URL, so pointing a source at another repository never reuses the old objects.
    pub fn for_source(cache: &Path, namespace: &str, name: &str, url: &str) -> Mirror {
        let digest = Sha256::digest(url.as_bytes());
        let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        Mirror {
            path: cache.join(namespace).join(format!("{name}-{short}.git")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> Result<Repository, GitError> {
        let local = |e: &dyn std::fmt::Display| GitError::Local {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        if self.path.join("HEAD").exists() {
            return Repository::open_bare(&self.path).map_err(|e| local(&e.message()));
        }
        std::fs::create_dir_all(&self.path).map_err(|e| local(&e))?;
        Repository::init_bare(&self.path).map_err(|e| local(&e.message()))
    }

    /// Fetches `branch` and returns the commit it points at. Blocking: run it off the async
    /// runtime.
    pub fn fetch(
        &self,
        url: &str,
        branch: &str,
        credentials: Option<&Credentials>,
    ) -> Result<String, GitError> {
        let repo = self.open()?;
        let mut remote = repo.remote_anonymous(url).map_err(|e| GitError::Fetch {
            url: url.to_string(),
            message: e.message().to_string(),
            auth: false,
        })?;
        let mut attempts = 0;
        let mut callbacks = RemoteCallbacks::new();
        callbacks.credentials(|_url, user_from_url, allowed| {
            // libgit2 asks again after each refusal; answering forever would loop forever.
            attempts += 1;
            if attempts > 1 {
                return Err(git2::Error::from_str("the credentials were refused"));
            }
            let user = user_from_url.unwrap_or("git");
            match credentials {
                Some(Credentials::SshKey(key)) if allowed.contains(CredentialType::SSH_KEY) => {
                    git2::Cred::ssh_key_from_memory(user, None, key.expose(), None)
                }
                Some(Credentials::Token(token))
                    if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
                {
                    git2::Cred::userpass_plaintext(user, token.expose())
                }
                _ => Err(git2::Error::from_str(
                    "the remote asks for credentials; set the source's secretRef",
                )),
            }
        });
        let mut options = FetchOptions::new();
        options.remote_callbacks(callbacks);
        options.download_tags(git2::AutotagOption::None);
        let refspec = format!("+refs/heads/{branch}:{FETCHED_REF}");
        if let Err(e) = remote.fetch(&[refspec.as_str()], Some(&mut options), None) {
            return Err(classify_fetch_error(url, branch, &self.path, &e));
        }
        let reference = repo
            .find_reference(FETCHED_REF)
            .map_err(|_| GitError::BranchMissing {
                url: url.to_string(),
                branch: branch.to_string(),
            })?;
        let commit = reference.peel_to_commit().map_err(|e| GitError::Read {
            commit: FETCHED_REF.to_string(),
            message: e.message().to_string(),
        })?;
        Ok(commit.id().to_string())
    }

    /// The repository, for reading a fetched commit.
    pub fn repository(&self) -> Result<Repository, GitError> {
        self.open()
    }
}

/// Which failure a libgit2 fetch error is, by rules in order.
fn classify_fetch_error(url: &str, branch: &str, path: &Path, e: &git2::Error) -> GitError {
    let message = e.message().to_string();
    let lower = message.to_lowercase();
    match () {
        // 1. The branch is not on the remote (libgit2 names the ref it could not find).
        _ if lower.contains("couldn't find remote ref")
            || lower.contains("not found: refs/heads") =>
        {
            GitError::BranchMissing {
                url: url.to_string(),
                branch: branch.to_string(),
            }
        }
        // 2. Credentials missing or refused.
        _ if e.class() == git2::ErrorClass::Ssh
            || e.code() == git2::ErrorCode::Auth
            || lower.contains("credentials")
            || lower.contains("authentication") =>
        {
            GitError::Fetch {
                url: url.to_string(),
                message,
                auth: true,
            }
        }
        // 3. Writing the mirror failed: disk full, permissions, a lock left behind. libgit2
        //    names the file it could not write, which is inside the mirror; an OS error about
        //    any other path (a `file://` remote that vanished) is the remote's.
        _ if matches!(
            e.class(),
            git2::ErrorClass::Os | git2::ErrorClass::Filesystem | git2::ErrorClass::Odb
        ) && message.contains(&*path.to_string_lossy()) =>
        {
            GitError::Local {
                path: path.display().to_string(),
                message,
            }
        }
        // 4. Everything else is the remote's or the network's.
        _ => GitError::Fetch {
            url: url.to_string(),
            message,
            auth: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_take_keys_and_the_rest_tokens() {
        let secret = || Secret::new("s");
        assert!(matches!(
            Credentials::for_url("git@example.com:org/repo.git", secret()),
            Credentials::SshKey(_)
        ));
        assert!(matches!(
            Credentials::for_url("ssh://git@example.com/org/repo.git", secret()),
            Credentials::SshKey(_)
        ));
        assert!(matches!(
            Credentials::for_url("https://example.com/org/repo.git", secret()),
            Credentials::Token(_)
        ));
        assert!(!format!("{:?}", Credentials::Token(Secret::new("hunter2"))).contains("hunter2"));
    }

    #[test]
    fn mirrors_are_per_source_and_per_url() {
        let cache = Path::new("/cache");
        let a = Mirror::for_source(cache, "default", "state", "file:///a");
        let b = Mirror::for_source(cache, "default", "state", "file:///b");
        assert_ne!(a.path(), b.path());
        assert!(a.path().starts_with("/cache/default"));
    }
}
