//! An object store view that shows queries only the files of the lake's current snapshot.
//!
//! DataFusion's `ListingTable` lists directories; the lake's truth is its commit log. Wrapping
//! the store so that listings leave out data files the snapshot does not hold (files being
//! written, files replaced by compaction, files of a crashed flush) makes every query read one
//! consistent snapshot, while `ListingTable` keeps its partition pruning and statistics.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Store paths of the live data files.
pub type LiveFiles = Arc<RwLock<Arc<HashSet<String>>>>;

/// The filtering wrapper; everything but listing passes through.
pub struct SnapshotStore {
    inner: Arc<dyn ObjectStore>,
    live: LiveFiles,
}

impl SnapshotStore {
    pub fn new(inner: Arc<dyn ObjectStore>, live: LiveFiles) -> Self {
        Self { inner, live }
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

fn visible(live: &HashSet<String>, meta: &ObjectMeta) -> bool {
    let p = meta.location.as_ref();
    !p.ends_with(".parquet") || live.contains(p)
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
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let live = Arc::clone(&self.live.read().expect("not poisoned"));
        self.inner
            .list(prefix)
            .filter(move |r| futures::future::ready(r.as_ref().map_or(true, |m| visible(&live, m))))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let live = Arc::clone(&self.live.read().expect("not poisoned"));
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects.retain(|m| visible(&live, m));
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
