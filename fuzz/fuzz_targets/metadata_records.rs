//! Metadata records and composite keys read from a drive's store: decoding
//! arbitrary bytes must fail cleanly, and what decodes must re-encode.
#![no_main]
use bulwark_object::meta::{self, PartRecord, UploadRecord, VersionRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = meta::decode::<VersionRecord>("version", data) {
        let again: VersionRecord = meta::decode("version", &meta::encode(&record)).expect("round trip");
        assert_eq!(again, record);
    }
    let _ = meta::decode::<UploadRecord>("upload", data);
    let _ = meta::decode::<PartRecord>("part", data);
    let _ = bulwark_storage::keys::split_version_key(data);
    let _ = bulwark_storage::keys::pop_component(data);
});
