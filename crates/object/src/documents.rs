//! Replicated documents: small, whole-value state that must be as durable
//! as object data (identities now, the keystore later).
//!
//! A document is kept as the system entry `doc/<name>` on every drive of
//! the first erasure set, as `magic ‖ generation (u64 BE) ‖ BLAKE3(generation ‖ body) ‖
//! body`. A write goes to every usable drive and succeeds at write quorum
//! across facilities, like an object write; one that misses the quorum puts
//! back what each drive held before. A read asks every online drive and takes
//! the highest generation whose checksum holds, so a drive that missed an
//! update or returned corrupt bytes is outvoted; should two bodies carry that
//! generation (a failed write whose rollback failed too), the one most drives
//! hold wins. Drives that hold another copy are rewritten by
//! [`ObjectStore::repair_documents`].
//!
//! Writers must serialise updates of one document themselves (the identity
//! store holds a lock), always write a generation above the last one they
//! tried, and after a failed write never reuse its generation.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use futures::future::join_all;

use crate::store::ObjectStore;
use crate::{Error, Result};
use bulwark_storage::MetaOp;

const PREFIX: &str = "doc/";
const MAGIC: &[u8; 6] = b"BWDOC1";
const HEADER_LEN: usize = MAGIC.len() + 8 + 32;

/// A document as stored: its generation and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub generation: u64,
    pub body: Bytes,
}

/// BLAKE3 over generation and body, so neither can change unnoticed.
fn checksum(generation: u64, body: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&generation.to_be_bytes());
    hasher.update(body);
    hasher.finalize()
}

fn encode(doc: &Document) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + doc.body.len());
    out.put_slice(MAGIC);
    out.put_u64(doc.generation);
    out.put_slice(checksum(doc.generation, &doc.body).as_bytes());
    out.put_slice(&doc.body);
    out.freeze()
}

fn decode(raw: &Bytes) -> Option<Document> {
    if raw.len() < HEADER_LEN || &raw[..MAGIC.len()] != MAGIC {
        return None;
    }
    let generation = u64::from_be_bytes(raw[6..14].try_into().ok()?);
    let body = raw.slice(HEADER_LEN..);
    let ok = checksum(generation, &body).as_bytes()[..] == raw[14..HEADER_LEN];
    ok.then_some(Document { generation, body })
}

fn entry_name(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The document the copies stand for: the highest generation, and of the
/// bodies carrying it the one most drives hold (ties go to the larger body
/// bytes, so every reader picks the same).
fn newest(copies: &[(usize, Option<Document>)]) -> Option<Document> {
    let top = copies.iter().filter_map(|(_, d)| d.as_ref()).map(|d| d.generation).max()?;
    let mut votes: BTreeMap<&Bytes, usize> = BTreeMap::new();
    for doc in copies.iter().filter_map(|(_, d)| d.as_ref()).filter(|d| d.generation == top) {
        *votes.entry(&doc.body).or_default() += 1;
    }
    let (body, _) = votes.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)))?;
    Some(Document { generation: top, body: body.clone() })
}

impl ObjectStore {
    /// Every online drive's copy of a document (`None` where absent or bad).
    async fn document_copies(&self, name: &str) -> Vec<(usize, Option<Document>)> {
        let set = &self.sets()[0];
        let entry = entry_name(name);
        join_all(set.online_positions().into_iter().map(|p| {
            let drive = set.drives[p].clone();
            let entry = entry.clone();
            async move {
                match drive.get_system(&entry).await {
                    Ok(Some(raw)) => {
                        let doc = decode(&raw);
                        if doc.is_none() {
                            tracing::error!(drive = %drive.info().label, document = %entry, "document copy is corrupt");
                        }
                        (p, doc)
                    }
                    Ok(None) => (p, None),
                    Err(e) => {
                        tracing::warn!(drive = %drive.info().label, document = %entry, error = %e, "cannot read document");
                        (p, None)
                    }
                }
            }
        }))
        .await
    }

    /// The newest intact copy of a document, if any drive holds one.
    pub async fn load_document(&self, name: &str) -> Result<Option<Document>> {
        let set = &self.sets()[0];
        let copies = self.document_copies(name).await;
        if copies.len() < set.data() {
            // Fewer than K drives answer: an absent document could be a
            // document we cannot see, so refuse rather than start empty.
            return Err(Error::InsufficientDrives { needed: set.data(), available: copies.len() });
        }
        Ok(newest(&copies))
    }

    /// Stores a document on every usable drive; succeeds at write quorum.
    /// Short of it, the drives that took the new copy get back what they held.
    pub async fn store_document(&self, name: &str, doc: &Document) -> Result<()> {
        let set = &self.sets()[0];
        let positions = set.usable_positions().await;
        set.require_writable(&positions)?;
        let before = self.document_copies(name).await;
        let value = encode(doc);
        let entry = entry_name(name);
        let commits = positions.iter().map(|&p| {
            let drive = set.drives[p].clone();
            let op = MetaOp::PutSystem { name: entry.clone(), value: value.clone() };
            async move {
                match drive.commit(vec![op]).await {
                    Ok(()) => Some(p),
                    Err(e) => {
                        tracing::warn!(drive = %drive.info().label, error = %e, "document commit failed");
                        None
                    }
                }
            }
        });
        let ok: Vec<usize> = join_all(commits).await.into_iter().flatten().collect();
        if !set.write_satisfied(&ok) {
            let rollback = ok.iter().map(|&p| {
                let drive = set.drives[p].clone();
                let op = match before.iter().find(|(q, _)| *q == p).and_then(|(_, d)| d.as_ref()) {
                    Some(previous) => MetaOp::PutSystem { name: entry.clone(), value: encode(previous) },
                    None => MetaOp::DeleteSystem { name: entry.clone() },
                };
                async move {
                    if let Err(e) = drive.commit(vec![op]).await {
                        tracing::warn!(drive = %drive.info().label, error = %e, "document rollback failed");
                    }
                }
            });
            join_all(rollback).await;
        }
        set.require_writable(&ok)
    }

    /// Rewrites stale, missing or corrupt document copies with the newest.
    pub(crate) async fn repair_documents(&self) {
        let set = &self.sets()[0];
        let mut names = std::collections::BTreeSet::new();
        for p in set.online_positions() {
            if let Ok(entries) = set.drives[p].list_system(PREFIX).await {
                names.extend(entries.into_iter().map(|(n, _)| n[PREFIX.len()..].to_owned()));
            }
        }
        for name in names {
            let copies = self.document_copies(&name).await;
            let Some(newest) = newest(&copies) else {
                continue;
            };
            let value = encode(&newest);
            for (p, copy) in copies {
                if copy.as_ref() == Some(&newest) {
                    continue;
                }
                let drive = &set.drives[p];
                tracing::info!(drive = %drive.info().label, document = %name, "restoring document copy");
                let op = MetaOp::PutSystem { name: entry_name(&name), value: value.clone() };
                if let Err(e) = drive.commit(vec![op]).await {
                    tracing::warn!(drive = %drive.info().label, error = %e, "could not restore document");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(generation: u64, body: &'static [u8]) -> Option<Document> {
        Some(Document { generation, body: Bytes::from_static(body) })
    }

    #[test]
    fn the_newest_generation_wins_and_of_two_bodies_at_it_the_one_most_drives_hold() {
        let copies = vec![(0, doc(4, b"old")), (1, doc(5, b"new")), (2, None), (3, doc(4, b"old"))];
        assert_eq!(newest(&copies), doc(5, b"new"), "a higher generation outranks more copies");
        // A failed write's body left on one drive, the committed one on three.
        let copies = vec![(0, doc(6, b"failed")), (1, doc(6, b"kept")), (2, doc(6, b"kept")), (3, doc(6, b"kept"))];
        assert_eq!(newest(&copies), doc(6, b"kept"));
        let copies = vec![(0, doc(6, b"kept")), (1, doc(6, b"kept")), (2, doc(6, b"failed")), (5, doc(6, b"kept"))];
        assert_eq!(newest(&copies), doc(6, b"kept"), "whatever the drive order");
        assert_eq!(newest(&[(0, None), (1, None)]), None);
    }

    #[test]
    fn a_flipped_byte_makes_a_copy_unreadable() {
        let doc = Document { generation: 7, body: Bytes::from_static(b"{\"users\":{}}") };
        let raw = encode(&doc);
        assert_eq!(decode(&raw), Some(doc));
        for i in 0..raw.len() {
            let mut bad = raw.to_vec();
            bad[i] ^= 0x40;
            assert_eq!(decode(&Bytes::from(bad)), None, "byte {i}");
        }
    }
}
