//! Prometheus metrics (text format 0.0.4) for the redundancy figures that
//! `bulwark admin status` reports.

use std::fmt::Write;

use bulwark_object::ObjectStore;

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(store: &ObjectStore) -> String {
    let status = store.status();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, lines: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "bulwark_drive_online",
        "1 when the drive is online, 0 when offline.",
        "gauge",
        status
            .drives
            .iter()
            .map(|d| {
                (
                    format!(
                        "{{set=\"{}\",position=\"{}\",drive=\"{}\",facility=\"{}\"}}",
                        d.set,
                        d.position,
                        escape(&d.label),
                        escape(&d.facility)
                    ),
                    if d.online { 1.0 } else { 0.0 },
                )
            })
            .collect(),
    );
    let single = |v: f64| vec![(String::new(), v)];
    gauge(
        "bulwark_objects_below_full_redundancy",
        "Object versions queued for healing, being healed, or waiting for offline drives.",
        "gauge",
        single((status.heal_queue + status.heal_deferred) as f64),
    );
    gauge(
        "bulwark_heal_queue_length",
        "Object versions queued or being healed.",
        "gauge",
        single(status.heal_queue as f64),
    );
    gauge("bulwark_healed_total", "Object versions healed and verified.", "counter", single(status.healed as f64));
    gauge(
        "bulwark_shards_rebuilt_total",
        "Shards rebuilt by healing.",
        "counter",
        single(status.shards_rebuilt as f64),
    );
    gauge(
        "bulwark_orphan_blobs_removed_total",
        "Blob files no record named (left by interrupted writes), removed by the scanner.",
        "counter",
        single(status.orphan_blobs_removed as f64),
    );
    gauge(
        "bulwark_unrepairable_objects",
        "Object versions with fewer than K good shards.",
        "gauge",
        single(status.unrepairable.len() as f64),
    );
    let (shared, alone) = bulwark_object::md5_blocks_hashed();
    gauge(
        "bulwark_md5_blocks_total",
        "Body blocks whose MD5 was hashed by the shared hashing threads, side by side with other bodies' blocks (shared) or alone.",
        "counter",
        vec![("{hashed=\"shared\"}".to_owned(), shared as f64), ("{hashed=\"alone\"}".to_owned(), alone as f64)],
    );
    for (name, pass) in [("scan", &status.last_scan), ("scrub", &status.last_scrub)] {
        if let Some(pass) = pass {
            gauge(
                &format!("bulwark_last_{name}_versions_checked"),
                &format!("Versions checked by the last {name} pass."),
                "gauge",
                single(pass.versions_checked as f64),
            );
            gauge(
                &format!("bulwark_last_{name}_bytes_checked"),
                &format!("Bytes verified by the last {name} pass."),
                "gauge",
                single(pass.bytes_checked as f64),
            );
            gauge(
                &format!("bulwark_last_{name}_problems_found"),
                &format!("Problems found by the last {name} pass."),
                "gauge",
                single(pass.problems_found as f64),
            );
            if let Some(finished) = pass.finished_ns {
                gauge(
                    &format!("bulwark_last_{name}_finished_seconds"),
                    &format!("Unix time the last {name} pass finished."),
                    "gauge",
                    single(finished as f64 / 1e9),
                );
            }
        }
    }
    out
}
