//! The write path: hash the body while cutting it into blocks, erasure-code
//! each block and stream the framed pieces to every usable drive in parallel.
//!
//! Memory is bounded per request: one block being assembled, plus at most
//! `PIECES_IN_FLIGHT_MAX` framed pieces queued per drive. A drive that fails
//! is dropped from the write (its partial blob aborted); the write continues
//! while the remaining drives can still satisfy the write rule, and fails
//! with `InsufficientDrives` as soon as they cannot.

use std::collections::VecDeque;
use std::sync::Arc;

use bulwark_crypto::Md5State;
use bulwark_erasure::{self as erasure, Geometry};
use bulwark_storage::{BlobId, Drive};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::checksum::{self, ChecksumAlgorithm};
use crate::md5_lanes::{self, Md5Stream};
use crate::set::ErasureSet;
use crate::{ByteStream, Error, Result};

/// Framed pieces queued per drive before the writer waits for that drive.
const PIECES_IN_FLIGHT_MAX: usize = 4;

/// Reads a body stream in blocks, hashing everything it hands out.
/// The memory page, for laying out blocks and parity where the drives can
/// write them from (see [`BodyReader::lay_out_for_shards`]).
const PAGE_BYTES: usize = 4096;

/// A pooled buffer of at least `len` bytes after `phase`-placing padding:
/// the buffer and how many bytes into it data starts at `phase` within a
/// page (an allocation is not page-aligned; the padding makes up for it).
fn take_at_phase(len: usize, phase: usize) -> (Vec<u8>, usize) {
    let buffer = bulwark_storage::buffers::BLOCKS.take(len + PAGE_BYTES);
    let pad = (phase + PAGE_BYTES - buffer.as_ptr() as usize % PAGE_BYTES) % PAGE_BYTES;
    (buffer, pad)
}

pub(crate) struct BodyReader {
    stream: ByteStream,
    /// The block being assembled (a pooled buffer, see [`crate::buffers`]).
    pending: Vec<u8>,
    /// The rest of a chunk that did not fit in the last block.
    leftover: Option<Bytes>,
    done: bool,
    hashing: Hashing,
    total: u64,
    limit: u64,
    /// Shard bytes per block (pieces and their hashes), when blocks are to be
    /// laid out for the drives (see [`BodyReader::lay_out_for_shards`]).
    shard_stride: Option<u64>,
    /// Blocks handed out so far.
    blocks_out: u64,
    /// Bytes at the start of `pending` that are not the block's.
    pad: usize,
}

/// MD5 and checksums of everything handed out. The first block is hashed in
/// the request task (small objects never pay for a thread hop). From the
/// second block on, hashing runs beside erasure coding and the drive writes:
/// the MD5 on the shared hashing threads, which hash the blocks of concurrent
/// bodies side by side (see [`crate::md5_lanes`]), and the checksums, if any
/// were asked for, on a blocking thread of this body's own.
enum Hashing {
    Inline(Hashers),
    Offloaded {
        md5: Option<Md5Stream>,
        checksums: Option<(mpsc::Sender<Bytes>, JoinHandle<Checksums>)>,
    },
    /// Everything handed out is hashed ([`BodyReader::settle`]).
    Settled(Result<Digests>),
    Poisoned,
}

type Checksums = Vec<(ChecksumAlgorithm, checksum::Hasher)>;

struct Hashers {
    /// `None` when nothing needs the MD5 (an encrypted object's ETag is
    /// random and no Content-MD5 was sent): it is the costliest hash.
    md5: Option<Md5State>,
    checksums: Checksums,
}

impl Hashers {
    fn update(&mut self, block: &[u8]) {
        if let Some(md5) = &mut self.md5 {
            md5.update(block);
        }
        for (_, hasher) in &mut self.checksums {
            hasher.update(block);
        }
    }
}

/// Blocks queued for the checksum thread before the reader waits for it
/// (the same bound as the MD5's queue).
const HASH_BLOCKS_IN_FLIGHT_MAX: usize = md5_lanes::BLOCKS_QUEUED_PER_STREAM_MAX;

impl BodyReader {
    /// Reads at most `limit` bytes, computing the given checksums and, if
    /// `md5`, the MD5 in the same pass (the body is never read twice).
    pub fn new(stream: ByteStream, limit: u64, algorithms: &[ChecksumAlgorithm], md5: bool) -> BodyReader {
        let mut checksums: Vec<(ChecksumAlgorithm, checksum::Hasher)> = Vec::new();
        for &algorithm in algorithms {
            if !checksums.iter().any(|(a, _)| *a == algorithm) {
                checksums.push((algorithm, checksum::Hasher::new(algorithm)));
            }
        }
        BodyReader {
            stream,
            pending: Vec::new(),
            leftover: None,
            done: false,
            hashing: Hashing::Inline(Hashers { md5: md5.then(Md5State::new), checksums }),
            total: 0,
            limit,
            shard_stride: None,
            blocks_out: 0,
            pad: 0,
        }
    }

    /// Assembles each block at the place within a memory page where its
    /// pieces go within the shard files' pages (block `b`'s pieces start at
    /// `geometry.shard_offset(b)` of every shard), so that a drive can write
    /// them from where they are instead of copying them (see
    /// `bulwark_storage::local::page_phase`). The data pieces are views of
    /// the block; they share its place in the page when the piece length is a
    /// whole number of pages (2 MiB blocks over K = 4: 512 KiB).
    pub fn lay_out_for_shards(&mut self, geometry: &Geometry) {
        self.shard_stride = Some(geometry.shard_offset(1));
    }

    /// Next block of exactly `size` bytes, or fewer at the end of the body;
    /// `None` when the body is exhausted.
    pub async fn next_block(&mut self, size: usize) -> Result<Option<Bytes>> {
        while self.pending.len() - self.pad < size {
            let chunk = match self.leftover.take() {
                Some(chunk) => chunk,
                None if self.done => break,
                None => match self.stream.next().await {
                    Some(Ok(chunk)) => {
                        self.total += chunk.len() as u64;
                        if self.total > self.limit {
                            return Err(Error::EntityTooLarge);
                        }
                        chunk
                    }
                    Some(Err(e)) => return Err(Error::Body(e)),
                    None => {
                        self.done = true;
                        break;
                    }
                },
            };
            if self.pending.is_empty() && chunk.len() >= size {
                // A whole block inside one chunk: hand out a view, no copy.
                let block = chunk.slice(..size);
                self.leftover = (chunk.len() > size).then(|| chunk.slice(size..));
                self.hash(block.clone()).await;
                self.blocks_out += 1;
                return Ok(Some(block));
            }
            if self.pending.capacity() == 0 {
                let phase =
                    self.shard_stride.map_or(0, |stride| bulwark_storage::local::page_phase(self.blocks_out * stride));
                let (mut pending, pad) = take_at_phase(size, phase);
                pending.resize(pad, 0);
                self.pad = pad;
                self.pending = pending;
            }
            let fits = (size - (self.pending.len() - self.pad)).min(chunk.len());
            self.pending.extend_from_slice(&chunk[..fits]);
            if fits < chunk.len() {
                self.leftover = Some(chunk.slice(fits..));
            }
        }
        if self.pending.len() == self.pad {
            return Ok(None);
        }
        let pad = std::mem::take(&mut self.pad);
        let block = bulwark_storage::buffers::BLOCKS.freeze(std::mem::take(&mut self.pending)).slice(pad..);
        self.hash(block.clone()).await;
        self.blocks_out += 1;
        Ok(Some(block))
    }

    async fn hash(&mut self, block: Bytes) {
        if let Hashing::Inline(hashers) = &mut self.hashing {
            if self.total <= block.len() as u64 {
                // Still the first block: hash here.
                hashers.update(&block);
                return;
            }
            let Hashing::Inline(Hashers { md5, mut checksums }) =
                std::mem::replace(&mut self.hashing, Hashing::Poisoned)
            else {
                unreachable!("matched Inline just above");
            };
            let md5 = md5.map(|state| md5_lanes::MD5_LANES.stream(state));
            let checksums = (!checksums.is_empty()).then(|| {
                let (sender, mut receiver) = mpsc::channel::<Bytes>(HASH_BLOCKS_IN_FLIGHT_MAX);
                let task = tokio::task::spawn_blocking(move || {
                    while let Some(block) = receiver.blocking_recv() {
                        for (_, hasher) in &mut checksums {
                            hasher.update(&block);
                        }
                    }
                    checksums
                });
                (sender, task)
            });
            self.hashing = Hashing::Offloaded { md5, checksums };
        }
        // Nothing is handed out once the hashing is settled (the body ended).
        if let Hashing::Offloaded { md5, checksums } = &self.hashing {
            if let Some(stream) = md5 {
                stream.push(block.clone()).await;
            }
            if let Some((sender, _)) = checksums {
                let _ = sender.send(block).await;
            }
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Waits for the hashing of everything handed out to end, keeping the
    /// result for [`BodyReader::finish`]. Called once the body is exhausted,
    /// so that the last blocks' hashing overlaps the drives' final fsyncs.
    pub async fn settle(&mut self) {
        if matches!(self.hashing, Hashing::Settled(_)) {
            return;
        }
        let hashing = std::mem::replace(&mut self.hashing, Hashing::Poisoned);
        self.hashing = Hashing::Settled(Self::conclude(hashing).await);
    }

    /// The MD5 (if computed) and every checksum's raw digest.
    pub async fn finish(mut self) -> Result<Digests> {
        self.settle().await;
        match std::mem::replace(&mut self.hashing, Hashing::Poisoned) {
            Hashing::Settled(result) => result,
            _ => Err(Error::Internal("hashing state lost".into())),
        }
    }

    async fn conclude(hashing: Hashing) -> Result<Digests> {
        let (md5, checksums) = match hashing {
            Hashing::Inline(hashers) => (hashers.md5.map(|md5| md5.finalize()), hashers.checksums),
            Hashing::Offloaded { md5, checksums } => {
                let md5 = match md5 {
                    Some(stream) => {
                        Some(stream.finish().await.ok_or_else(|| Error::Internal("MD5 hashing thread failed".into()))?)
                    }
                    None => None,
                };
                let checksums = match checksums {
                    Some((sender, task)) => {
                        drop(sender);
                        task.await.map_err(|e| Error::Internal(format!("checksum task failed: {e}")))?
                    }
                    None => Vec::new(),
                };
                (md5, checksums)
            }
            Hashing::Settled(result) => return result,
            Hashing::Poisoned => return Err(Error::Internal("hashing state lost".into())),
        };
        let checksums = checksums.into_iter().map(|(a, h)| (a, h.finalize())).collect();
        Ok((md5, checksums))
    }
}

/// A body's MD5 (if computed) and its checksums' raw digests.
pub(crate) type Digests = (Option<[u8; 16]>, Vec<(ChecksumAlgorithm, Vec<u8>)>);

enum PieceMsg {
    /// Piece `shard` of block `block_index`, framed (checksummed) by the drive's task.
    Piece {
        shard: usize,
        block_index: u64,
        piece: Bytes,
    },
    Commit,
}

/// One drive's side of a streaming blob write.
struct DriveSink {
    position: usize,
    sender: Option<mpsc::Sender<PieceMsg>>,
    task: JoinHandle<Result<(), String>>,
}

/// Writes one blob (one part of one object) to the usable drives of a set.
///
/// The request task only codes blocks; each drive's task checksums its own
/// pieces and writes them, so the checksums of one block are computed on
/// several threads at once, and a block's data pieces travel as views of the
/// block, never copied.
pub(crate) struct BlobWrite {
    set: Arc<ErasureSet>,
    encoder: erasure::BlockEncoder,
    distribution: Vec<usize>,
    sinks: Vec<DriveSink>,
    block_index: u64,
}

impl BlobWrite {
    /// Starts writing a blob coded with `geometry` (the set's for a new
    /// object, the one its upload recorded for a part).
    pub fn start(
        set: Arc<ErasureSet>,
        geometry: Geometry,
        bucket: &str,
        blob: BlobId,
        distribution: Vec<usize>,
        positions: &[usize],
    ) -> BlobWrite {
        let encoder = erasure::BlockEncoder::new(geometry);
        let sinks = positions
            .iter()
            .map(|&position| {
                let (sender, receiver) = mpsc::channel(PIECES_IN_FLIGHT_MAX);
                let drive = set.drives[position].clone();
                let task = tokio::spawn(drive_writer(drive, bucket.to_owned(), blob, receiver));
                DriveSink { position, sender: Some(sender), task }
            })
            .collect();
        BlobWrite { set, encoder, distribution, sinks, block_index: 0 }
    }

    fn live_positions(&self) -> Vec<usize> {
        self.sinks.iter().filter(|s| s.sender.is_some()).map(|s| s.position).collect()
    }

    /// Codes one block and queues its pieces to every live drive.
    pub async fn write_block(&mut self, block: &Bytes) -> Result<()> {
        // Parity goes into a recycled buffer too (see crate::buffers).
        let geometry = self.encoder.geometry();
        // Parity pieces at their shard offset's place in a page, as the body's
        // blocks are (see BodyReader::lay_out_for_shards).
        let block_index = self.block_index;
        let (parity, offset) = take_at_phase(
            geometry.piece_len(block.len()) * geometry.parity(),
            bulwark_storage::local::page_phase(geometry.shard_offset(block_index)),
        );
        let pieces = self
            .encoder
            .encode_into_at(block, parity, offset, |parity| bulwark_storage::buffers::BLOCKS.freeze(parity))
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.block_index += 1;
        let distribution = &self.distribution;
        let sends = self.sinks.iter_mut().filter(|s| s.sender.is_some()).map(|sink| {
            let shard = distribution[sink.position];
            let piece = pieces[shard].clone();
            async move {
                let ok = match &sink.sender {
                    Some(sender) => sender.send(PieceMsg::Piece { shard, block_index, piece }).await.is_ok(),
                    None => false,
                };
                if !ok {
                    // The drive's task ended early: it failed and aborted its blob.
                    sink.sender = None;
                }
            }
        });
        futures::future::join_all(sends).await;
        let live = self.live_positions();
        self.set.require_writable(&live)
    }

    /// Makes the blob durable on every live drive; returns the positions where it is.
    pub async fn commit(mut self) -> Vec<usize> {
        for sink in &mut self.sinks {
            if let Some(sender) = sink.sender.take() {
                let _ = sender.send(PieceMsg::Commit).await;
            }
        }
        let mut durable = Vec::new();
        for sink in self.sinks {
            match sink.task.await {
                Ok(Ok(())) => durable.push(sink.position),
                Ok(Err(e)) => {
                    tracing::warn!(position = sink.position, error = %e, "shard write failed")
                }
                Err(e) => {
                    tracing::warn!(position = sink.position, error = %e, "shard writer task failed")
                }
            }
        }
        durable
    }

    /// Discards the blob everywhere (dropping the senders aborts each writer).
    pub async fn abort(self) {
        for sink in self.sinks {
            drop(sink.sender);
            let _ = sink.task.await;
        }
    }
}

/// One drive's writer: frames each piece (its checksum follows it) and
/// appends what is queued in one write, until told to commit. Dropping the
/// sender without a commit aborts the blob.
async fn drive_writer(
    drive: Arc<dyn Drive>,
    bucket: String,
    blob: BlobId,
    mut receiver: mpsc::Receiver<PieceMsg>,
) -> Result<(), String> {
    let mut writer = drive.create_blob(&bucket, blob).await.map_err(|e| e.to_string())?;
    enum Then {
        More,
        Commit,
        Abandoned,
    }
    loop {
        let mut parts = Vec::with_capacity(2 * PIECES_IN_FLIGHT_MAX);
        let mut message = receiver.recv().await;
        let then = loop {
            match message {
                Some(PieceMsg::Piece { shard, block_index, piece }) => {
                    let hash = erasure::piece_hash(shard, block_index, &piece);
                    parts.push(piece);
                    parts.push(Bytes::copy_from_slice(&hash));
                    if parts.len() >= 2 * PIECES_IN_FLIGHT_MAX {
                        break Then::More;
                    }
                    message = match receiver.try_recv() {
                        Ok(next) => Some(next),
                        Err(mpsc::error::TryRecvError::Empty) => break Then::More,
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                    };
                }
                Some(PieceMsg::Commit) => break Then::Commit,
                None => break Then::Abandoned,
            }
        };
        if matches!(then, Then::Abandoned) {
            writer.abort().await;
            return Err("write abandoned".into());
        }
        if !parts.is_empty()
            && let Err(e) = writer.write(parts).await
        {
            writer.abort().await;
            return Err(e.to_string());
        }
        if matches!(then, Then::Commit) {
            return writer.commit().await.map_err(|e| e.to_string());
        }
    }
}

/// Codes a small object entirely in memory: returns each shard's framed bytes,
/// indexed by shard number.
pub(crate) fn encode_inline(geometry: &Geometry, data: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut shards = vec![Vec::new(); geometry.total()];
    for (block_index, block) in data.chunks(geometry.block_size_bytes()).enumerate() {
        let pieces = erasure::encode_block(geometry, block).map_err(|e| Error::Internal(e.to_string()))?;
        for (shard, piece) in pieces.iter().enumerate() {
            erasure::frame_piece(shard, block_index as u64, piece, &mut shards[shard]);
        }
    }
    Ok(shards)
}

/// Starts the sealing thread with what the request task sealed so far
/// (`blocks`) and the next plaintext block.
fn offload_sealing(
    mut sealer: bulwark_crypto::PackageSealer,
    mut blocks: SealedBlocks,
    next: Bytes,
    size: usize,
) -> Sealing {
    let (plain, mut plain_in) = mpsc::channel::<Bytes>(SEAL_BLOCKS_IN_FLIGHT_MAX);
    let (sealed_out, sealed) = mpsc::channel::<Bytes>(SEAL_BLOCKS_IN_FLIGHT_MAX);
    let task = tokio::task::spawn_blocking(move || {
        let mut next = Some(next);
        while let Some(block) = next.take().or_else(|| plain_in.blocking_recv()) {
            sealer.push_with(&block, &mut |package| blocks.append(package, size));
            for full in blocks.full.drain(..) {
                if sealed_out.blocking_send(full).is_err() {
                    return; // the write was given up
                }
            }
        }
        sealer.finish_with(&mut |package| blocks.append(package, size));
        for block in blocks.finish() {
            if sealed_out.blocking_send(block).is_err() {
                return;
            }
        }
    });
    Sealing::Offloaded { plain: Some(plain), sealed, task }
}

/// Sealed packages laid out in blocks of exactly the requested size, in
/// pooled buffers (see [`crate::buffers`]); a package may straddle two blocks.
#[derive(Default)]
struct SealedBlocks {
    current: Vec<u8>,
    full: VecDeque<Bytes>,
}

impl SealedBlocks {
    fn append(&mut self, mut data: &[u8], size: usize) {
        while !data.is_empty() {
            if self.current.capacity() == 0 {
                self.current = bulwark_storage::buffers::BLOCKS.take(size);
            }
            let fits = (size - self.current.len()).min(data.len());
            self.current.extend_from_slice(&data[..fits]);
            data = &data[fits..];
            if self.current.len() == size {
                self.full.push_back(bulwark_storage::buffers::BLOCKS.freeze(std::mem::take(&mut self.current)));
            }
        }
    }

    /// Every block not yet taken, the last one possibly short.
    fn finish(mut self) -> VecDeque<Bytes> {
        if !self.current.is_empty() {
            self.full.push_back(bulwark_storage::buffers::BLOCKS.freeze(std::mem::take(&mut self.current)));
        }
        self.full
    }
}

pub(crate) fn new_blob_id() -> BlobId {
    *uuid::Uuid::new_v4().as_bytes()
}

/// The bytes that are stored: the body itself, or its encryption in
/// packages (re-cut into blocks of the requested size). Hashing of the
/// plaintext happens in the [`BodyReader`] underneath.
pub(crate) struct StoredSource<'a> {
    reader: &'a mut BodyReader,
    sealing: Sealing,
    stored: u64,
}

/// Plaintext blocks queued for the sealing thread, and sealed blocks it may
/// hold ready, before either side waits for the other.
const SEAL_BLOCKS_IN_FLIGHT_MAX: usize = 2;

/// Where the encryption of the body happens. Like hashing, the first block
/// is sealed in the request task (a small object never pays for a thread);
/// from the second block on a blocking thread seals while the request task
/// reads the body and codes the blocks already sealed, so the cipher runs
/// beside the erasure coding instead of after it. (A runtime task would be
/// woken onto the request task's own worker and run after it, not beside it.)
enum Sealing {
    Plain,
    Inline {
        sealer: bulwark_crypto::PackageSealer,
        blocks: SealedBlocks,
        first_sealed: bool,
    },
    Offloaded {
        /// `None` once the body has ended (the task then seals the final package).
        plain: Option<mpsc::Sender<Bytes>>,
        sealed: mpsc::Receiver<Bytes>,
        task: JoinHandle<()>,
    },
    /// Everything sealed; what is left to hand out.
    Finished(VecDeque<Bytes>),
}

impl<'a> StoredSource<'a> {
    pub fn new(reader: &'a mut BodyReader, cipher: Option<(&bulwark_crypto::Key32, [u8; 12])>) -> StoredSource<'a> {
        let sealing = match cipher {
            Some((key, nonce)) => Sealing::Inline {
                sealer: bulwark_crypto::PackageSealer::new(key, nonce),
                blocks: SealedBlocks::default(),
                first_sealed: false,
            },
            None => Sealing::Plain,
        };
        StoredSource { reader, sealing, stored: 0 }
    }

    /// See [`BodyReader::settle`].
    pub async fn settle_hashes(&mut self) {
        self.reader.settle().await;
    }

    /// Next stored block of `size` bytes (fewer only at the end).
    pub async fn next(&mut self, size: usize) -> Result<Option<Bytes>> {
        let block = self.next_block(size).await?;
        self.stored += block.as_ref().map_or(0, |b| b.len() as u64);
        Ok(block)
    }

    async fn next_block(&mut self, size: usize) -> Result<Option<Bytes>> {
        loop {
            match &mut self.sealing {
                Sealing::Plain => return self.reader.next_block(size).await,
                Sealing::Inline { blocks, .. } if !blocks.full.is_empty() => return Ok(blocks.full.pop_front()),
                Sealing::Inline { sealer, blocks, first_sealed } => match self.reader.next_block(size).await? {
                    Some(plain) if !*first_sealed => {
                        sealer.push_with(&plain, &mut |package| blocks.append(package, size));
                        *first_sealed = true;
                    }
                    Some(plain) => {
                        let state = std::mem::replace(&mut self.sealing, Sealing::Finished(VecDeque::new()));
                        if let Sealing::Inline { sealer, blocks, .. } = state {
                            self.sealing = offload_sealing(sealer, blocks, plain, size);
                        }
                    }
                    None => {
                        let state = std::mem::replace(&mut self.sealing, Sealing::Finished(VecDeque::new()));
                        if let Sealing::Inline { sealer, mut blocks, .. } = state {
                            sealer.finish_with(&mut |package| blocks.append(package, size));
                            self.sealing = Sealing::Finished(blocks.finish());
                        }
                    }
                },
                Sealing::Offloaded { plain, sealed, task } => {
                    // Keep the task fed without waiting for it; wait only when
                    // it has all the plaintext it may hold.
                    if let Some(sender) = plain.as_ref().filter(|s| s.capacity() > 0) {
                        match self.reader.next_block(size).await? {
                            Some(block) => {
                                if sender.try_send(block).is_err() {
                                    return Err(Error::Internal("sealing thread ended early".into()));
                                }
                            }
                            None => *plain = None,
                        }
                        continue;
                    }
                    if let Some(block) = sealed.recv().await {
                        return Ok(Some(block));
                    }
                    if plain.is_some() {
                        return Err(Error::Internal("sealing thread ended early".into()));
                    }
                    (&mut *task).await.map_err(|e| Error::Internal(format!("sealing thread failed: {e}")))?;
                    self.sealing = Sealing::Finished(VecDeque::new());
                }
                Sealing::Finished(blocks) => return Ok(blocks.pop_front()),
            }
        }
    }

    pub fn stored(&self) -> u64 {
        self.stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulwark_crypto::Md5;

    fn body(data: &[u8], chunk: usize) -> crate::ByteStream {
        let chunks: Vec<std::result::Result<Bytes, std::io::Error>> =
            data.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        Box::pin(futures::stream::iter(chunks))
    }

    /// Laid out for the drives, every block assembled from chunks starts at
    /// the place in a page where its pieces start in the shard files, and the
    /// blocks are still exactly the body.
    #[tokio::test]
    async fn blocks_laid_out_for_shards_sit_at_their_shard_offsets_page_phase() {
        let geometry = Geometry::new(4, 2, 256 * 1024).expect("geometry");
        let size = geometry.block_size_bytes();
        let data: Vec<u8> = (0..9 * size as u32 + 4_321).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
        let mut reader = BodyReader::new(body(&data, 10_000), u64::MAX, &[], false);
        reader.lay_out_for_shards(&geometry);
        let mut blocks = Vec::new();
        while let Some(block) = reader.next_block(size).await.expect("next block") {
            let index = blocks.len() as u64;
            let phase = bulwark_storage::local::page_phase(geometry.shard_offset(index));
            assert_eq!(block.as_ptr() as usize % PAGE_BYTES, phase, "block {index}");
            blocks.push(block);
        }
        assert!(
            blocks.iter().any(|b| !(b.as_ptr() as usize).is_multiple_of(PAGE_BYTES)),
            "phases differ between blocks"
        );
        assert_eq!(blocks.concat(), data);
    }

    /// Chunks smaller than, equal to and larger than a block (a larger one
    /// gives views of itself and leaves the rest for the next block): the
    /// blocks are whole but the last, and together they are the body.
    #[tokio::test]
    async fn blocks_are_cut_exactly_whatever_the_chunks() {
        let size = 65_536;
        let data: Vec<u8> = (0..5 * size as u32 + 1_234).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        for chunk in [1_000, size - 1, size, size + 1, 3 * size + 5, data.len()] {
            let mut reader = BodyReader::new(body(&data, chunk), u64::MAX, &[], true);
            let mut blocks = Vec::new();
            while let Some(block) = reader.next_block(size).await.expect("next block") {
                blocks.push(block);
            }
            let (last, whole) = blocks.split_last().expect("blocks");
            assert!(whole.iter().all(|b| b.len() == size), "chunks of {chunk}: whole blocks");
            assert_eq!(last.len(), data.len() % size, "chunks of {chunk}: the rest");
            assert_eq!(blocks.concat(), data, "chunks of {chunk}: the body");
            assert_eq!(reader.total(), data.len() as u64);
            let (md5, _) = reader.finish().await.expect("hashes");
            assert_eq!(md5, Some(Md5::digest(&data)), "chunks of {chunk}: MD5 of the body");
        }
        let mut reader = BodyReader::new(body(&data, size), size as u64 * 2, &[], false);
        assert!(reader.next_block(size).await.is_ok() && reader.next_block(size).await.is_ok());
        assert!(matches!(reader.next_block(size).await, Err(Error::EntityTooLarge)), "past the limit");
    }

    /// Blocks of `size`, not a multiple of the 64 KiB package, so packages
    /// straddle blocks; lengths from empty to several blocks, so the first
    /// block is sealed in the request task and the rest by the sealing thread.
    #[tokio::test]
    async fn sealed_blocks_are_the_one_pass_encryption_cut_into_blocks() {
        let size = 100_000;
        let key = bulwark_crypto::Key32::from_bytes([9; 32]);
        let nonce = [3u8; 12];
        for len in [0, 1_000, size, size + 1, 7 * size + 12_345] {
            let data: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
            let mut sealer = bulwark_crypto::PackageSealer::new(&key, nonce);
            let mut expected = sealer.push(&data);
            expected.extend(sealer.finish());

            let mut reader = BodyReader::new(body(&data, 7_777), u64::MAX, &[], true);
            let mut source = StoredSource::new(&mut reader, Some((&key, nonce)));
            let mut blocks = Vec::new();
            while let Some(block) = source.next(size).await.expect("next block") {
                blocks.push(block);
            }
            assert_eq!(source.stored(), expected.len() as u64, "{len} bytes");
            let (last, whole) = blocks.split_last().expect("at least the final package");
            assert!(whole.iter().all(|b| b.len() == size), "{len} bytes: every block but the last is whole");
            assert!(!last.is_empty() && last.len() <= size, "{len} bytes: last block {}", last.len());
            assert_eq!(blocks.concat(), expected, "{len} bytes: the same ciphertext as sealing in one pass");
            let (md5, _) = reader.finish().await.expect("hashes");
            assert_eq!(md5, Some(Md5::digest(&data)), "{len} bytes: the MD5 is of the plaintext");
        }
    }
}
