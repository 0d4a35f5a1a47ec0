//! Buffers recycled between requests: the write path's blocks, and the
//! pieces the read path reads from blob files.
//!
//! A block of a PUT is assembled in a 2 MiB buffer that then travels, shared,
//! to the MD5 thread and to six drive writers, and is freed by whichever drops
//! it last. Freed that way, the megabytes go back to the kernel (it is above
//! the allocator's mmap threshold, or gets trimmed off a thread's arena) and
//! the next block pays for it again: page faults and zeroing on every page,
//! in the request task. Under 16 concurrent large PUTs that churn cost more
//! than a third of the throughput (233 vs 380 MiB/s). So blocks, sealed
//! blocks and the parity of each block are handed out as [`Bytes`] whose
//! owner returns the buffer here when the last view is dropped, and the next
//! block reuses it, pages already mapped.
//!
//! The pool keeps at most [`POOLED_BUFFERS_MAX`] buffers (blocks of 2 MiB and
//! parities of 1 MiB: at most 128 MiB): enough for
//! the blocks in flight of several concurrent writes; beyond that, buffers are
//! freed as before. Memory per request stays bounded by the write path's
//! channels, not by the pool.
//!
//! Reads have their own pool, [`PIECES`]: a GET reads every block as K
//! pieces (512 KiB with 2 MiB blocks and K = 4) on blocking threads, and the
//! pieces are dropped on another thread once sent; allocated afresh, they
//! churn pages and spread over the allocator's per-thread arenas. Pieces of
//! large blobs are read with `O_DIRECT` into buffers of [`DIRECT`], which
//! keep their contents between uses: the disk writes into them, so they need
//! no zeroing and no unsafe code to be read into, only once when first made.

use std::sync::Mutex;

use bytes::Bytes;

/// Buffers the write path's pool keeps for reuse.
pub const POOLED_BUFFERS_MAX: usize = 64;

/// The pool of the write path's blocks.
pub static BLOCKS: Pool = Pool::new(POOLED_BUFFERS_MAX);

/// Piece buffers the read path's pool keeps (at most 64 MiB of 512 KiB
/// pieces: the blocks in flight of 16 concurrent GETs).
pub const POOLED_PIECES_MAX: usize = 128;

/// The pool of the pieces blob reads return.
pub static PIECES: Pool = Pool::new(POOLED_PIECES_MAX);

/// The pool of the buffers `O_DIRECT` reads fill (kept filled: see
/// [`Pool::take_filled`]).
pub static DIRECT: Pool = Pool::filled(POOLED_PIECES_MAX);

pub struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
    max: usize,
    /// Buffers come back with their contents instead of emptied.
    keeps_contents: bool,
}

impl Pool {
    pub const fn new(max: usize) -> Pool {
        Pool { free: Mutex::new(Vec::new()), max, keeps_contents: false }
    }

    /// A pool whose buffers keep their length (and stale contents) when they
    /// come back; take them with [`Pool::take_filled`].
    pub const fn filled(max: usize) -> Pool {
        Pool { free: Mutex::new(Vec::new()), max, keeps_contents: true }
    }

    /// A buffer at least `len` bytes long whose bytes are whatever was last
    /// in it (zero where it never held anything): to be overwritten, as a
    /// read overwrites it. Only a new buffer, or the part of a recycled one
    /// beyond its old length, is zeroed.
    pub fn take_filled(&self, len: usize) -> Vec<u8> {
        let mut buffer = self.take(len);
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        buffer
    }

    /// An empty buffer with room for `capacity` bytes: a recycled one of
    /// about that size (up to twice) when there is one, else a new one.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let recycled = self.free.lock().ok().and_then(|mut free| {
            let fits = |buffer: &Vec<u8>| buffer.capacity() >= capacity && buffer.capacity() / 2 <= capacity;
            let index = free.iter().rposition(fits)?;
            Some(free.swap_remove(index))
        });
        recycled.unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// Shares `buffer` as [`Bytes`]; the buffer comes back to this pool when
    /// the last view of it is dropped.
    pub fn freeze(&'static self, buffer: Vec<u8>) -> Bytes {
        Bytes::from_owner(Recycled { buffer, pool: self })
    }

    fn give(&self, mut buffer: Vec<u8>) {
        if !self.keeps_contents {
            buffer.clear();
        }
        if let Ok(mut free) = self.free.lock()
            && free.len() < self.max
        {
            free.push(buffer);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.free.lock().map(|free| free.len()).unwrap_or_default()
    }
}

struct Recycled {
    buffer: Vec<u8>,
    pool: &'static Pool,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(max: usize) -> &'static Pool {
        Box::leak(Box::new(Pool::new(max)))
    }

    #[test]
    fn a_buffer_returns_when_its_last_view_is_dropped_and_is_reused_with_its_pages() {
        let pool = pool(4);
        let capacity = 1024 * 1024;
        let mut buffer = pool.take(capacity);
        assert!(buffer.capacity() >= capacity && buffer.is_empty());
        buffer.extend((0..capacity).map(|i| i as u8));
        let address = buffer.as_ptr();
        let block = pool.freeze(buffer);
        assert_eq!(block.len(), capacity);
        assert_eq!(block[1000], (1000 % 256) as u8);
        let piece = block.slice(10..20);
        drop(block);
        assert_eq!(pool.len(), 0, "a view still holds it");
        assert_eq!(&piece[..], &(10..20u8).collect::<Vec<_>>()[..], "a view outlives the block");
        drop(piece);
        assert_eq!(pool.len(), 1, "back once the last view is gone");
        assert!(pool.take(4 * capacity).capacity() >= 4 * capacity, "too small: a new one");
        assert!(pool.take(capacity / 4).capacity() < capacity, "far too big: not handed out");
        let again = pool.take(capacity);
        assert!(again.is_empty(), "handed out empty");
        assert_eq!(again.as_ptr(), address, "the same allocation again");
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn a_filled_pool_hands_back_its_buffers_with_their_length_and_zeroes_only_new_bytes() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::filled(4)));
        let fresh = pool.take_filled(8192);
        assert!(fresh.len() >= 8192 && fresh.iter().all(|&b| b == 0), "a new buffer is zeroed");
        let mut buffer = fresh;
        buffer[..4].copy_from_slice(b"read");
        let address = buffer.as_ptr();
        drop(pool.freeze(buffer));
        let again = pool.take_filled(6000);
        assert_eq!(again.as_ptr(), address, "reused");
        assert!(again.len() >= 8192, "kept its length");
        assert_eq!(&again[..4], b"read", "not zeroed again");
        drop(pool.freeze(again));
        let longer = pool.take_filled(9000);
        assert_ne!(longer.as_ptr(), address, "too short: a new buffer");
        assert!(longer.len() >= 9000 && longer.iter().all(|&b| b == 0));
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_of_buffers() {
        let pool = pool(3);
        let blocks: Vec<Bytes> = (0..10).map(|_| pool.freeze(pool.take(4096))).collect();
        drop(blocks);
        assert_eq!(pool.len(), 3);
    }
}
