//! Reed-Solomon erasure coding and per-block bitrot checksums.
//!
//! Contract: pure functions over bytes — no I/O, no async, no clock. An object
//! (or one multipart part) is cut into *blocks* of `block_size_bytes`; each
//! block is split into `data` pieces and extended with `parity` pieces, so that
//! any `data` of the `data + parity` pieces rebuild the block. Piece `i` of
//! every block goes to shard `i`, so a shard is the sequence of its pieces.
//!
//! Every piece is stored *framed*: the piece bytes followed by a 32-byte BLAKE3
//! hash that also binds the shard index and block index. A piece read back from
//! disk is only trusted after [`open_piece`] has checked that hash, so a flipped
//! bit, a truncated file or a block written at the wrong offset (or onto the
//! wrong drive) is detected and treated exactly like a missing piece.
//!
//! The on-disk layout this implies is documented in `docs/design/shard-format.md`.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

/// Bytes of the checksum that follows every piece in a shard.
pub const HASH_LEN_BYTES: usize = 32;
/// Largest supported total shard count of one erasure set.
pub const SHARDS_TOTAL_MAX: usize = 32;
/// Largest block size we accept in a recorded geometry (bounds memory per request).
pub const BLOCK_SIZE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Domain separation for the piece hash, so the same bytes hashed for another
/// purpose can never be mistaken for a piece checksum.
const PIECE_HASH_CONTEXT: &str = "bulwark 2026 shard piece v1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid geometry: {0}")]
    InvalidGeometry(String),
    #[error("not enough good pieces to rebuild block: have {have}, need {need}")]
    NotEnoughPieces { have: usize, need: usize },
    #[error("piece checksum mismatch")]
    ChecksumMismatch,
    #[error("piece has wrong length: expected {expected}, got {got}")]
    WrongLength { expected: usize, got: usize },
    #[error("reed-solomon: {0}")]
    Codec(String),
}

/// The erasure geometry recorded with every object: how it was cut and coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    data: usize,
    parity: usize,
    block_size_bytes: usize,
}

impl Geometry {
    pub fn new(data: usize, parity: usize, block_size_bytes: usize) -> Result<Self, Error> {
        if data == 0 || parity == 0 {
            return Err(Error::InvalidGeometry(format!("{data}+{parity}: both counts must be at least 1")));
        }
        if data + parity > SHARDS_TOTAL_MAX {
            return Err(Error::InvalidGeometry(format!("{data}+{parity}: at most {SHARDS_TOTAL_MAX} shards")));
        }
        if parity > data {
            return Err(Error::InvalidGeometry(format!("{data}+{parity}: parity may not exceed data")));
        }
        if block_size_bytes == 0
            || block_size_bytes > BLOCK_SIZE_BYTES_MAX
            || !block_size_bytes.is_multiple_of(2 * data)
        {
            return Err(Error::InvalidGeometry(format!(
                "block size {block_size_bytes} must be in 1..={BLOCK_SIZE_BYTES_MAX} and a multiple of {}",
                2 * data
            )));
        }
        Ok(Self { data, parity, block_size_bytes })
    }

    pub fn data(&self) -> usize {
        self.data
    }
    pub fn parity(&self) -> usize {
        self.parity
    }
    pub fn total(&self) -> usize {
        self.data + self.parity
    }
    pub fn block_size_bytes(&self) -> usize {
        self.block_size_bytes
    }

    /// Number of blocks an object of `object_len` bytes is cut into.
    pub fn block_count(&self, object_len: u64) -> u64 {
        object_len.div_ceil(self.block_size_bytes as u64)
    }

    /// Plaintext length of block `block_index` of an object of `object_len` bytes.
    pub fn block_len(&self, object_len: u64, block_index: u64) -> usize {
        let start = block_index * self.block_size_bytes as u64;
        assert!(start < object_len, "block {block_index} past the end of a {object_len}-byte object");
        (object_len - start).min(self.block_size_bytes as u64) as usize
    }

    /// Length of each piece of a block holding `block_len` bytes: the block is
    /// split evenly across the data pieces, rounded up to an even length (the
    /// codec works on 16-bit symbols); the tail of the last data piece is zero.
    pub fn piece_len(&self, block_len: usize) -> usize {
        assert!(block_len > 0 && block_len <= self.block_size_bytes);
        let len = block_len.div_ceil(self.data);
        len + (len % 2)
    }

    /// Byte offset, inside a shard, of the framed piece of block `block_index`.
    /// Every block but the last is full, so the offset is a simple product.
    pub fn shard_offset(&self, block_index: u64) -> u64 {
        block_index * (self.piece_len(self.block_size_bytes) + HASH_LEN_BYTES) as u64
    }

    /// Total length of one shard of an object of `object_len` bytes.
    pub fn shard_len(&self, object_len: u64) -> u64 {
        let blocks = self.block_count(object_len);
        if blocks == 0 {
            return 0;
        }
        let last = blocks - 1;
        self.shard_offset(last) + (self.piece_len(self.block_len(object_len, last)) + HASH_LEN_BYTES) as u64
    }
}

/// Erasure-codes one block into `total()` pieces (data pieces first).
pub fn encode_block(geometry: &Geometry, block: &[u8]) -> Result<Vec<Bytes>, Error> {
    BlockEncoder::new(*geometry).encode(&Bytes::copy_from_slice(block))
}

/// Codes the blocks of one write in turn, keeping the codec and its working
/// memory between blocks (a fresh codec per block allocates and clears
/// several pieces' worth of memory each time).
pub struct BlockEncoder {
    geometry: Geometry,
    codec: Option<reed_solomon_simd::ReedSolomonEncoder>,
}

impl BlockEncoder {
    pub fn new(geometry: Geometry) -> BlockEncoder {
        BlockEncoder { geometry, codec: None }
    }

    /// The geometry this encoder codes blocks with.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Codes one block into `total()` pieces, data pieces first. When the
    /// block splits evenly (every block but a short last one), the data
    /// pieces are views of `block` itself, not copies; otherwise they are
    /// copies with the tail of the last one zeroed.
    pub fn encode(&mut self, block: &Bytes) -> Result<Vec<Bytes>, Error> {
        self.encode_into(block, Vec::new(), Bytes::from)
    }

    /// [`BlockEncoder::encode`], with the parity pieces laid out one after
    /// another in `parity_buffer` (cleared first; a caller passes a recycled buffer)
    /// and shared as views of what `share` makes of it.
    pub fn encode_into(
        &mut self,
        block: &Bytes,
        parity_buffer: Vec<u8>,
        share: impl FnOnce(Vec<u8>) -> Bytes,
    ) -> Result<Vec<Bytes>, Error> {
        self.encode_into_at(block, parity_buffer, 0, share)
    }

    /// [`BlockEncoder::encode_into`], the parity pieces starting `offset`
    /// bytes into `parity_buffer` (the bytes before are zero): a caller that
    /// wants the pieces at a given place within a memory page (the storage
    /// layer writes such memory from where it is) passes that place.
    pub fn encode_into_at(
        &mut self,
        block: &Bytes,
        mut parity_buffer: Vec<u8>,
        offset: usize,
        share: impl FnOnce(Vec<u8>) -> Bytes,
    ) -> Result<Vec<Bytes>, Error> {
        let Geometry { data, parity, .. } = self.geometry;
        let piece_len = self.geometry.piece_len(block.len());
        let mut pieces: Vec<Bytes> = Vec::with_capacity(self.geometry.total());
        if block.len() == piece_len * data {
            pieces.extend((0..data).map(|i| block.slice(i * piece_len..(i + 1) * piece_len)));
        } else {
            for i in 0..data {
                let start = (i * piece_len).min(block.len());
                let end = ((i + 1) * piece_len).min(block.len());
                let mut piece = BytesMut::zeroed(piece_len);
                piece[..end - start].copy_from_slice(&block[start..end]);
                pieces.push(piece.freeze());
            }
        }
        let codec = match &mut self.codec {
            Some(codec) => {
                codec.reset(data, parity, piece_len).map_err(codec_error)?;
                codec
            }
            None => self
                .codec
                .insert(reed_solomon_simd::ReedSolomonEncoder::new(data, parity, piece_len).map_err(codec_error)?),
        };
        for piece in &pieces {
            codec.add_original_shard(piece).map_err(codec_error)?;
        }
        let result = codec.encode().map_err(codec_error)?;
        parity_buffer.clear();
        parity_buffer.reserve(offset + piece_len * parity);
        parity_buffer.resize(offset, 0);
        for recovery in result.recovery_iter() {
            parity_buffer.extend_from_slice(recovery);
        }
        let shared = share(parity_buffer);
        pieces.extend((0..parity).map(|i| shared.slice(offset + i * piece_len..offset + (i + 1) * piece_len)));
        debug_assert_eq!(pieces.len(), self.geometry.total());
        Ok(pieces)
    }
}

/// Fills in every missing piece (data and parity) from any `data()` present ones.
/// Used by heal to regenerate the pieces of lost shards.
pub fn reconstruct(geometry: &Geometry, pieces: &mut [Option<Vec<u8>>]) -> Result<(), Error> {
    assert_eq!(pieces.len(), geometry.total());
    let have = pieces.iter().filter(|p| p.is_some()).count();
    if have < geometry.data {
        return Err(Error::NotEnoughPieces { have, need: geometry.data });
    }
    if have == geometry.total() {
        return Ok(());
    }
    let data_missing = pieces[..geometry.data].iter().any(Option::is_none);
    if data_missing {
        let restored = decode_data(geometry, pieces)?;
        for (index, piece) in restored {
            pieces[index] = Some(piece);
        }
    }
    if pieces[geometry.data..].iter().any(Option::is_none) {
        let data: Vec<&[u8]> = pieces[..geometry.data].iter().map(|p| p.as_deref().unwrap_or_default()).collect();
        let parity = reed_solomon_simd::encode(geometry.data, geometry.parity, &data).map_err(codec_error)?;
        for (offset, piece) in parity.into_iter().enumerate() {
            let slot = &mut pieces[geometry.data + offset];
            if slot.is_none() {
                *slot = Some(piece);
            }
        }
    }
    Ok(())
}

/// Rebuilds the `block_len` plaintext bytes of a block from any `data()` pieces.
pub fn decode_block<P: AsRef<[u8]>>(
    geometry: &Geometry,
    pieces: &[Option<P>],
    block_len: usize,
) -> Result<Vec<u8>, Error> {
    assert_eq!(pieces.len(), geometry.total());
    let piece_len = geometry.piece_len(block_len);
    for piece in pieces.iter().flatten() {
        if piece.as_ref().len() != piece_len {
            return Err(Error::WrongLength { expected: piece_len, got: piece.as_ref().len() });
        }
    }
    let mut restored = BTreeMap::new();
    if pieces[..geometry.data].iter().any(Option::is_none) {
        restored = decode_data(geometry, pieces)?;
    }
    let mut block = Vec::with_capacity(piece_len * geometry.data);
    for (index, piece) in pieces.iter().enumerate().take(geometry.data) {
        match piece {
            Some(piece) => block.extend_from_slice(piece.as_ref()),
            None => block.extend_from_slice(
                restored.get(&index).ok_or(Error::NotEnoughPieces { have: 0, need: geometry.data })?,
            ),
        }
    }
    block.truncate(block_len);
    Ok(block)
}

fn decode_data<P: AsRef<[u8]>>(geometry: &Geometry, pieces: &[Option<P>]) -> Result<BTreeMap<usize, Vec<u8>>, Error> {
    let have = pieces.iter().filter(|p| p.is_some()).count();
    if have < geometry.data {
        return Err(Error::NotEnoughPieces { have, need: geometry.data });
    }
    let original = pieces[..geometry.data].iter().enumerate().filter_map(|(i, p)| p.as_ref().map(|p| (i, p)));
    let recovery = pieces[geometry.data..].iter().enumerate().filter_map(|(i, p)| p.as_ref().map(|p| (i, p)));
    reed_solomon_simd::decode(geometry.data, geometry.parity, original, recovery).map_err(codec_error)
}

fn codec_error(error: reed_solomon_simd::Error) -> Error {
    Error::Codec(error.to_string())
}

/// The checksum of a piece, bound to its position (shard and block index).
pub fn piece_hash(shard_index: usize, block_index: u64, piece: &[u8]) -> [u8; HASH_LEN_BYTES] {
    let mut hasher = blake3::Hasher::new_derive_key(PIECE_HASH_CONTEXT);
    hasher.update(&(shard_index as u64).to_le_bytes());
    hasher.update(&block_index.to_le_bytes());
    hasher.update(piece);
    *hasher.finalize().as_bytes()
}

/// Appends `piece ‖ hash` to `out`: the framed form that is written to disk.
pub fn frame_piece(shard_index: usize, block_index: u64, piece: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(piece);
    out.extend_from_slice(&piece_hash(shard_index, block_index, piece));
}

/// Checks a framed piece read from disk and returns the piece bytes.
pub fn open_piece(shard_index: usize, block_index: u64, framed: &[u8], piece_len: usize) -> Result<&[u8], Error> {
    if framed.len() != piece_len + HASH_LEN_BYTES {
        return Err(Error::WrongLength { expected: piece_len + HASH_LEN_BYTES, got: framed.len() });
    }
    let (piece, stored) = framed.split_at(piece_len);
    let expected = blake3::Hash::from(piece_hash(shard_index, block_index, piece));
    // blake3::Hash compares in constant time; the hash is not secret, but it costs nothing.
    let stored: [u8; HASH_LEN_BYTES] = stored.try_into().map_err(|_| Error::ChecksumMismatch)?;
    if expected != blake3::Hash::from(stored) {
        return Err(Error::ChecksumMismatch);
    }
    Ok(piece)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry::new(4, 2, 1024).expect("valid geometry")
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn any_data_count_of_pieces_rebuilds_the_block() {
        let g = geometry();
        for len in [1, 2, 3, 7, 100, 1023, 1024] {
            let block = payload(len);
            let pieces = encode_block(&g, &block).expect("encode");
            // Every pair of lost pieces must still decode.
            for a in 0..g.total() {
                for b in a + 1..g.total() {
                    let mut partial: Vec<Option<Vec<u8>>> = pieces.iter().map(|p| Some(p.to_vec())).collect();
                    partial[a] = None;
                    partial[b] = None;
                    assert_eq!(decode_block(&g, &partial, len).expect("decode"), block, "len {len} lost {a},{b}");
                    reconstruct(&g, &mut partial).expect("reconstruct");
                    let rebuilt: Vec<Vec<u8>> = partial.into_iter().map(|p| p.expect("filled")).collect();
                    assert_eq!(rebuilt, pieces.iter().map(|p| p.to_vec()).collect::<Vec<_>>());
                }
            }
        }
    }

    #[test]
    fn a_reused_encoder_codes_like_a_fresh_one_and_does_not_copy_full_blocks() {
        let g = geometry();
        let mut encoder = BlockEncoder::new(g);
        // Full, short, odd, full again: the codec is reset between sizes.
        for len in [1024, 500, 7, 1024, 2] {
            let block = Bytes::from(payload(len));
            let pieces = encoder.encode(&block).expect("encode");
            let fresh = BlockEncoder::new(g).encode(&block).expect("encode");
            assert_eq!(pieces, fresh, "len {len}");
            let mut partial: Vec<Option<Vec<u8>>> = pieces.iter().map(|p| Some(p.to_vec())).collect();
            partial[1] = None;
            partial[2] = None;
            assert_eq!(decode_block(&g, &partial, len).expect("decode"), block.to_vec(), "len {len}");
            if len == 1024 {
                assert_eq!(pieces[0].as_ptr(), block.as_ptr(), "data pieces are views of the block");
                assert_eq!(pieces[1].as_ptr(), block[256..].as_ptr());
            }
            // Parity laid out in a buffer the caller gives, whatever was in it.
            let recycled = vec![0xEE; 3000];
            let address = recycled.as_ptr();
            let shared = encoder.encode_into(&block, recycled, Bytes::from).expect("encode into");
            assert_eq!(shared, fresh, "len {len}: the same pieces");
            assert_eq!(shared[g.data].as_ptr(), address, "len {len}: parity in the given buffer");
            // And at an offset into it, for pieces at a chosen place in a page.
            let recycled = vec![0xEE; 4000];
            let address = recycled.as_ptr();
            let shared = encoder.encode_into_at(&block, recycled, 96, Bytes::from).expect("encode into at");
            assert_eq!(shared, fresh, "len {len}: the same pieces at an offset");
            assert_eq!(shared[g.data].as_ptr(), address.wrapping_add(96), "len {len}: parity from the offset on");
        }
    }

    #[test]
    fn three_lost_pieces_are_reported_not_guessed() {
        let g = geometry();
        let pieces = encode_block(&g, &payload(500)).expect("encode");
        let mut partial: Vec<Option<Vec<u8>>> = pieces.into_iter().map(|p| Some(p.to_vec())).collect();
        partial[0] = None;
        partial[3] = None;
        partial[5] = None;
        assert_eq!(decode_block(&g, &partial, 500), Err(Error::NotEnoughPieces { have: 3, need: 4 }));
    }

    #[test]
    fn framed_piece_detects_flips_and_misplacement() {
        let piece = payload(64);
        let mut framed = Vec::new();
        frame_piece(2, 9, &piece, &mut framed);
        assert_eq!(open_piece(2, 9, &framed, 64).expect("intact"), &piece[..]);
        assert_eq!(open_piece(3, 9, &framed, 64), Err(Error::ChecksumMismatch));
        assert_eq!(open_piece(2, 8, &framed, 64), Err(Error::ChecksumMismatch));
        for bit in [0, 100, 64 * 8 + 5, framed.len() * 8 - 1] {
            let mut bad = framed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(open_piece(2, 9, &bad, 64), Err(Error::ChecksumMismatch), "bit {bit}");
        }
        assert!(matches!(open_piece(2, 9, &framed[..90], 64), Err(Error::WrongLength { .. })));
    }

    #[test]
    fn shard_layout_arithmetic_matches_the_blocks() {
        let g = geometry();
        assert_eq!(g.block_count(0), 0);
        assert_eq!(g.shard_len(0), 0);
        assert_eq!(g.block_count(1024), 1);
        assert_eq!(g.block_count(1025), 2);
        assert_eq!(g.piece_len(1024), 256);
        assert_eq!(g.piece_len(1), 2);
        assert_eq!(g.piece_len(9), 4);
        assert_eq!(g.shard_offset(3), 3 * (256 + 32));
        // 2.5 blocks: two full pieces and a half one.
        assert_eq!(g.shard_len(2560), 2 * 288 + 128 + 32);
    }

    #[test]
    fn invalid_geometries_are_refused() {
        assert!(Geometry::new(0, 2, 1024).is_err());
        assert!(Geometry::new(4, 0, 1024).is_err());
        assert!(Geometry::new(2, 4, 1024).is_err());
        assert!(Geometry::new(4, 2, 1002).is_err());
        assert!(Geometry::new(30, 3, 1 << 20).is_err());
    }
}
