//! The read path: fetch K verified pieces per block (data shards first),
//! rebuild from parity whatever is missing or fails its checksum, and stream
//! the requested range block by block.
//!
//! A piece is used only after its checksum (bound to shard and block index)
//! verified, so a corrupt shard is never served: it is skipped like a missing
//! one, the object is reported for healing, and if fewer than K good pieces
//! remain the stream fails loudly instead of returning wrong bytes.

use std::sync::Arc;

use bulwark_erasure::{self as erasure, Geometry};
use bulwark_storage::{BlobReader, VersionUid};
use bytes::Bytes;
use futures::future::join_all;
use tokio::sync::mpsc;

use crate::checksum::{self, ChecksumAlgorithm};
use crate::meta::{DataLayout, PartLayout};
use crate::set::ErasureSet;
use crate::{ByteRange, ByteStream, Error, Result};

/// Blocks read ahead of the client (for encrypted objects: batches of
/// decrypted packages, about a block each).
const BLOCKS_READ_AHEAD_MAX: usize = 4;

/// Something that wants to know about damaged objects (the heal queue).
pub(crate) trait DamageSink: Send + Sync {
    fn report(&self, bucket: &str, key: &str, uid: VersionUid, detail: &str);
}

enum Slot {
    Unopened,
    Blob(Box<dyn BlobReader>),
    Inline(Bytes),
    Failed,
}

/// Reads the blocks of one part.
struct PartSource {
    set: Arc<ErasureSet>,
    bucket: String,
    key: String,
    uid: VersionUid,
    geometry: Geometry,
    distribution: Vec<usize>,
    part: PartLayout,
    inline: bool,
    slots: Vec<Slot>,
    damage: Arc<dyn DamageSink>,
    reported: bool,
}

impl PartSource {
    fn new(ctx: &ReadContext, part: &PartLayout) -> PartSource {
        let slots = ctx
            .holders
            .iter()
            .enumerate()
            .map(|(p, &holds)| if holds && ctx.set.drives[p].is_online() { Slot::Unopened } else { Slot::Failed })
            .collect();
        PartSource {
            set: ctx.set.clone(),
            bucket: ctx.bucket.clone(),
            key: ctx.key.clone(),
            uid: ctx.uid,
            geometry: ctx.geometry,
            distribution: ctx.layout.distribution.clone(),
            part: part.clone(),
            inline: ctx.layout.inline,
            slots,
            damage: ctx.damage.clone(),
            reported: false,
        }
    }

    fn note_damage(&mut self, detail: &str) {
        if !self.reported {
            self.reported = true;
            self.damage.report(&self.bucket, &self.key, self.uid, detail);
        }
    }

    /// Positions to try, data shards first (they need no decoding).
    fn candidates(&self) -> Vec<usize> {
        let mut positions: Vec<usize> =
            (0..self.slots.len()).filter(|&p| !matches!(self.slots[p], Slot::Failed)).collect();
        positions.sort_by_key(|&p| self.distribution[p]);
        positions
    }

    /// The block's bytes: its intact data pieces as they were read (views,
    /// no copy), or one buffer rebuilt from parity when a data piece is
    /// missing or failed its checksum.
    async fn read_block(&mut self, block_index: u64) -> Result<Vec<Bytes>> {
        let block_len = self.geometry.block_len(self.part.size, block_index);
        let piece_len = self.geometry.piece_len(block_len);
        let offset = self.geometry.shard_offset(block_index);
        let data = self.geometry.data();
        let mut pieces: Vec<Option<Bytes>> = vec![None; self.geometry.total()];
        let mut good = 0;
        let mut tried = vec![false; self.slots.len()];
        if self.slots.iter().any(|s| matches!(s, Slot::Failed)) {
            self.note_damage("record or drive missing");
        }
        while good < data {
            let batch: Vec<usize> = self.candidates().into_iter().filter(|&p| !tried[p]).take(data - good).collect();
            if batch.is_empty() {
                self.note_damage("not enough good pieces");
                return Err(Error::Unreadable {
                    bucket: self.bucket.clone(),
                    key: self.key.clone(),
                    detail: format!(
                        "block {block_index} of part {}: only {good} of {data} pieces verified",
                        self.part.number
                    ),
                });
            }
            let mut reads = Vec::with_capacity(batch.len());
            for &position in &batch {
                tried[position] = true;
                let slot = std::mem::replace(&mut self.slots[position], Slot::Unopened);
                // Each piece is read and verified on its own task, so the
                // checksums of one block are computed on several cores.
                reads.push((position, tokio::spawn(self.read_piece(position, slot, block_index, offset, piece_len))));
            }
            let results = join_all(reads.into_iter().map(|(position, task)| async move {
                task.await.unwrap_or_else(|e| (position, Slot::Failed, Err(format!("piece read failed: {e}"))))
            }))
            .await;
            for (position, slot, result) in results {
                match result {
                    Ok(piece) => {
                        self.slots[position] = slot;
                        pieces[self.distribution[position]] = Some(piece);
                        good += 1;
                    }
                    Err(detail) => {
                        tracing::warn!(
                            bucket = %self.bucket, key = %self.key, position, block_index, %detail,
                            "piece unusable; rebuilding from parity"
                        );
                        self.slots[position] = Slot::Failed;
                        self.note_damage(&detail);
                    }
                }
            }
        }
        if pieces[..data].iter().all(Option::is_some) {
            // Data pieces in order, the padding of the last one cut off.
            let mut left = block_len;
            let chunks = pieces
                .into_iter()
                .take(data)
                .flatten()
                .map(|piece| {
                    let take = left.min(piece.len());
                    left -= take;
                    piece.slice(..take)
                })
                .filter(|chunk| !chunk.is_empty())
                .collect();
            return Ok(chunks);
        }
        erasure::decode_block(&self.geometry, &pieces, block_len).map(|block| vec![Bytes::from(block)]).map_err(|e| {
            Error::Unreadable { bucket: self.bucket.clone(), key: self.key.clone(), detail: e.to_string() }
        })
    }

    fn read_piece(
        &self,
        position: usize,
        slot: Slot,
        block_index: u64,
        offset: u64,
        piece_len: usize,
    ) -> impl std::future::Future<Output = (usize, Slot, Result<Bytes, String>)> + Send + 'static {
        let drive = self.set.drives[position].clone();
        let bucket = self.bucket.clone();
        let blob = self.part.blob.clone();
        let inline = self.inline;
        let uid = self.uid;
        let shard = self.distribution[position];
        let framed_len = piece_len + erasure::HASH_LEN_BYTES;
        // An encrypted part's pieces are decrypted in place, so they are read
        // into buffers of their own rather than the shared read pool.
        let owned = self.part.nonce.is_some();
        async move {
            let slot = match slot {
                Slot::Unopened if inline => match drive.get_inline(uid).await {
                    Ok(Some(bytes)) => Slot::Inline(bytes),
                    Ok(None) => {
                        return (position, Slot::Failed, Err("inline shard missing".into()));
                    }
                    Err(e) => return (position, Slot::Failed, Err(e.to_string())),
                },
                Slot::Unopened => {
                    let Some(blob) = blob.as_deref().and_then(parse_blob_id) else {
                        return (position, Slot::Failed, Err("record names no blob".into()));
                    };
                    match drive.open_blob(&bucket, blob).await {
                        Ok(reader) => Slot::Blob(reader),
                        Err(e) => return (position, Slot::Failed, Err(e.to_string())),
                    }
                }
                other => other,
            };
            let framed = match &slot {
                Slot::Blob(reader) if owned => {
                    reader.read_at_owned(offset, framed_len).await.map_err(|e| e.to_string())
                }
                Slot::Blob(reader) => reader.read_at(offset, framed_len).await.map_err(|e| e.to_string()),
                Slot::Inline(bytes) => {
                    let start = offset as usize;
                    if start + framed_len <= bytes.len() {
                        Ok(bytes.slice(start..start + framed_len))
                    } else {
                        Err("inline shard truncated".to_owned())
                    }
                }
                Slot::Unopened | Slot::Failed => Err("slot unusable".into()),
            };
            // Only the verified piece goes on, as a view of what was read.
            let result = framed.and_then(|framed| match erasure::open_piece(shard, block_index, &framed, piece_len) {
                Ok(_) => Ok(framed.slice(..piece_len)),
                Err(e) => Err(format!("shard {shard} block {block_index}: {e}")),
            });
            (position, slot, result)
        }
    }
}

pub(crate) fn parse_blob_id(hex_id: &str) -> Option<[u8; 16]> {
    let bytes = hex::decode(hex_id).ok()?;
    bytes.try_into().ok()
}

/// Everything needed to read one resolved version.
#[derive(Clone)]
pub(crate) struct ReadContext {
    pub set: Arc<ErasureSet>,
    pub bucket: String,
    pub key: String,
    pub uid: VersionUid,
    pub layout: DataLayout,
    pub holders: Vec<bool>,
    pub geometry: Geometry,
    pub damage: Arc<dyn DamageSink>,
    /// Algorithm of the per-part checksums in the layout, if any.
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
}

/// Streams `range` of the object. Blocks are produced by a task that runs
/// at most `BLOCKS_READ_AHEAD_MAX` blocks ahead of the consumer.
pub(crate) fn stream_range(ctx: ReadContext, range: Option<ByteRange>) -> ByteStream {
    let (sender, receiver) = mpsc::channel::<Result<Vec<Bytes>, std::io::Error>>(BLOCKS_READ_AHEAD_MAX);
    tokio::spawn(async move {
        if let Err(e) = produce(&ctx, range, &sender).await {
            tracing::error!(bucket = %ctx.bucket, key = %ctx.key, error = %e, "read failed mid-stream");
            let _ = sender.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    Box::pin(BlockStream { receiver, pending: Vec::new().into_iter() })
}

/// Streams plaintext `range` of an encrypted object: maps it onto the
/// packages of each part, reads only those (through [`stream_range`]),
/// authenticates and decrypts each package, and trims to the range.
pub(crate) fn stream_decrypted(
    ctx: ReadContext,
    range: Option<ByteRange>,
    plain_total: u64,
    object_key: bulwark_crypto::Key32,
) -> ByteStream {
    let (sender, receiver) = mpsc::channel::<Result<Vec<Bytes>, std::io::Error>>(BLOCKS_READ_AHEAD_MAX);
    tokio::spawn(async move {
        if let Err(e) = produce_decrypted(&ctx, range, plain_total, &object_key, &sender).await {
            tracing::error!(bucket = %ctx.bucket, key = %ctx.key, error = %e, "encrypted read failed mid-stream");
            let _ = sender.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    Box::pin(BlockStream { receiver, pending: Vec::new().into_iter() })
}

async fn produce_decrypted(
    ctx: &ReadContext,
    range: Option<ByteRange>,
    plain_total: u64,
    object_key: &bulwark_crypto::Key32,
    sender: &mpsc::Sender<Result<Vec<Bytes>, std::io::Error>>,
) -> Result<()> {
    use futures::StreamExt;
    if plain_total == 0 {
        return Ok(());
    }
    let range = range.unwrap_or(ByteRange { start: 0, end_inclusive: plain_total - 1 });
    let unreadable = |detail: String| Error::Unreadable { bucket: ctx.bucket.clone(), key: ctx.key.clone(), detail };
    let mut plain_start = 0u64;
    let mut stored_start = 0u64;
    for part in &ctx.layout.parts {
        let plain_size = part.client_size();
        let plain_end = plain_start + plain_size; // exclusive
        let stored_here = stored_start;
        stored_start += part.size;
        if plain_size == 0 || plain_end <= range.start || plain_start > range.end_inclusive {
            plain_start = plain_end;
            continue;
        }
        let from = range.start.max(plain_start) - plain_start;
        let to = (range.end_inclusive + 1).min(plain_end) - plain_start - 1; // inclusive
        let key =
            if ctx.layout.multipart { bulwark_crypto::part_key(object_key, part.number) } else { object_key.clone() };
        let nonce: [u8; 12] = part
            .nonce
            .as_deref()
            .and_then(|n| hex::decode(n).ok())
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| unreadable(format!("part {} has no valid nonce", part.number)))?;
        let span = bulwark_crypto::package_span(plain_size, from, to);
        let last_seq = bulwark_crypto::package_count(plain_size) - 1;
        let stored_range = ByteRange {
            start: stored_here + span.cipher_offset,
            end_inclusive: stored_here + span.cipher_offset + span.cipher_len - 1,
        };
        let mut cipher = stream_range(ctx.clone(), Some(stored_range));
        // The ciphertext arrives as buffers nobody else holds: packages are
        // cut out of them without copying (`split_to`), decrypted in place
        // and sent as they are. Only a package that straddles two buffers is
        // copied together. Packages are opened in batches (about 1 MiB, a
        // fraction of a millisecond of AES-GCM) on runtime tasks, two
        // batches at a time, so decryption of one batch overlaps gathering
        // the next and sending the one before; runtime tasks rather than
        // blocking threads, which cost a thread hand-off per batch (GET ×1
        // of SSE objects: 88–92% → 92–98% of plaintext).
        let mut buffer = bytes::BytesMut::new();
        let mut next_chunk: Option<Bytes> = None;
        let mut seq = span.first_seq;
        let mut remaining_skip = span.skip as usize;
        let mut remaining = (to - from + 1) as usize;
        let mut cipher_left = span.cipher_len as usize;
        let mut opening: std::collections::VecDeque<tokio::task::JoinHandle<Vec<OpenedPackage>>> =
            std::collections::VecDeque::new();
        let mut batch = Vec::with_capacity(DECRYPT_BATCH_PACKAGES);
        loop {
            if cipher_left > 0 {
                // Gather one package: full size, or what is left of the span.
                let want = bulwark_crypto::PACKAGE_CIPHER_SIZE.min(cipher_left);
                while buffer.len() < want {
                    let chunk = match next_chunk.take() {
                        Some(chunk) => chunk,
                        None => match cipher.next().await {
                            Some(Ok(chunk)) => chunk,
                            Some(Err(e)) => return Err(unreadable(e.to_string())),
                            None => return Err(unreadable("ciphertext ended early".into())),
                        },
                    };
                    let need = want - buffer.len();
                    if buffer.is_empty() && chunk.len() >= want {
                        buffer = chunk.try_into_mut().unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
                    } else if chunk.len() <= need {
                        buffer.extend_from_slice(&chunk);
                    } else {
                        buffer.extend_from_slice(&chunk[..need]);
                        next_chunk = Some(chunk.slice(need..));
                    }
                }
                batch.push((seq, buffer.split_to(want)));
                cipher_left -= want;
                seq += 1;
            }
            if batch.len() == DECRYPT_BATCH_PACKAGES || (cipher_left == 0 && !batch.is_empty()) {
                let packages = std::mem::replace(&mut batch, Vec::with_capacity(DECRYPT_BATCH_PACKAGES));
                let key = key.clone();
                opening.push_back(tokio::spawn(async move { open_packages(&key, &nonce, last_seq, packages) }));
            }
            if opening.len() < DECRYPT_BATCHES_IN_FLIGHT && cipher_left > 0 {
                continue;
            }
            let Some(task) = opening.pop_front() else { break };
            let opened = task.await.map_err(|e| unreadable(format!("decryption task failed: {e}")))?;
            let mut chunks = Vec::with_capacity(opened.len());
            for package in opened {
                let mut plain = match package {
                    OpenedPackage::Plain(plain) => plain,
                    OpenedPackage::Failed { seq, error } => {
                        ctx.damage.report(&ctx.bucket, &ctx.key, ctx.uid, "encrypted package failed authentication");
                        return Err(unreadable(format!("part {} package {seq}: {error}", part.number)));
                    }
                };
                let plain_len = plain.len();
                let start = remaining_skip.min(plain_len);
                remaining_skip -= start;
                let end = (start + remaining).min(plain_len);
                plain.truncate(end);
                let chunk = plain.freeze().slice(start..);
                remaining -= chunk.len();
                if !chunk.is_empty() {
                    chunks.push(chunk);
                }
            }
            if !chunks.is_empty() && sender.send(Ok(chunks)).await.is_err() {
                return Ok(());
            }
        }
        if remaining > 0 {
            return Err(unreadable(format!("part {}: {remaining} bytes short after the last package", part.number)));
        }
        plain_start = plain_end;
    }
    Ok(())
}

/// Packages opened per blocking task (about 1 MiB of ciphertext).
const DECRYPT_BATCH_PACKAGES: usize = 16;
/// Batches being opened at once, per GET.
const DECRYPT_BATCHES_IN_FLIGHT: usize = 2;

enum OpenedPackage {
    Plain(bytes::BytesMut),
    Failed { seq: u64, error: bulwark_crypto::CryptoError },
}

/// Authenticates and decrypts `packages` (sequence number, ciphertext) in
/// place, in order; stops at the first that fails.
fn open_packages(
    key: &bulwark_crypto::Key32,
    nonce: &[u8; 12],
    last_seq: u64,
    packages: Vec<(u64, bytes::BytesMut)>,
) -> Vec<OpenedPackage> {
    let mut opened = Vec::with_capacity(packages.len());
    for (seq, mut package) in packages {
        match bulwark_crypto::open_package(key, nonce, seq, seq == last_seq, &mut package) {
            Ok(plain) => {
                let plain_len = plain.len();
                package.truncate(plain_len);
                opened.push(OpenedPackage::Plain(package));
            }
            Err(error) => {
                opened.push(OpenedPackage::Failed { seq, error });
                break;
            }
        }
    }
    opened
}

/// The consumer side of a read-ahead channel: each block arrives as its
/// chunks (the pieces it was read in, or its decrypted packages) and goes
/// out chunk by chunk.
struct BlockStream {
    receiver: mpsc::Receiver<Result<Vec<Bytes>, std::io::Error>>,
    pending: std::vec::IntoIter<Bytes>,
}

impl futures::Stream for BlockStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        loop {
            if let Some(chunk) = self.pending.next() {
                return std::task::Poll::Ready(Some(Ok(chunk)));
            }
            match std::task::ready!(self.receiver.poll_recv(cx)) {
                Some(Ok(chunks)) => self.pending = chunks.into_iter(),
                Some(Err(e)) => return std::task::Poll::Ready(Some(Err(e))),
                None => return std::task::Poll::Ready(None),
            }
        }
    }
}

async fn produce(
    ctx: &ReadContext,
    range: Option<ByteRange>,
    sender: &mpsc::Sender<Result<Vec<Bytes>, std::io::Error>>,
) -> Result<()> {
    let total: u64 = ctx.layout.parts.iter().map(|p| p.size).sum();
    if total == 0 {
        return Ok(());
    }
    let range = range.unwrap_or(ByteRange { start: 0, end_inclusive: total - 1 });
    let block_size = ctx.geometry.block_size_bytes() as u64;
    let mut part_start = 0u64;
    for part in &ctx.layout.parts {
        let part_end = part_start + part.size; // exclusive
        if part.size == 0 || part_end <= range.start || part_start > range.end_inclusive {
            part_start = part_end;
            continue;
        }
        let from = range.start.max(part_start) - part_start;
        let to = (range.end_inclusive + 1).min(part_end) - part_start; // exclusive, within part
        let mut source = PartSource::new(ctx, part);
        // A read of a whole part is checked against the part's stored checksum
        // (D4): the last block is held back until the digest matched, so data
        // whose shards all verify but whose content is still wrong is refused.
        let verify = match (ctx.checksum_algorithm, &part.checksum) {
            // Encrypted parts store ciphertext; their packages are authenticated instead.
            _ if part.nonce.is_some() => None,
            (Some(algorithm), Some(value)) if from == 0 && to == part.size => {
                checksum::decode(algorithm, value).map(|digest| (algorithm, digest))
            }
            _ => None,
        };
        let mut hasher = verify.as_ref().map(|(algorithm, _)| checksum::Hasher::new(*algorithm));
        let mut held: Option<Vec<Bytes>> = None;
        for block_index in from / block_size..to.div_ceil(block_size) {
            let block = source.read_block(block_index).await?;
            if let Some(hasher) = &mut hasher {
                block.iter().for_each(|chunk| hasher.update(chunk));
            }
            let block_start = block_index * block_size;
            let lo = from.saturating_sub(block_start) as usize;
            let hi = (to - block_start) as usize;
            let chunks = slice_chunks(block, lo, hi);
            let ready = if hasher.is_some() { held.replace(chunks) } else { Some(chunks) };
            if let Some(ready) = ready
                && sender.send(Ok(ready)).await.is_err()
            {
                return Ok(()); // the client went away
            }
        }
        if let (Some(hasher), Some((algorithm, expected))) = (hasher, verify)
            && hasher.finalize() != expected
        {
            ctx.damage.report(&ctx.bucket, &ctx.key, ctx.uid, "content does not match its stored checksum");
            return Err(Error::Unreadable {
                bucket: ctx.bucket.clone(),
                key: ctx.key.clone(),
                detail: format!("part {} does not match its stored {} checksum", part.number, algorithm.as_str()),
            });
        }
        if let Some(last) = held
            && sender.send(Ok(last)).await.is_err()
        {
            return Ok(());
        }
        part_start = part_end;
    }
    Ok(())
}

/// Bytes `lo..hi` of the concatenation of `chunks` (`hi` may run past the end),
/// as views of the same chunks.
fn slice_chunks(chunks: Vec<Bytes>, lo: usize, hi: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(chunks.len());
    let mut at = 0;
    for chunk in chunks {
        let (start, end) = (at, at + chunk.len());
        at = end;
        let (from, to) = (lo.max(start), hi.min(end));
        if from < to {
            out.push(chunk.slice(from - start..to - start));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicing_chunks_matches_slicing_their_concatenation() {
        let chunks: Vec<Bytes> =
            [&b"abcd"[..], b"", b"efghij", b"k", b"lmnop"].iter().map(|c| Bytes::copy_from_slice(c)).collect();
        let whole: Vec<u8> = chunks.concat();
        for lo in 0..=whole.len() {
            for hi in lo..=whole.len() + 3 {
                let sliced = slice_chunks(chunks.clone(), lo, hi);
                assert!(sliced.iter().all(|c| !c.is_empty()), "{lo}..{hi}: no empty chunks");
                assert_eq!(sliced.concat(), whole[lo..hi.min(whole.len())].to_vec(), "{lo}..{hi}");
            }
        }
    }
}
