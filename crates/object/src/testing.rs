//! A store on six local directories in three facilities, one 4+2 set: the
//! shape of the embedded default, for tests of this and higher layers
//! (real drives, nothing mocked).

use std::path::Path;
use std::sync::Arc;

use bulwark_storage::Drive;
use bulwark_storage::local::{FORMAT_VERSION, Format, LocalDrive};

use crate::{ErasureSet, ObjectStore, SetConfig};

/// Formats `dir/drive-{0..6}` and opens a store over them; also returns the
/// drives, for tests that reach under the store.
pub async fn local_store(dir: &Path) -> (ObjectStore, Vec<Arc<dyn Drive>>) {
    let mut drives: Vec<Arc<dyn Drive>> = Vec::new();
    for position in 0..6 {
        let root = dir.join(format!("drive-{position}"));
        std::fs::create_dir_all(&root).expect("drive dir");
        let format = Format {
            format: FORMAT_VERSION,
            cluster_id: "test".into(),
            drive_id: format!("d{position}"),
            set_index: 0,
            position,
            facility: format!("f{}", position / 2),
        };
        format.write(&root).expect("format");
        drives.push(Arc::new(LocalDrive::open(&root, format).expect("open")));
    }
    let set =
        ErasureSet::new(drives.clone(), SetConfig { data: 4, parity: 2, write_quorum: 5, strict_facility: false })
            .expect("set");
    (ObjectStore::open(vec![set]).await.expect("store"), drives)
}

/// Takes the drive at `position` of a [`local_store`] under `dir` offline (its
/// format file moved away, as when its disk is pulled) or brings it back.
pub async fn set_drive_online(dir: &Path, drive: &Arc<dyn Drive>, position: usize, online: bool) {
    let system = dir.join(format!("drive-{position}")).join(".bulwark");
    let (present, away) = (system.join("format.json"), system.join("format.json.away"));
    let (from, to) = if online { (away, present) } else { (present, away) };
    std::fs::rename(from, to).expect("move the format file");
    assert_eq!(drive.check_health().await, online, "drive {position} online = {online}");
}
