//! The MD5 of every large body being written, hashed side by side.
//!
//! S3 defines a single-part object's ETag as the MD5 of its body, so every
//! PUT hashes every byte with MD5, the costliest hash of the write path.
//! One MD5 stream cannot use more than one core, and cannot go faster than
//! its chain of dependent steps; but the streams of concurrent PUTs are
//! independent, and a vector kernel ([`bulwark_crypto::md5_lanes`]) steps up
//! to 16 of them with one instruction. So instead of a thread per body, a
//! few hashing threads take the blocks of all bodies: whenever one looks for
//! work it takes the next block of every stream that has one and hashes them
//! together. With one body in flight that is the scalar code as before; with
//! many it is several times less CPU for the same bytes (16 streams hash at
//! about 9.5× the rate of one on the development machine).
//!
//! A round costs the same whether one lane or sixteen are busy, so a thread
//! lets blocks gather before it hashes: it starts a round as soon as every
//! open stream has a block queued, or a stream is finishing (its PUT waits
//! for the digest), or a stream's queue is nearly full (its writer would soon
//! wait), or the oldest block has waited [`ROUND_WAIT_MAX`]. A single body
//! therefore never waits; concurrent bodies are hashed a block of each at a
//! time. Memory stays bounded: a stream holds at most
//! [`BLOCKS_QUEUED_PER_STREAM_MAX`] blocks before its writer waits.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bulwark_crypto::Md5State;
use bulwark_crypto::md5_lanes::Kernel;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Blocks a stream may have queued before its writer waits for the hashing.
pub(crate) const BLOCKS_QUEUED_PER_STREAM_MAX: usize = 4;

/// The longest a queued block waits for other streams' blocks to share its
/// round. Blocks wait only while their writer has room to go on, so this
/// costs no throughput; it bounds how long a block stays in memory.
const ROUND_WAIT_MAX: Duration = Duration::from_millis(50);

/// A stream with this many blocks queued starts a round at once, leaving its
/// writer room for one more block.
const QUEUE_START_ROUND: usize = BLOCKS_QUEUED_PER_STREAM_MAX - 1;

/// Cores per hashing thread. One thread with the 16-lane kernel hashes
/// several GB/s, more than the network and disks of a machine this size
/// deliver; larger machines get more threads.
const CORES_PER_THREAD: usize = 16;

/// The process's hashing threads (started on first use).
pub(crate) static MD5_LANES: LazyLock<Md5Lanes> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Md5Lanes::start(Kernel::detect(), cores.div_ceil(CORES_PER_THREAD))
});

/// Blocks hashed in a round with other streams' blocks, and alone; for the
/// metrics (`bulwark_md5_blocks_total`).
static BLOCKS_SHARED: AtomicU64 = AtomicU64::new(0);
static BLOCKS_ALONE: AtomicU64 = AtomicU64::new(0);

/// Blocks the hashing threads have hashed side by side with other bodies'
/// blocks, and alone, since the process started.
pub fn blocks_hashed() -> (u64, u64) {
    (BLOCKS_SHARED.load(Ordering::Relaxed), BLOCKS_ALONE.load(Ordering::Relaxed))
}

pub(crate) struct Md5Lanes {
    workers: Vec<Arc<Worker>>,
    next_stream: AtomicU64,
}

struct Worker {
    kernel: Kernel,
    /// Set when the [`Md5Lanes`] is dropped (the thread ends) or the thread
    /// died: no stream is taken any more.
    closed: AtomicBool,
    streams: Mutex<HashMap<u64, Slot>>,
    work: Condvar,
}

struct Slot {
    /// `None` while a round is hashing this stream.
    state: Option<Md5State>,
    /// Blocks not hashed yet, with the time they were queued.
    queued: VecDeque<(Bytes, OwnedSemaphorePermit, Instant)>,
    /// Set by [`Md5Stream::finish`]: send the digest once the queue is empty.
    finish: Option<oneshot::Sender<[u8; 16]>>,
}

impl Slot {
    fn has_work(&self) -> bool {
        self.state.is_some() && (!self.queued.is_empty() || self.finish.is_some())
    }
}

impl Md5Lanes {
    pub(crate) fn start(kernel: Kernel, threads: usize) -> Md5Lanes {
        let workers = (0..threads.max(1))
            .map(|n| {
                let worker = Arc::new(Worker {
                    kernel,
                    closed: AtomicBool::new(false),
                    streams: Mutex::new(HashMap::new()),
                    work: Condvar::new(),
                });
                let running = worker.clone();
                std::thread::Builder::new()
                    .name(format!("md5-lanes-{n}"))
                    .spawn(move || running.run())
                    .expect("spawning an MD5 hashing thread");
                worker
            })
            .collect();
        Md5Lanes { workers, next_stream: AtomicU64::new(0) }
    }

    /// A stream that continues hashing from `state`.
    pub(crate) fn stream(&self, state: Md5State) -> Md5Stream {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let worker = self.workers[(id % self.workers.len() as u64) as usize].clone();
        let mut streams = worker.lock();
        // A stream without a slot hashes nothing and finishes with `None`
        // (the request fails) rather than waiting for a thread that is gone.
        if !worker.closed.load(Ordering::Acquire) {
            streams.insert(id, Slot { state: Some(state), queued: VecDeque::new(), finish: None });
        }
        drop(streams);
        Md5Stream { worker, id, space: Arc::new(Semaphore::new(BLOCKS_QUEUED_PER_STREAM_MAX)) }
    }
}

impl Drop for Md5Lanes {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.closed.store(true, Ordering::Release);
            // Under the lock, so the thread is either before its check or
            // already waiting.
            let _streams = worker.lock();
            worker.work.notify_all();
        }
    }
}

impl Worker {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Slot>> {
        // A panic while holding the lock cannot leave a slot half-updated in
        // a way later rounds would misread (slots are replaced whole), so a
        // poisoned lock is still usable.
        self.streams.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether to start a round now (see the module's documentation).
    fn round_due(&self, streams: &HashMap<u64, Slot>) -> Due {
        let mut ready = 0;
        let mut oldest: Option<Instant> = None;
        for slot in streams.values() {
            if !slot.has_work() {
                continue;
            }
            if slot.finish.is_some() || slot.queued.len() >= QUEUE_START_ROUND {
                return Due::Now;
            }
            ready += 1;
            if let Some(&(_, _, queued)) = slot.queued.front() {
                oldest = Some(oldest.map_or(queued, |o| o.min(queued)));
            }
        }
        let Some(oldest) = oldest else { return Due::Idle };
        if ready >= streams.len().min(self.kernel.lanes()) {
            return Due::Now;
        }
        match ROUND_WAIT_MAX.checked_sub(oldest.elapsed()) {
            Some(wait) if !wait.is_zero() => Due::In(wait),
            _ => Due::Now,
        }
    }

    fn run(&self) {
        /// If the thread panics, every waiting stream (and every later one)
        /// finishes with `None` instead of waiting forever.
        struct OnPanic<'a>(&'a Worker);
        impl Drop for OnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let mut streams = self.0.lock();
                    self.0.closed.store(true, Ordering::Release);
                    streams.clear();
                }
            }
        }
        let _on_panic = OnPanic(self);
        let mut round: Vec<(u64, Md5State, Bytes, OwnedSemaphorePermit)> = Vec::new();
        // (Streams whose state is out in a round do not count as open in
        // `round_due`; there are none between rounds.)
        loop {
            let mut finished: Vec<(oneshot::Sender<[u8; 16]>, [u8; 16])> = Vec::new();
            {
                let mut streams = self.lock();
                loop {
                    match self.round_due(&streams) {
                        Due::Now => break,
                        Due::In(wait) => {
                            streams = self.work.wait_timeout(streams, wait).unwrap_or_else(|p| p.into_inner()).0;
                        }
                        Due::Idle if self.closed.load(Ordering::Acquire) => return,
                        Due::Idle => {
                            streams = self.work.wait(streams).unwrap_or_else(|poisoned| poisoned.into_inner());
                        }
                    }
                }
                let mut done = Vec::new();
                for (&id, slot) in streams.iter_mut() {
                    if !slot.has_work() {
                        continue;
                    }
                    if let Some((block, permit, _)) = slot.queued.pop_front() {
                        let state = slot.state.take().expect("has_work checked the state is here");
                        round.push((id, state, block, permit));
                    } else if let (Some(reply), Some(state)) = (slot.finish.take(), slot.state.as_ref()) {
                        finished.push((reply, state.finalize()));
                        done.push(id);
                    }
                }
                for id in done {
                    streams.remove(&id);
                }
            }
            for (reply, digest) in finished {
                // The writer may have given up on the request; nothing to do.
                let _ = reply.send(digest);
            }
            if round.is_empty() {
                continue;
            }
            let counter = if round.len() > 1 { &BLOCKS_SHARED } else { &BLOCKS_ALONE };
            counter.fetch_add(round.len() as u64, Ordering::Relaxed);
            {
                let mut lanes: Vec<(&mut Md5State, &[u8])> =
                    round.iter_mut().map(|(_, state, block, _)| (state, &block[..])).collect();
                Md5State::update_many(self.kernel, &mut lanes);
            }
            let mut streams = self.lock();
            for (id, state, _block, _permit) in round.drain(..) {
                // A stream dropped meanwhile has no slot any more.
                if let Some(slot) = streams.get_mut(&id) {
                    slot.state = Some(state);
                }
            }
        }
    }
}

enum Due {
    Now,
    In(Duration),
    Idle,
}

/// One body's MD5, hashed by the [`Md5Lanes`] threads in the order its
/// blocks are pushed.
pub(crate) struct Md5Stream {
    worker: Arc<Worker>,
    id: u64,
    space: Arc<Semaphore>,
}

impl Md5Stream {
    /// Queues the next block; waits while the stream already has
    /// [`BLOCKS_QUEUED_PER_STREAM_MAX`] blocks queued.
    pub(crate) async fn push(&self, block: Bytes) {
        let Ok(permit) = self.space.clone().acquire_owned().await else { return };
        let mut streams = self.worker.lock();
        if let Some(slot) = streams.get_mut(&self.id) {
            slot.queued.push_back((block, permit, Instant::now()));
        }
        drop(streams);
        self.worker.work.notify_one();
    }

    /// The digest of every block pushed, once they are all hashed.
    pub(crate) async fn finish(self) -> Option<[u8; 16]> {
        let (reply, digest) = oneshot::channel();
        {
            let mut streams = self.worker.lock();
            streams.get_mut(&self.id)?.finish = Some(reply);
        }
        self.worker.work.notify_one();
        // The worker removes the slot when it answers; dropping `self`
        // afterwards finds nothing to remove.
        digest.await.ok()
    }
}

impl Drop for Md5Stream {
    /// A body abandoned mid-way (a failed or cancelled request) frees its
    /// slot and queued blocks.
    fn drop(&mut self) {
        self.worker.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_crypto::Md5;

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    /// Many bodies pushed concurrently, in blocks of unequal sizes, each end
    /// with the MD5 of that body alone, on every kernel this CPU has.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_streams_each_get_the_md5_of_their_own_body() {
        for kernel in [Kernel::Avx512, Kernel::Avx2, Kernel::Scalar] {
            if !kernel.supported() {
                continue;
            }
            let lanes = Arc::new(Md5Lanes::start(kernel, 2));
            let tasks: Vec<_> = (0..24)
                .map(|n| {
                    let lanes = lanes.clone();
                    tokio::spawn(async move {
                        let data = body(100_000 + n * 4_099, n as u8);
                        let mut first = Md5State::new();
                        first.update(&data[..1_000]);
                        let stream = lanes.stream(first);
                        for chunk in data[1_000..].chunks(8_192 + n * 64) {
                            stream.push(Bytes::copy_from_slice(chunk)).await;
                            tokio::task::yield_now().await;
                        }
                        (stream.finish().await, Md5::digest(&data))
                    })
                })
                .collect();
            for task in tasks {
                let (got, expected) = task.await.expect("hashing task");
                assert_eq!(got, Some(expected), "{kernel:?}");
            }
        }
    }

    /// A stream dropped with blocks still queued leaves nothing behind, and
    /// the threads go on serving other streams.
    #[tokio::test]
    async fn an_abandoned_stream_frees_its_slot() {
        let lanes = Md5Lanes::start(Kernel::detect(), 1);
        let abandoned = lanes.stream(Md5State::new());
        for _ in 0..BLOCKS_QUEUED_PER_STREAM_MAX {
            abandoned.push(Bytes::from(vec![7u8; 1 << 16])).await;
        }
        drop(abandoned);
        let kept = lanes.stream(Md5State::new());
        kept.push(Bytes::from_static(b"abc")).await;
        assert_eq!(kept.finish().await, Some(Md5::digest(b"abc")));
        assert!(lanes.workers[0].lock().is_empty(), "no slot is left behind");
    }

    /// Once the thread is gone (dropped service, or a panic that cleared its
    /// streams), a new stream finishes with no digest at once: the request
    /// fails instead of hanging.
    #[tokio::test]
    async fn a_stream_of_a_stopped_thread_finishes_with_no_digest() {
        let lanes = Md5Lanes::start(Kernel::detect(), 1);
        lanes.workers[0].closed.store(true, Ordering::Release);
        let stream = lanes.stream(Md5State::new());
        stream.push(Bytes::from_static(b"abc")).await;
        let finished = tokio::time::timeout(Duration::from_secs(5), stream.finish()).await;
        assert_eq!(finished.expect("finish does not wait"), None);
    }
}
