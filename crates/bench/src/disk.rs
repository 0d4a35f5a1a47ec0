//! The raw disk beside the server: sequential fsync'd writes and sequential reads of one
//! file in the directory the user names (on the same file system as the server's drives).
//!
//! What each figure measures, since a page cache makes "raw read" easy to get wrong:
//! - *write, fsync at end*: buffered 4 MiB writes, then one `fsync` of the file and its
//!   directory; the clock stops after the fsync, so this is what the disk sustains.
//! - *write, fsync every 64 MiB*: the same with an `fsync` after every 64 MiB, the
//!   rhythm of a server that syncs each large object before it answers.
//! - *read, O_DIRECT*: 4 MiB reads with `O_DIRECT` (one request in flight), which bypass
//!   the page cache without any unsafe code: the buffer is aligned by slicing an
//!   over-allocated `Vec`. Where the file system refuses `O_DIRECT` this figure is absent.
//! - *read, after drop_caches*: only with `--drop-caches` (root): the clean page cache of
//!   the whole machine is dropped, then the file is read through the cache with readahead.
//! - *read, page cache*: the file read right after it was written, from memory; printed
//!   so the GET figures (whose data is usually still cached too) can be put in context.
//!
//! Every figure is the median of `--raw-repeats` runs (all runs are kept in the JSON),
//! the runs interleaved. A virtual disk may still be cached by its host; nothing inside
//! the guest can see that, but a wide spread between runs hints at it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::stats::mib_per_s;

/// Size of one write or read request.
pub const IO_BYTES: usize = 4 * 1024 * 1024;
/// The periodic-fsync variant syncs after this many bytes.
pub const FSYNC_EVERY_BYTES: u64 = 64 * 1024 * 1024;
/// `O_DIRECT` needs buffers, offsets and lengths aligned to the logical block size;
/// 4 KiB covers every common device.
const DIRECT_ALIGN_BYTES: usize = 4096;
const _: () = assert!(IO_BYTES.is_multiple_of(DIRECT_ALIGN_BYTES));
const _: () = assert!(FSYNC_EVERY_BYTES.is_multiple_of(IO_BYTES as u64));

const FILE_NAME: &str = ".bulwark-bench-raw.tmp";
const DROP_CACHES_PATH: &str = "/proc/sys/vm/drop_caches";

/// `O_DIRECT` from the Linux uapi headers; its value differs between architectures.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "x86")))]
const O_DIRECT: Option<i32> = Some(0o40000);
#[cfg(all(target_os = "linux", any(target_arch = "aarch64", target_arch = "arm")))]
const O_DIRECT: Option<i32> = Some(0o200000);
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64", target_arch = "arm")
)))]
const O_DIRECT: Option<i32> = None;

/// One raw figure: the median of its runs (a shared virtual disk varies a lot from one
/// run to the next), with every run kept.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: &'static str,
    pub bytes: u64,
    /// Seconds of the median run.
    pub seconds: f64,
    pub mib_per_s: f64,
    pub runs_mib_per_s: Vec<f64>,
}

impl Figure {
    /// The median run of `runs` (the upper median of an even count); `None` when empty.
    fn median(mut runs: Vec<Figure>) -> Option<Figure> {
        runs.sort_by(|a, b| a.mib_per_s.total_cmp(&b.mib_per_s));
        let all: Vec<f64> = runs.iter().map(|run| run.mib_per_s).collect();
        let middle = runs.len() / 2;
        let mut median = runs.into_iter().nth(middle)?;
        median.runs_mib_per_s = all;
        Some(median)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RawDisk {
    pub directory: PathBuf,
    pub write_fsync_end: Figure,
    pub write_fsync_every_64mib: Figure,
    pub read_direct: Option<Figure>,
    /// Why there is no O_DIRECT figure, when there is none.
    pub read_direct_error: Option<String>,
    pub read_after_drop_caches: Option<Figure>,
    pub read_page_cache: Figure,
}

impl RawDisk {
    /// The disk's fsync'd sequential write rate for the targets: the better of the two
    /// write figures, so the target is never lowered by a slow sync rhythm.
    pub fn write_mib_per_s(&self) -> f64 {
        self.write_fsync_end.mib_per_s.max(self.write_fsync_every_64mib.mib_per_s)
    }

    /// The disk's sequential read rate for the targets: the best figure that came from the
    /// disk rather than from memory, or `None` if every read was served from the cache.
    pub fn cold_read(&self) -> Option<&Figure> {
        [self.read_direct.as_ref(), self.read_after_drop_caches.as_ref()]
            .into_iter()
            .flatten()
            .max_by(|a, b| a.mib_per_s.total_cmp(&b.mib_per_s))
    }

    pub fn figures(&self) -> Vec<&Figure> {
        let mut figures = vec![&self.write_fsync_end, &self.write_fsync_every_64mib];
        figures.extend(self.read_direct.as_ref());
        figures.extend(self.read_after_drop_caches.as_ref());
        figures.push(&self.read_page_cache);
        figures
    }
}

/// Runs every raw figure `repeats` times on a file of `bytes` (rounded down to whole 4 MiB
/// requests) in `directory`, and removes the file. Blocking: call it off the async runtime.
pub fn measure(
    directory: &Path,
    bytes: u64,
    repeats: usize,
    pattern: &[u8],
    drop_caches: bool,
) -> Result<RawDisk, String> {
    assert!(pattern.len() >= IO_BYTES, "the write pattern must cover one request");
    assert!(repeats > 0, "at least one run per figure");
    let bytes = bytes - bytes % IO_BYTES as u64;
    assert!(bytes > 0, "the raw file must hold at least one request");
    std::fs::create_dir_all(directory).map_err(|e| format!("create {}: {e}", directory.display()))?;
    let path = directory.join(FILE_NAME);
    let mut runs = Vec::with_capacity(repeats);
    let mut result = Ok(());
    for _ in 0..repeats {
        match measure_once(&path, bytes, pattern, drop_caches) {
            Ok(run) => runs.push(run),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Leave nothing behind in the server's data directory, whatever happened.
    let _ = std::fs::remove_file(&path);
    result?;
    combine(directory, runs).ok_or_else(|| "no raw disk run completed".to_owned())
}

/// The figures of one run; the runs are interleaved so that a slow spell of the disk
/// touches every figure alike.
struct Run {
    write_fsync_end: Figure,
    write_fsync_every_64mib: Figure,
    read_direct: Result<Figure, String>,
    read_after_drop_caches: Option<Figure>,
    read_page_cache: Figure,
}

fn measure_once(path: &Path, bytes: u64, pattern: &[u8], drop_caches: bool) -> Result<Run, String> {
    settle();
    let write_fsync_every_64mib = write("write, fsync every 64 MiB", path, bytes, pattern, Some(FSYNC_EVERY_BYTES))?;
    // The file that the reads use is the last one written, so it is still in the cache
    // (clean, after the fsync) for the page-cache figure.
    settle();
    let write_fsync_end = write("write, fsync at end", path, bytes, pattern, None)?;
    let read_direct = read_direct(path);
    let read_page_cache = read_buffered("read, page cache (memory)", path)?;
    let read_after_drop_caches = if drop_caches {
        drop_page_cache()?;
        Some(read_buffered("read, after drop_caches", path)?)
    } else {
        None
    };
    Ok(Run { write_fsync_end, write_fsync_every_64mib, read_direct, read_after_drop_caches, read_page_cache })
}

fn combine(directory: &Path, runs: Vec<Run>) -> Option<RawDisk> {
    let mut write_fsync_end = Vec::new();
    let mut write_fsync_every_64mib = Vec::new();
    let mut read_direct = Vec::new();
    let mut read_direct_error = None;
    let mut read_after_drop_caches = Vec::new();
    let mut read_page_cache = Vec::new();
    for run in runs {
        write_fsync_end.push(run.write_fsync_end);
        write_fsync_every_64mib.push(run.write_fsync_every_64mib);
        match run.read_direct {
            Ok(figure) => read_direct.push(figure),
            Err(e) => read_direct_error = Some(e),
        }
        read_after_drop_caches.extend(run.read_after_drop_caches);
        read_page_cache.push(run.read_page_cache);
    }
    Some(RawDisk {
        directory: directory.to_path_buf(),
        write_fsync_end: Figure::median(write_fsync_end)?,
        write_fsync_every_64mib: Figure::median(write_fsync_every_64mib)?,
        // A figure with a failed run would be the median of fewer runs: leave it out.
        read_direct: if read_direct_error.is_none() { Figure::median(read_direct) } else { None },
        read_direct_error,
        read_after_drop_caches: Figure::median(read_after_drop_caches),
        read_page_cache: Figure::median(read_page_cache)?,
    })
}

fn write(
    name: &'static str,
    path: &Path,
    bytes: u64,
    pattern: &[u8],
    fsync_every_bytes: Option<u64>,
) -> Result<Figure, String> {
    let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    let _ = std::fs::remove_file(path);
    let start = Instant::now();
    let mut file = File::create(path).map_err(|e| fail("create", e))?;
    let mut written: u64 = 0;
    while written < bytes {
        // Rotate through the random pattern so consecutive requests differ.
        let offset = (written as usize) % (pattern.len() - IO_BYTES + 1);
        file.write_all(&pattern[offset..offset + IO_BYTES]).map_err(|e| fail("write", e))?;
        written += IO_BYTES as u64;
        if let Some(every) = fsync_every_bytes
            && written.is_multiple_of(every)
        {
            file.sync_all().map_err(|e| fail("fsync", e))?;
        }
    }
    file.sync_all().map_err(|e| fail("fsync", e))?;
    sync_directory(path)?;
    Ok(figure(name, written, start))
}

fn sync_directory(path: &Path) -> Result<(), String> {
    let directory = path.parent().unwrap_or(Path::new("."));
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| format!("fsync directory {}: {e}", directory.display()))
}

fn read_buffered(name: &'static str, path: &Path) -> Result<Figure, String> {
    let start = Instant::now();
    let mut file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let mut buffer = vec![0u8; IO_BYTES];
    let total = read_to_end(&mut file, &mut buffer).map_err(|e| format!("read {}: {e}", path.display()))?;
    Ok(figure(name, total, start))
}

fn read_direct(path: &Path) -> Result<Figure, String> {
    let Some(flag) = O_DIRECT else {
        return Err("O_DIRECT is not known on this platform".to_owned());
    };
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, flag);
    #[cfg(not(target_os = "linux"))]
    let _ = flag;
    // Over-allocate and slice at the first aligned address: an aligned buffer, no unsafe.
    let mut storage = vec![0u8; IO_BYTES + DIRECT_ALIGN_BYTES];
    let offset = storage.as_ptr().align_offset(DIRECT_ALIGN_BYTES);
    assert!(offset < DIRECT_ALIGN_BYTES, "align_offset of a byte pointer is always reachable");
    let buffer = &mut storage[offset..offset + IO_BYTES];
    let start = Instant::now();
    let mut file = options.open(path).map_err(|e| format!("open {} with O_DIRECT: {e}", path.display()))?;
    let total = read_to_end(&mut file, buffer).map_err(|e| format!("O_DIRECT read of {}: {e}", path.display()))?;
    Ok(figure("read, O_DIRECT (disk)", total, start))
}

fn read_to_end(file: &mut File, buffer: &mut [u8]) -> std::io::Result<u64> {
    let mut total: u64 = 0;
    loop {
        match file.read(buffer) {
            Ok(0) => return Ok(total),
            Ok(count) => total += count as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Drops the machine's clean page cache (`echo 1 > /proc/sys/vm/drop_caches`), so the
/// next reads come from the disk. Dirty pages are not dropped, hence the data being read
/// must have been fsynced, as everything the benchmark and the server write is.
/// Flushes every dirty page of the machine to its disk and waits for it (`sync(2)`). Run
/// before every write measurement (each PUT cell, each raw write run), so that it pays for
/// its own writes and not for the writeback of what the measurement before it wrote: after
/// a cell of small PUTs the disk can still be busy for seconds, and a large-PUT cell right
/// after it then measured a third of what it does on a quiet disk.
pub fn settle() {
    rustix::fs::sync();
}

pub fn drop_page_cache() -> Result<(), String> {
    std::fs::write(DROP_CACHES_PATH, "1")
        .map_err(|e| format!("--drop-caches: cannot write {DROP_CACHES_PATH} (needs root): {e}"))
}

fn figure(name: &'static str, bytes: u64, start: Instant) -> Figure {
    let elapsed = start.elapsed();
    Figure {
        name,
        bytes,
        seconds: elapsed.as_secs_f64(),
        mib_per_s: mib_per_s(bytes, elapsed),
        runs_mib_per_s: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_figures_cover_the_whole_file_and_leave_nothing_behind() {
        let directory = std::env::temp_dir().join(format!("bulwark-bench-test-{}", std::process::id()));
        let pattern: Vec<u8> = (0..IO_BYTES * 2).map(|i| (i * 7 + i / 4096) as u8).collect();
        let raw = measure(&directory, 3 * IO_BYTES as u64 + 5, 3, &pattern, false).expect("measure the raw disk");
        for figure in raw.figures() {
            assert_eq!(figure.bytes, 3 * IO_BYTES as u64, "{}", figure.name);
            assert_eq!(figure.runs_mib_per_s.len(), 3, "{}", figure.name);
            assert!(figure.runs_mib_per_s.is_sorted(), "{}", figure.name);
        }
        assert!(!directory.join(FILE_NAME).exists());
        let _ = std::fs::remove_dir(&directory);
    }
}
