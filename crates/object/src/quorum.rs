//! Turning what each drive says into what the set knows.
//!
//! A version exists for readers only when at least K drives (the read
//! quorum) hold its record: fewer could not rebuild its data anyway, and such
//! a minority is either a write still in flight, a write that failed its
//! quorum and was rolled back, or a record that a later delete missed on a
//! drive that was down. Of several `null` versions of one key (an overwrite
//! whose clean-up has not reached every drive yet) only the newest counts.

use std::collections::BTreeMap;

use bulwark_storage::{StoredVersion, VersionUid};
use bytes::Bytes;

use crate::meta::{self, VersionRecord};

#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub uid: VersionUid,
    pub record: VersionRecord,
    /// `holders[position]`: that drive holds this record, with the bytes most
    /// drives agree on (a drive with another variant, rot or a missed update,
    /// counts as lacking it, so that scans, scrubs and reads queue it for repair).
    pub holders: Vec<bool>,
}

impl Resolved {
    pub fn holder_count(&self) -> usize {
        self.holders.iter().filter(|h| **h).count()
    }
}

/// One uid's record bytes per drive, and how many drives hold each variant.
type UidAnswers = (Vec<Option<Bytes>>, BTreeMap<Bytes, usize>);

/// Resolves the versions of one key from per-drive answers (`None` = no answer).
/// Returns the visible versions, newest first.
pub(crate) fn resolve(per_drive: &[Option<Vec<StoredVersion>>], read_quorum: usize) -> Vec<Resolved> {
    let positions = per_drive.len();
    let mut by_uid: BTreeMap<VersionUid, UidAnswers> = BTreeMap::new();
    for (position, answer) in per_drive.iter().enumerate() {
        for stored in answer.iter().flatten() {
            let entry = by_uid.entry(stored.uid).or_insert_with(|| (vec![None; positions], BTreeMap::new()));
            entry.0[position] = Some(stored.record.clone());
            *entry.1.entry(stored.record.clone()).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    let mut null_seen = false;
    // Newest first: uids are UUIDv7, whose byte order is their age order.
    for (uid, (held, votes)) in by_uid.into_iter().rev() {
        if held.iter().filter(|h| h.is_some()).count() < read_quorum {
            continue;
        }
        // The record bytes most drives agree on; a minority variant is rot.
        let Some((raw, _)) = votes.iter().max_by_key(|(_, count)| **count) else {
            continue;
        };
        let Ok(record) = meta::decode::<VersionRecord>("version", raw) else {
            continue;
        };
        if record.version_id.is_none() {
            if null_seen {
                continue;
            }
            null_seen = true;
        }
        let holders = held.iter().map(|bytes| bytes.as_ref() == Some(raw)).collect();
        out.push(Resolved { uid, record, holders });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(uid: u8, version_id: Option<&str>) -> StoredVersion {
        StoredVersion {
            key: "k".into(),
            uid: [uid; 16],
            record: meta::encode(&VersionRecord {
                version_id: version_id.map(str::to_owned),
                mod_time_ns: i64::from(uid),
                delete_marker: false,
                size: 0,
                etag: String::new(),
                headers: Default::default(),
                user_meta: Default::default(),
                layout: None,
                checksum: None,
                encryption: None,
                tags: Default::default(),
            }),
        }
    }

    fn check(per_drive: Vec<Option<Vec<StoredVersion>>>, quorum: usize, expected: &[u8]) {
        let got: Vec<u8> = resolve(&per_drive, quorum).iter().map(|r| r.uid[0]).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn minority_records_are_invisible() {
        let full = || Some(vec![stored(1, None)]);
        let newer = || Some(vec![stored(2, None), stored(1, None)]);
        // A newer null version on 3 of 6 drives (K = 4) is a failed or in-flight write.
        check(vec![newer(), newer(), newer(), full(), full(), full()], 4, &[1]);
        // On 4 drives it is the object; the older null version is superseded.
        check(vec![newer(), newer(), newer(), newer(), full(), full()], 4, &[2]);
        // Drives that do not answer count as not holding anything.
        check(vec![None, None, None, full(), full(), full()], 4, &[]);
    }

    #[test]
    fn versioned_records_are_all_visible_newest_first() {
        let drive = || Some(vec![stored(3, Some("c")), stored(2, None), stored(1, Some("a"))]);
        check(vec![drive(), drive(), drive(), drive(), drive(), drive()], 4, &[3, 2, 1]);
    }

    #[test]
    fn the_majority_record_wins_over_a_rotten_copy() {
        let mut bad = stored(1, None);
        bad.record = Bytes::from_static(b"\x01{not json");
        let good = || Some(vec![stored(1, None)]);
        let resolved = resolve(&[Some(vec![bad]), good(), good(), good(), good(), good()], 4);
        assert_eq!(resolved.len(), 1);
        // The rotten copy counts toward visibility (the drive holds the uid)
        // but not as a holder: scans, scrubs and reads queue it for repair.
        assert_eq!(resolved[0].holder_count(), 5);
        assert!(!resolved[0].holders[0]);
    }
}
