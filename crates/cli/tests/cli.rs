//! The command line itself. This integration test also makes cargo build the
//! real `bulwark` binary, which the black-box suite in `crates/e2e` runs.

use std::process::Command;

#[test]
fn help_lists_the_server_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark")).arg("--help").output().expect("run bulwark --help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("server"), "{text}");
}

#[test]
fn a_bad_config_file_is_refused_with_a_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bulwark.toml");
    std::fs::write(&config, "[erasure]\ndata = 4\nparity = 2\nwrite_quorum = 4\ndrives = []\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_bulwark"))
        .args(["server", "--config"])
        .arg(&config)
        .output()
        .expect("run bulwark server");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("invalid"), "{text}");
}
