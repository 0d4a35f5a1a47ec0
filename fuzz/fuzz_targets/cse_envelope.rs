//! S3 Encryption Client envelopes come from object metadata and `.instruction`
//! files that anyone with write access to the bucket controls: decoding them
//! must fail cleanly or give an envelope that stores and decodes again the same
//! way, never panic.
#![no_main]
use bulwark_cse::envelope::{Metadata, parse_context};
use bulwark_cse::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte picks the path; the rest is split into metadata entries
    // ("key\u{1}value" lines) and an instruction file body.
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let (meta_text, instruction) = text.split_once('\u{2}').unwrap_or((&text, ""));
    let metadata: Metadata = meta_text
        .lines()
        .filter_map(|line| line.split_once('\u{1}'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let _ = parse_context(Some(meta_text));
    let decoded = if mode % 2 == 0 {
        Envelope::from_metadata(&metadata)
    } else {
        Envelope::from_instruction_file(&metadata, instruction.as_bytes())
    };
    if let Ok(envelope) = decoded
        && let Ok(stored) = envelope.to_storage(false)
    {
        let again = Envelope::from_metadata(&stored.metadata).expect("a stored envelope decodes");
        assert_eq!(again.to_storage(false).map(|s| s.metadata).ok(), Some(stored.metadata));
    }
});
