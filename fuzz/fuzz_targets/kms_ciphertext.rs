//! KMS ciphertext blobs from Decrypt, ReEncrypt and stored data keys: parsing arbitrary bytes must
//! fail cleanly or yield a header whose sealed part then fails to authenticate, never panic; and
//! whatever the KMS seals parses and opens again.
#![no_main]
use bulwark_kms::EncryptionContext;
use bulwark_kms::ciphertext::{BLOB_BYTES_MAX, PLAINTEXT_BYTES_MAX, parse, seal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let material = bulwark_crypto::Key32::from_bytes([7; 32]);
    let context: EncryptionContext = [("aws:s3:arn".to_owned(), "arn:aws:s3:::b/k".to_owned())].into();
    if let Ok(blob) = parse(data) {
        assert!(data.len() <= BLOB_BYTES_MAX);
        assert!(blob.key_version >= 1);
        // Forging an AES-GCM tag is not something a fuzzer does.
        assert!(blob.open(&material, &context).is_err());
    }
    if data.len() <= PLAINTEXT_BYTES_MAX {
        let id = uuid::Uuid::from_u128(0x6f1c3a4e_0000_4000_8000_000000000001);
        let sealed = seal(&material, id, 3, &context, data).expect("seal");
        let blob = parse(&sealed).expect("what the KMS seals parses");
        assert_eq!((blob.key_id, blob.key_version), (id, 3));
        assert_eq!(blob.open(&material, &context).expect("opens").as_slice(), data);
    }
});
