//! The manifest files of a commit under one folder: `.yaml`, `.yml` and `.json` blobs, hidden
//! entries skipped, in path order, as `nomarch apply -f <folder>` reads a folder on disk.

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use super::GitError;

/// Manifest files per commit at most; each file is also held to the parser's own limits.
pub const MAX_FILES: usize = 10_000;

/// Blob modes that are files (symbolic links and submodules are not followed).
const FILE_MODES: [i32; 2] = [0o100644, 0o100755];

/// `(path from the repository root, contents)` of every manifest file under `folder`.
pub fn read_manifests(
    repo: &Repository,
    commit: &str,
    folder: &str,
) -> Result<Vec<(String, Vec<u8>)>, GitError> {
    let read_error = |e: git2::Error| GitError::Read {
        commit: commit.to_string(),
        message: e.message().to_string(),
    };
    let oid = Oid::from_str(commit).map_err(read_error)?;
    let root = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(read_error)?;
    let folder = folder.trim_matches('/');
    let (tree, prefix) = if folder.is_empty() || folder == "." {
        (root, String::new())
    } else {
        let missing = || GitError::PathMissing {
            path: folder.to_string(),
            commit: commit.to_string(),
        };
        let entry = root
            .get_path(std::path::Path::new(folder))
            .map_err(|_| missing())?;
        if entry.kind() != Some(ObjectType::Tree) {
            return Err(missing());
        }
        let tree = repo.find_tree(entry.id()).map_err(read_error)?;
        (tree, format!("{folder}/"))
    };

    let mut found = Vec::new();
    let mut hidden_dirs: Vec<String> = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or_default();
        if name.starts_with('.') {
            if entry.kind() == Some(ObjectType::Tree) {
                hidden_dirs.push(format!("{dir}{name}/"));
            }
            return TreeWalkResult::Skip;
        }
        if hidden_dirs.iter().any(|h| dir.starts_with(h.as_str())) {
            return TreeWalkResult::Skip;
        }
        let is_manifest = [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if entry.kind() == Some(ObjectType::Blob)
            && FILE_MODES.contains(&entry.filemode())
            && is_manifest
        {
            found.push((format!("{prefix}{dir}{name}"), entry.id()));
        }
        TreeWalkResult::Ok
    })
    .map_err(read_error)?;
    if found.len() > MAX_FILES {
        return Err(GitError::TooManyFiles {
            commit: commit.to_string(),
            path: folder.to_string(),
            count: found.len(),
            limit: MAX_FILES,
        });
    }
    found.sort();
    found
        .into_iter()
        .map(|(path, id)| {
            let blob = repo.find_blob(id).map_err(read_error)?;
            Ok((path, blob.content().to_vec()))
        })
        .collect()
}
