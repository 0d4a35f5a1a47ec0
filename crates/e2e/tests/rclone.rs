//! A user of rclone (Debian's 1.60) works with Bulwark as with S3: copies a tree
//! with a file rclone uploads in parts, checks it by MD5 and by content, keeps
//! modification times, copies server-side, reads a range, syncs both ways with
//! deletion and purges; and, over TLS, turns versioning on, reads an old
//! version, deletes (leaving delete markers) and cleans the hidden versions up.
//!
//! rclone must be installed (`apt-get install rclone`, as `.ci/run` does);
//! without it these tests fail.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bulwark_e2e::rclone::Rclone;
use bulwark_e2e::{TestServer, etag_of, get_bytes, md5_bytes, md5_hex, multipart_etag, payload, read_file, write_file};

const MIB: usize = 1024 * 1024;
/// rclone's part size and multipart threshold in these tests (its defaults, 5
/// MiB parts above 200 MiB, would need far larger files).
const PART_BYTES: usize = 5 * MIB;
const BIG_BYTES: usize = 12 * MIB;

/// `(path, size, md5)` of every file `lsjson -R --hash` printed, sorted by path.
fn listed_files(listing: &serde_json::Value) -> Vec<(String, u64, String)> {
    let mut files: Vec<(String, u64, String)> = listing
        .as_array()
        .expect("lsjson prints an array")
        .iter()
        .filter(|entry| entry["IsDir"] == false)
        .map(|entry| {
            (
                entry["Path"].as_str().expect("a path").to_owned(),
                entry["Size"].as_u64().expect("a size"),
                entry["Hashes"]["md5"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_checks_keeps_mtimes_copies_server_side_reads_ranges_syncs_and_purges() {
    let server = TestServer::start().await;
    let client = server.client();
    let scratch = server.scratch_dir();
    let rclone = Rclone::new(&server, &scratch);
    let bucket = "rclone-tree";
    let multipart = ["--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"];

    let source = scratch.join("source");
    let small = b"a small file from rclone\n".repeat(10);
    let nested = payload(2, 300 * 1024);
    let big = payload(3, BIG_BYTES);
    write_file(&source.join("small.txt"), &small);
    write_file(&source.join("deep/er/nested.bin"), &nested);
    write_file(&source.join("big.bin"), &big);
    // A modification time rclone must carry in the object's metadata and bring back.
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_834_367) + Duration::from_nanos(123_456_789);
    std::fs::File::options()
        .write(true)
        .open(source.join("small.txt"))
        .and_then(|file| file.set_modified(mtime))
        .expect("set the small file's modification time");

    rclone.run(&scratch, &["mkdir", &Rclone::remote(bucket)]).await;
    let mut args = vec!["copy", "source"];
    let target = Rclone::remote(&format!("{bucket}/tree"));
    args.push(&target);
    args.extend(multipart);
    rclone.run(&scratch, &args).await;

    // What rclone stored, seen by another client: the big file in three parts,
    // with rclone's whole-file MD5 in its metadata; the others single-part.
    let head = client.head_object().bucket(bucket).key("tree/big.bin").send().await.expect("HeadObject of big.bin");
    let part_md5s: Vec<[u8; 16]> = big.chunks(PART_BYTES).map(md5_bytes).collect();
    assert_eq!(part_md5s.len(), 3);
    assert_eq!(head.e_tag(), Some(multipart_etag(&part_md5s).as_str()), "rclone uploaded 12 MiB in three parts");
    let whole_md5 = base64::engine::general_purpose::STANDARD.encode(md5_bytes(&big));
    assert_eq!(
        head.metadata().and_then(|m| m.get("md5chksum")).map(String::as_str),
        Some(whole_md5.as_str()),
        "rclone's X-Amz-Meta-Md5chksum comes back"
    );
    assert_eq!(get_bytes(&client, bucket, "tree/big.bin").await, big, "the multipart upload reads back whole");
    let head = client.head_object().bucket(bucket).key("tree/small.txt").send().await.expect("HeadObject");
    assert_eq!(head.e_tag(), Some(etag_of(&small).as_str()));

    // rclone's own view: sizes and MD5s (the ETag, or the metadata for the
    // multipart one), and the modification time it stored.
    let listing = rclone.run_json(&scratch, &["lsjson", "-R", "--hash", &target]).await;
    assert_eq!(
        listed_files(&listing),
        [
            ("big.bin".to_owned(), BIG_BYTES as u64, md5_hex(&big)),
            ("deep/er/nested.bin".to_owned(), nested.len() as u64, md5_hex(&nested)),
            ("small.txt".to_owned(), small.len() as u64, md5_hex(&small)),
        ],
        "lsjson said: {listing}"
    );
    let small_entry = listing
        .as_array()
        .expect("lsjson prints an array")
        .iter()
        .find(|e| e["Path"] == "small.txt")
        .expect("small.txt listed");
    assert_eq!(small_entry["ModTime"], "2021-03-04T05:06:07.123456789Z", "the modification time round-trips");
    let checked = rclone.run(&scratch, &["check", "source", &target]).await;
    assert!(checked.stderr.contains("0 differences found"), "check by hash said: {}", checked.stderr);
    let checked = rclone.run(&scratch, &["check", "--download", "source", &target]).await;
    assert!(checked.stderr.contains("3 matching files"), "check by content said: {}", checked.stderr);

    // A copy inside the store is a server-side copy (CopyObject).
    let copied = rclone
        .run(
            &scratch,
            &["copyto", "-v", &format!("{target}/small.txt"), &Rclone::remote(&format!("{bucket}/copy.txt"))],
        )
        .await;
    assert!(copied.stderr.contains("server-side copy"), "copyto said: {}", copied.stderr);
    assert_eq!(get_bytes(&client, bucket, "copy.txt").await, small);

    // A range across the first part boundary of the multipart object.
    let offset = PART_BYTES - 1000;
    let ranged = rclone
        .run(&scratch, &["cat", "--offset", &offset.to_string(), "--count", "3000", &format!("{target}/big.bin")])
        .await;
    assert!(ranged.bytes == big[offset..offset + 3000], "cat --offset --count printed other bytes");

    // Sync down: the same tree, byte for byte.
    rclone.run(&scratch, &["sync", &target, "back"]).await;
    for name in ["small.txt", "deep/er/nested.bin", "big.bin"] {
        assert_eq!(read_file(&scratch.join("back").join(name)), read_file(&source.join(name)), "{name} synced down");
    }
    // Sync up after a local delete and change: the object goes, the change lands.
    std::fs::remove_file(source.join("deep/er/nested.bin")).expect("remove a local file");
    let changed = payload(4, 7 * MIB);
    write_file(&source.join("big.bin"), &changed);
    let mut args = vec!["sync", "source", &target];
    args.extend(multipart);
    rclone.run(&scratch, &args).await;
    let gone = client.head_object().bucket(bucket).key("tree/deep/er/nested.bin").send().await;
    assert_eq!(gone.map_err(|e| e.raw_response().map(|r| r.status().as_u16())).err(), Some(Some(404)));
    assert_eq!(get_bytes(&client, bucket, "tree/big.bin").await, changed, "the changed file replaced the object");

    rclone.run(&scratch, &["purge", &Rclone::remote(bucket)]).await;
    let buckets = rclone.run(&scratch, &["lsd", &Rclone::remote("")]).await;
    assert!(!buckets.stdout.contains(bucket), "purge removed the bucket: {}", buckets.stdout);
    assert!(client.head_bucket().bucket(bucket).send().await.is_err(), "the bucket is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_over_tls_turns_versioning_on_reads_an_old_version_and_cleans_hidden_versions_up() {
    let server = TestServer::start_tls().await;
    let client = server.client();
    let scratch = server.scratch_dir();
    let rclone = Rclone::new(&server, &scratch);
    let bucket = "rclone-versions";
    let root = Rclone::remote(bucket);
    let object = Rclone::remote(&format!("{bucket}/notes.txt"));

    rclone.run(&scratch, &["mkdir", &root]).await;
    let said = rclone.run(&scratch, &["backend", "versioning", &root, "Enabled"]).await;
    assert_eq!(said.stdout.trim(), "Enabled");
    let status = client.get_bucket_versioning().bucket(bucket).send().await.expect("GetBucketVersioning");
    assert_eq!(status.status().map(|s| s.as_str()), Some("Enabled"));

    let first = b"first words\n".to_vec();
    let second = b"second thoughts, longer\n".to_vec();
    write_file(&scratch.join("notes.txt"), &first);
    rclone.run(&scratch, &["copyto", "notes.txt", &object]).await;
    write_file(&scratch.join("notes.txt"), &second);
    rclone.run(&scratch, &["copyto", "notes.txt", &object]).await;

    let current = rclone.run(&scratch, &["cat", &object]).await;
    assert_eq!(current.bytes, second);
    // rclone names an old version `<stem>-v<its time>.<ext>` and reads it by that name.
    let listed = rclone.run(&scratch, &["lsf", "--s3-versions", &root]).await.stdout;
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(names.len(), 2, "the object and its old version: {listed}");
    let old = names.iter().find(|n| n.starts_with("notes-v")).expect("an old version is listed");
    let read_old = rclone.run(&scratch, &["cat", "--s3-versions", &format!("{root}/{old}")]).await;
    assert_eq!(read_old.bytes, first, "the overwritten bytes are still there");

    // Deleting in a versioned bucket hides; nothing is lost.
    rclone.run(&scratch, &["delete", &root]).await;
    assert_eq!(rclone.run(&scratch, &["lsf", &root]).await.stdout, "", "nothing is current after delete");
    let versions = client.list_object_versions().bucket(bucket).send().await.expect("ListObjectVersions");
    assert_eq!(versions.versions().len(), 2, "both versions kept");
    assert_eq!(versions.delete_markers().len(), 1, "one delete marker");
    assert!(versions.delete_markers()[0].is_latest() == Some(true));

    // cleanup-hidden removes old versions and delete markers for good.
    rclone.run(&scratch, &["backend", "cleanup-hidden", &root]).await;
    let versions = client.list_object_versions().bucket(bucket).send().await.expect("ListObjectVersions");
    assert!(
        versions.versions().is_empty() && versions.delete_markers().is_empty(),
        "cleanup-hidden left {:?} / {:?}",
        versions.versions(),
        versions.delete_markers()
    );
    rclone.run(&scratch, &["rmdir", &root]).await;
    assert!(client.head_bucket().bucket(bucket).send().await.is_err(), "the empty bucket was removed");
}
