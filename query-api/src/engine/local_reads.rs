//! Reads of a local lake's files on the calling thread.
//!
//! `object_store`'s local file system hands every read to tokio's blocking pool: a thread
//! wake-up and two context switches per read, for reads that the page cache answers in a few
//! microseconds. A query opens every file it keeps after pruning and reads a few column chunks
//! of each, so at 48 small files the hand-offs were a seventh of a filtered count's time. Lake
//! files never change once written (a rewrite has a new path), so a positional read of the
//! file is the whole of what the store does. Large reads still go to the pool
//! ([`INLINE_READ_MAX`]): a cold read of many megabytes should not hold a query thread.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{Error, Result};

/// The most bytes one call reads on the calling thread.
pub const INLINE_READ_MAX: u64 = 8 * 1024 * 1024;

/// Whether `ranges` are small enough to read on the calling thread.
pub fn inline(ranges: &[Range<u64>]) -> bool {
    ranges
        .iter()
        .map(|r| r.end.saturating_sub(r.start))
        .sum::<u64>()
        <= INLINE_READ_MAX
}

/// The bytes of `ranges` of the file at `location`, read with positional reads.
///
/// # Errors
/// `NotFound` when the file is missing; otherwise the I/O error, as `LocalFileSystem` reports
/// them (a range past the end of the file is one).
pub fn read_ranges(
    fs: &LocalFileSystem,
    location: &Path,
    ranges: &[Range<u64>],
) -> Result<Vec<Bytes>> {
    let path = fs.path_to_filesystem(location)?;
    let failed = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                path: path.display().to_string(),
                source: source.into(),
            }
        } else {
            Error::Generic {
                store: "LocalFileSystem",
                source: format!("{}: {source}", path.display()).into(),
            }
        }
    };
    let file = File::open(&path).map_err(failed)?;
    ranges
        .iter()
        .map(|r| {
            let mut buf = vec![0_u8; usize::try_from(r.end.saturating_sub(r.start)).unwrap_or(0)];
            file.read_exact_at(&mut buf, r.start).map_err(failed)?;
            Ok(Bytes::from(buf))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStore;

    #[tokio::test]
    async fn reads_the_same_bytes_as_the_store_and_its_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a.parquet");
        let content: Vec<u8> = (0..10_000_u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &content).expect("write");
        let fs = LocalFileSystem::new();
        let location = Path::from_filesystem_path(&file).expect("path");
        let ranges = [0..10, 9_990..10_000, 4_000..4_000, 123..7_777];
        let ours = read_ranges(&fs, &location, &ranges).expect("read");
        let theirs = fs.get_ranges(&location, &ranges).await.expect("store read");
        assert_eq!(ours, theirs);
        assert_eq!(&ours[3][..], &content[123..7_777]);

        let past_end = read_ranges(&fs, &location, std::slice::from_ref(&(9_000..10_001)));
        assert!(past_end.is_err(), "a range past the end is an error");
        let missing = Path::from_filesystem_path(dir.path())
            .expect("dir")
            .join("gone.parquet");
        assert!(matches!(
            read_ranges(&fs, &missing, std::slice::from_ref(&(0..1))),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn large_reads_are_left_to_the_pool() {
        assert!(inline(&[0..1024, 0..INLINE_READ_MAX - 1024]));
        assert!(!inline(&[0..INLINE_READ_MAX, 0..1]));
    }
}
