//! An object store view that shows queries only the files of the lake's current snapshot.
//!
//! DataFusion's `ListingTable` lists directories; the lake's truth is its commit log. This
//! wrapper answers listings from the snapshot itself, in memory (path, size and time of every
//! live file): files being written, replaced by compaction or left by a crashed flush are never
//! seen, every query reads one consistent snapshot, and planning never walks a directory tree
//! or sends a LIST to an object store, while `ListingTable` keeps its partition pruning and
//! statistics. Reads pass through to the real store, or for a local lake are read directly
//! ([`local_reads`](super::local_reads)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The live data files by store path.
pub type LiveFiles = Arc<RwLock<Arc<BTreeMap<String, ObjectMeta>>>>;

/// The filtering wrapper; everything but listing and local range reads passes through.
pub struct SnapshotStore {
    inner: Arc<dyn ObjectStore>,
    /// `inner` itself when the lake is a local directory.
    local: Option<Arc<LocalFileSystem>>,
    live: LiveFiles,
}

impl SnapshotStore {
    /// `inner` (also as `local` when it is a local directory), showing only the files of
    /// `live`.
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        local: Option<Arc<LocalFileSystem>>,
        live: LiveFiles,
    ) -> Self {
        Self { inner, local, live }
    }
}

impl fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotStore({})", self.inner)
    }
}

impl fmt::Display for SnapshotStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotStore({})", self.inner)
    }
}

/// The live files under `prefix` (a directory), in path order.
fn under<'a>(
    live: &'a BTreeMap<String, ObjectMeta>,
    prefix: Option<&Path>,
) -> impl Iterator<Item = &'a ObjectMeta> + 'a {
    let start = prefix.map_or_else(String::new, |p| format!("{p}/"));
    live.range(start.clone()..)
        .take_while(move |(k, _)| k.starts_with(&start))
        .map(|(_, m)| m)
}

#[async_trait]
impl ObjectStore for SnapshotStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        match &self.local {
            Some(fs) if super::local_reads::inline(ranges) => {
                super::local_reads::read_ranges(fs, location, ranges)
            }
            _ => self.inner.get_ranges(location, ranges).await,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let live = Arc::clone(&self.live.read().expect("not poisoned"));
        let metas: Vec<Result<ObjectMeta>> = under(&live, prefix).cloned().map(Ok).collect();
        futures::stream::iter(metas).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let live = Arc::clone(&self.live.read().expect("not poisoned"));
        let depth = prefix.map_or(0, |p| p.parts().count());
        let mut dirs = BTreeSet::new();
        let mut objects = Vec::new();
        for m in under(&live, prefix) {
            let parts: Vec<_> = m.location.parts().collect();
            if parts.len() == depth + 1 {
                objects.push(m.clone());
            } else if parts.len() > depth + 1 {
                dirs.insert(Path::from_iter(parts[..=depth].iter().cloned()));
            }
        }
        Ok(ListResult {
            common_prefixes: dirs.into_iter().collect(),
            objects,
        })
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
