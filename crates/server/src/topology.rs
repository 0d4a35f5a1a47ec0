//! Opening drives: recognising formatted drives, formatting a new cluster,
//! and taking in blank replacements.
//!
//! Each drive's `format.json` names the cluster, the set and the position the
//! drive holds. At start-up:
//! - no drive formatted: a new cluster id is made and every reachable drive
//!   is formatted;
//! - otherwise the cluster id is the one most drives carry; a drive without a
//!   format (blank, e.g. replaced) is formatted into its slot and will be
//!   rebuilt by healing; a drive from another cluster or slot is left offline.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bulwark_storage::local::{FORMAT_VERSION, Format, LocalDrive};
use bulwark_storage::swap::SwappableDrive;
use bulwark_storage::{Drive, DriveInfo, OfflineDrive};

use crate::ServerError;
use crate::config::{Config, DriveConfig};

/// One position of one set: its configured drive, the identity a drive there
/// must carry, and the drive currently in it.
pub struct Slot {
    pub config: DriveConfig,
    pub expected: Format,
    pub drive: Arc<SwappableDrive>,
}

pub fn open_sets(config: &Config) -> Result<Vec<Vec<Slot>>, ServerError> {
    let n = config.erasure.data + config.erasure.parity;
    if config.create_drives {
        for drive in &config.drives {
            std::fs::create_dir_all(&drive.path).map_err(|e| {
                ServerError::Topology(format!("cannot create drive directory {}: {e}", drive.path.display()))
            })?;
        }
    }
    let formats: Vec<Option<Format>> = config
        .drives
        .iter()
        .map(|d| match Format::read(&d.path) {
            Ok(format) => format,
            Err(e) => {
                tracing::error!(drive = %d.path.display(), error = %e, "unreadable format; drive left offline");
                None
            }
        })
        .collect();
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for format in formats.iter().flatten() {
        *votes.entry(format.cluster_id.as_str()).or_default() += 1;
    }
    let cluster_id = match votes.into_iter().max_by_key(|(_, count)| *count) {
        Some((id, _)) => id.to_owned(),
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            tracing::info!(cluster = %id, drives = config.drives.len(), "formatting a new cluster");
            id
        }
    };
    let mut sets = Vec::new();
    for (set_index, chunk) in config.drives.chunks(n).enumerate() {
        let mut drives: Vec<Slot> = Vec::with_capacity(n);
        for (position, drive) in chunk.iter().enumerate() {
            let global = set_index * n + position;
            let expected = Format {
                format: FORMAT_VERSION,
                cluster_id: cluster_id.clone(),
                drive_id: String::new(),
                set_index,
                position,
                facility: drive.facility.clone(),
            };
            let opened = open_drive(drive, &formats[global], expected.clone());
            drives.push(Slot { config: drive.clone(), expected, drive: Arc::new(SwappableDrive::new(opened)) });
        }
        sets.push(drives);
    }
    Ok(sets)
}

fn open_drive(config: &DriveConfig, found: &Option<Format>, mut expected: Format) -> Arc<dyn Drive> {
    let info = DriveInfo { label: config.path.display().to_string(), facility: config.facility.clone() };
    let offline = |why: &str| -> Arc<dyn Drive> {
        tracing::error!(drive = %config.path.display(), reason = why, "drive offline");
        Arc::new(OfflineDrive::new(info.clone()))
    };
    if !config.path.is_dir() {
        return offline("directory missing");
    }
    let format = match found {
        Some(format) => {
            let same_slot = format.cluster_id == expected.cluster_id
                && format.set_index == expected.set_index
                && format.position == expected.position;
            if !same_slot {
                return offline("drive belongs to another cluster or slot");
            }
            if format.facility != expected.facility {
                tracing::warn!(drive = %config.path.display(), old = %format.facility, new = %expected.facility,
                    "facility label changed in the configuration; using the configured one");
            }
            Format { facility: expected.facility.clone(), ..format.clone() }
        }
        None => {
            if !is_blank(&config.path) {
                return offline("unformatted but not empty; refusing to take it over");
            }
            expected.drive_id = uuid::Uuid::new_v4().to_string();
            tracing::info!(drive = %config.path.display(), "formatting blank drive");
            expected
        }
    };
    if found.as_ref() != Some(&format)
        && let Err(e) = format.write(&config.path)
    {
        return offline(&format!("cannot write format: {e}"));
    }
    match LocalDrive::open(&config.path, format) {
        Ok(drive) => Arc::new(drive),
        Err(e) => offline(&format!("cannot open: {e}")),
    }
}

/// Formats and swaps in a blank replacement for an offline drive, if one is
/// there now. Returns whether a drive was swapped in.
pub fn replace_if_blank(slot: &Slot) -> bool {
    if slot.drive.is_online() || !slot.config.path.is_dir() || !is_blank(&slot.config.path) {
        return false;
    }
    let drive = open_drive(&slot.config, &None, slot.expected.clone());
    if !drive.is_online() {
        return false;
    }
    tracing::warn!(drive = %slot.config.path.display(), "blank replacement drive formatted and taken into service");
    slot.drive.replace(drive);
    true
}

/// A drive directory that holds nothing but (possibly) our own empty
/// scaffolding can be formatted; anything else might be someone's data.
fn is_blank(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    entries.flatten().all(|entry| {
        let name = entry.file_name();
        (name == ".bulwark" || name == "data") && dir_has_no_files(&entry.path())
    })
}

fn dir_has_no_files(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    entries.flatten().all(|e| e.file_type().is_ok_and(|t| t.is_dir()) && dir_has_no_files(&e.path()))
}
