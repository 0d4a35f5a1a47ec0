//! A user of the AWS CLI (v1) works with Bulwark as with S3: makes a bucket, copies
//! a small and a 20 MiB file (which the CLI uploads in parts) both ways, lists,
//! syncs a directory tree both ways, inspects an object and removes everything.
//!
//! The CLI must be installed (`pip install awscli`); without it this test fails.

use bulwark_e2e::aws_cli::AwsCli;
use bulwark_e2e::{TestServer, etag_of, md5_bytes, md5_hex, multipart_etag, payload, read_file, write_file};

const BUCKET: &str = "cli-bucket";
const MIB: usize = 1024 * 1024;
/// The CLI's default multipart threshold and part size are both 8 MiB.
const CLI_PART_BYTES: usize = 8 * MIB;
const BIG_BYTES: usize = 20 * MIB;

/// `(size, key)` of each object line of `aws s3 ls` output.
fn listed_objects(stdout: &str) -> Vec<(u64, String)> {
    let mut objects: Vec<(u64, String)> = stdout
        .lines()
        .filter(|line| !line.trim_start().starts_with("PRE "))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_date, _time) = (fields.next()?, fields.next()?);
            let size = fields.next()?.parse().ok()?;
            let key = fields.collect::<Vec<_>>().join(" ");
            Some((size, key))
        })
        .collect();
    objects.sort_by(|a, b| a.1.cmp(&b.1));
    objects
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_makes_copies_lists_syncs_heads_and_removes_buckets_and_objects() {
    let server = TestServer::start().await;
    let client = server.client();
    let scratch = server.scratch_dir();
    let cli = AwsCli::new(&server, &scratch);
    let dir = scratch.as_path();

    let made = cli.run(dir, &["s3", "mb", &format!("s3://{BUCKET}")]).await;
    assert!(made.contains(&format!("make_bucket: {BUCKET}")), "mb said: {made}");
    let buckets = cli.run(dir, &["s3", "ls"]).await;
    assert!(buckets.contains(BUCKET), "s3 ls lists the bucket: {buckets}");

    let small: Vec<u8> = b"hello from the aws cli\n".repeat(40);
    let big = payload(1, BIG_BYTES);
    write_file(&dir.join("small.txt"), &small);
    write_file(&dir.join("big.bin"), &big);
    for name in ["small.txt", "big.bin"] {
        let said = cli.run(dir, &["s3", "cp", name, &format!("s3://{BUCKET}/{name}")]).await;
        assert!(said.contains("upload:"), "cp {name} said: {said}");
    }
    let big_head =
        client.head_object().bucket(BUCKET).key("big.bin").send().await.expect("HeadObject of the CLI's upload");
    let chunk_md5s: Vec<[u8; 16]> = big.chunks(CLI_PART_BYTES).map(md5_bytes).collect();
    assert_eq!(big_head.e_tag(), Some(multipart_etag(&chunk_md5s).as_str()), "the CLI uploaded 20 MiB as three parts");

    let listing = cli.run(dir, &["s3", "ls", &format!("s3://{BUCKET}/")]).await;
    assert_eq!(
        listed_objects(&listing),
        [(BIG_BYTES as u64, "big.bin".to_owned()), (small.len() as u64, "small.txt".to_owned())],
        "s3 ls said: {listing}"
    );

    for name in ["small.txt", "big.bin"] {
        let target = format!("{name}.downloaded");
        let said = cli.run(dir, &["s3", "cp", &format!("s3://{BUCKET}/{name}"), &target]).await;
        assert!(said.contains("download:"), "cp down {name} said: {said}");
        let original = read_file(&dir.join(name));
        let downloaded = read_file(&dir.join(&target));
        assert!(
            downloaded.len() == original.len() && md5_hex(&downloaded) == md5_hex(&original),
            "{name} downloads byte-identical"
        );
    }

    let tree = [
        ("tree/a.txt", payload(2, 100)),
        ("tree/sub/b.bin", payload(3, 300 * 1024)),
        ("tree/sub/deeper/c.txt", payload(4, 5)),
    ];
    for (path, bytes) in &tree {
        write_file(&dir.join(path), bytes);
    }
    let synced = cli.run(dir, &["s3", "sync", "tree", &format!("s3://{BUCKET}/tree")]).await;
    assert_eq!(synced.matches("upload:").count(), 3, "sync uploads three files: {synced}");
    let again = cli.run(dir, &["s3", "sync", "tree", &format!("s3://{BUCKET}/tree")]).await;
    assert!(!again.contains("upload:"), "a second sync uploads nothing: {again}");
    let recursive = cli.run(dir, &["s3", "ls", "--recursive", &format!("s3://{BUCKET}/tree/")]).await;
    let expected: Vec<(u64, String)> =
        tree.iter().map(|(path, bytes)| (bytes.len() as u64, (*path).to_owned())).collect();
    assert_eq!(listed_objects(&recursive), expected, "ls --recursive said: {recursive}");
    cli.run(dir, &["s3", "sync", &format!("s3://{BUCKET}/tree"), "tree-copy"]).await;
    for (path, bytes) in &tree {
        let copy = dir.join(path.replacen("tree/", "tree-copy/", 1));
        assert!(read_file(&copy) == *bytes, "{path} syncs back byte-identical");
    }

    let head = cli.run(dir, &["s3api", "head-object", "--bucket", BUCKET, "--key", "small.txt"]).await;
    assert!(head.contains(&format!("\"ContentLength\": {}", small.len())), "head-object reports the size: {head}");
    let quoted_etag = etag_of(&small).replace('"', "\\\"");
    assert!(head.contains(&format!("\"ETag\": \"{quoted_etag}\"")), "head-object reports the MD5 ETag: {head}");

    let removed = cli.run(dir, &["s3", "rm", "--recursive", &format!("s3://{BUCKET}/")]).await;
    assert_eq!(removed.matches("delete:").count(), 5, "rm deletes five objects: {removed}");
    let left = client.list_objects_v2().bucket(BUCKET).send().await.expect("ListObjectsV2 after rm");
    assert!(left.contents().is_empty(), "the bucket is empty after rm --recursive");
    let removed = cli.run(dir, &["s3", "rb", &format!("s3://{BUCKET}")]).await;
    assert!(removed.contains(&format!("remove_bucket: {BUCKET}")), "rb said: {removed}");
    bulwark_e2e::assert_http_status(client.head_bucket().bucket(BUCKET).send().await, 404);
}
