//! `bulwark admin rewrap`: re-seals the data keys of SSE-S3 and SSE-KMS
//! objects under the newest version of their KMS key, without touching the
//! object data. Runs in the background with progress; its position is kept
//! in a replicated document after every page, so a run that was interrupted
//! (restart, crash) continues where it stopped when started again. Rewrapping
//! is idempotent: a data key already under the newest version is left alone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bulwark_kms::Kms;
use bulwark_object::{Document, ObjectStore};
use serde::{Deserialize, Serialize};

/// Replicated document holding the position of an unfinished run.
const CURSOR_DOCUMENT: &str = "rewrap";
const KEYS_PER_PAGE: usize = 200;

/// Where an unfinished run stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Cursor {
    /// The run's bucket filter.
    only_bucket: Option<String>,
    /// The bucket being walked and the last key finished in it.
    bucket: Option<String>,
    after: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    pub running: bool,
    pub started_ns: i64,
    pub finished_ns: Option<i64>,
    /// Set when this run continued an interrupted one: `bucket/key`.
    pub resumed_after: Option<String>,
    pub bucket: Option<String>,
    pub scanned: u64,
    pub rewrapped: u64,
    pub already_current: u64,
    pub failed: u64,
    pub error: Option<String>,
}

pub struct Rewrapper {
    store: Arc<ObjectStore>,
    kms: Arc<Kms>,
    running: AtomicBool,
    progress: Mutex<Progress>,
}

fn now_ns() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos().try_into().unwrap_or(i64::MAX)
}

impl Rewrapper {
    pub fn new(store: Arc<ObjectStore>, kms: Arc<Kms>) -> Rewrapper {
        Rewrapper { store, kms, running: AtomicBool::new(false), progress: Mutex::new(Progress::default()) }
    }

    pub fn progress(&self) -> Progress {
        self.progress.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.progress.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Starts a run (or reports the one already running).
    pub fn start(self: &Arc<Self>, only_bucket: Option<String>) -> Progress {
        if self.running.swap(true, Ordering::AcqRel) {
            return self.progress();
        }
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) =
            Progress { running: true, started_ns: now_ns(), ..Progress::default() };
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = this.run(only_bucket).await;
            this.update(|p| {
                p.running = false;
                p.finished_ns = Some(now_ns());
                p.error = outcome.err();
            });
            this.running.store(false, Ordering::Release);
        });
        self.progress()
    }

    async fn load_cursor(&self) -> Result<(u64, Option<Cursor>), String> {
        match self.store.load_document(CURSOR_DOCUMENT).await.map_err(|e| e.to_string())? {
            Some(doc) => {
                let cursor: Option<Cursor> = serde_json::from_slice(&doc.body).map_err(|e| e.to_string())?;
                Ok((doc.generation, cursor))
            }
            None => Ok((0, None)),
        }
    }

    async fn save_cursor(&self, generation: &mut u64, cursor: Option<&Cursor>) -> Result<(), String> {
        *generation += 1;
        let body = serde_json::to_vec(&cursor).map_err(|e| e.to_string())?;
        self.store
            .store_document(CURSOR_DOCUMENT, &Document { generation: *generation, body: body.into() })
            .await
            .map_err(|e| e.to_string())
    }

    async fn run(&self, only_bucket: Option<String>) -> Result<(), String> {
        let (mut generation, saved) = self.load_cursor().await?;
        // Continue an interrupted run with the same filter; else start over.
        let resume = saved.filter(|c| c.only_bucket == only_bucket);
        if let Some(c) = &resume {
            let at = format!("{}/{}", c.bucket.clone().unwrap_or_default(), c.after.clone().unwrap_or_default());
            tracing::info!(position = %at, "rewrap resumes an interrupted run");
            self.update(|p| p.resumed_after = Some(at));
        }
        let mut buckets: Vec<String> = self.store.list_buckets().into_iter().map(|b| b.name).collect();
        buckets.sort();
        buckets.retain(|b| only_bucket.as_ref().is_none_or(|o| o == b));
        if let Some(Cursor { bucket: Some(from), .. }) = &resume {
            buckets.retain(|b| b >= from);
        }
        for bucket in buckets {
            self.update(|p| p.bucket = Some(bucket.clone()));
            let mut after = match &resume {
                Some(Cursor { bucket: Some(b), after, .. }) if *b == bucket => after.clone(),
                _ => None,
            };
            loop {
                let page = self
                    .store
                    .managed_versions(&bucket, after.as_deref(), KEYS_PER_PAGE)
                    .await
                    .map_err(|e| e.to_string())?;
                self.update(|p| p.scanned += page.scanned);
                for version in &page.versions {
                    self.rewrap_one(&bucket, version).await;
                }
                let Some(next) = page.next_after else { break };
                after = Some(next);
                let cursor =
                    Cursor { only_bucket: only_bucket.clone(), bucket: Some(bucket.clone()), after: after.clone() };
                self.save_cursor(&mut generation, Some(&cursor)).await?;
            }
        }
        self.save_cursor(&mut generation, None).await
    }

    async fn rewrap_one(&self, bucket: &str, version: &bulwark_object::ManagedVersion) {
        let context = match crate::managed::object_context(bucket, &version.key, version.context.as_deref()) {
            Ok(context) => context,
            Err(_) => {
                self.update(|p| p.failed += 1);
                return;
            }
        };
        let request_id = crate::RequestId::new().to_string();
        match self.kms.rewrap(&version.wrapped, &context, &request_id).await {
            Ok(None) => self.update(|p| p.already_current += 1),
            Ok(Some(new)) => {
                match self.store.replace_wrapped_key(bucket, &version.key, version.uid, &version.wrapped, &new).await {
                    Ok(n) if n > 0 => self.update(|p| p.rewrapped += 1),
                    Ok(_) => self.update(|p| p.already_current += 1),
                    Err(e) => {
                        tracing::warn!(bucket, key = %version.key, error = %e, "rewrap: record update failed");
                        self.update(|p| p.failed += 1);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(bucket, key = %version.key, error = %e, "rewrap: the KMS refused");
                self.update(|p| p.failed += 1);
            }
        }
    }
}
