//! Listing a prefix in pages, all at one revision: a single range over thousands of objects
//! outgrows gRPC's message limit (4 MiB by default; 12,000 objects with status are more), and
//! etcd itself recommends paging large ranges.

use etcd_client::{GetOptions, KeyValue};

use super::{Result, Store};

/// Keys per page: a few hundred objects stay well under any message limit.
pub const PAGE_SIZE: i64 = 250;
/// A page may still hold a few large objects (annotations go up to 256 KiB each).
pub(super) const MAX_PAGE_BYTES: usize = 128 * 1024 * 1024;

/// The first key after every key that starts with `prefix` (etcd's range end for a prefix).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: the range runs to the end of the key space.
    vec![0]
}

impl Store {
    /// Every key under `prefix`, read page by page at one revision: `at` when given, else the
    /// revision of the first page. Returns the revision read at.
    pub(super) async fn list_paged(
        &self,
        prefix: &str,
        at: Option<i64>,
    ) -> Result<(Vec<KeyValue>, i64)> {
        let end = prefix_end(prefix.as_bytes());
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = at.unwrap_or(0);
        let mut items = Vec::new();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE_SIZE);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let mut response = self.kv_get(start.clone(), Some(options)).await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            let more = response.more();
            let page = response.take_kvs();
            let Some(last) = page.last() else { break };
            start = last.key().to_vec();
            start.push(0);
            items.extend(page);
            if !more {
                break;
            }
        }
        Ok((items, revision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(prefix_end(b"/nomarch/"), b"/nomarch0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
