//! The built-in KMS (DESIGN.md §6; D7, D8).
//!
//! **Keys.** A KMS key is a versioned list of 256-bit materials: rotation
//! appends a version, the newest one encrypts, and every ciphertext names
//! the key *and* the version that sealed it (`ciphertext`), so data sealed
//! before a rotation stays readable. Keys, aliases and key policies live in
//! one replicated document sealed under a key derived from the root key
//! (`keystore`); the root key never touches the data drives.
//!
//! **State changes** are serialised by a lock, applied to a copy, stored at
//! write quorum, and only then made visible — a failed store changes nothing
//! a caller can see (the same discipline as `bulwark_access::Identities`).
//! Cryptographic operations read an immutable snapshot and never wait for
//! the lock.
//!
//! **Permissions.** Every use of a key, through the JSON API or driven by
//! S3 (SSE-KMS), is decided by [`Authorizer::authorize_with`] with the
//! caller's identity policies and the key's policy, with the condition keys
//! `kms:CallerAccount`, `kms:EncryptionContext:<k>`,
//! `kms:EncryptionContextKeys` and, for S3-driven uses, `kms:ViaService`.
//! The SSE-S3 master key belongs to the service: its uses are not checked
//! against a caller, only audited.
//!
//! **Audit.** Every operation, successful or not, appends a record to the
//! hash-chained, signed log (`audit`) and is answered only once that record
//! is durable. Key material, data keys and plaintexts never appear in the
//! log, in errors or in tracing events.
//!
//! **Time.** Deletion windows and rotation periods are counted in "days" of
//! [`KmsOptions::day_ms`]; the test-only variable
//! `BULWARK_KMS_DELETION_WINDOW_SCALE_SECS` shortens a day to that many
//! seconds so that tests can watch a key being deleted or rotated.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bulwark_access::{Authorizer, Caller};
use bulwark_crypto::Key32;
use bulwark_object::{Document, ObjectStore};
use bulwark_policy::Policy;
use bytes::Bytes;
use uuid::Uuid;

mod api;
pub mod audit;
pub mod ciphertext;
mod keystore;

use audit::{AuditEntry, AuditLog};
use keystore::{AliasRecord, KeyManager, KeyRecord, KeyState, KeyVersion, RotationType, State};

/// An encryption context: bound to a ciphertext as associated data.
pub type EncryptionContext = BTreeMap<String, String>;

/// Test-only: the length of a "day" of deletion windows and rotation
/// periods, in seconds (e.g. `1`: a 7-day window passes in 7 seconds).
pub const DAY_SCALE_ENV: &str = "BULWARK_KMS_DELETION_WINDOW_SCALE_SECS";
/// The AWS managed key S3 uses when no key is named.
pub const AWS_S3_ALIAS: &str = "alias/aws/s3";
const DAY_MS: i64 = 86_400_000;
/// How often the background task looks for due deletions and rotations, at most.
const BACKGROUND_INTERVAL_MAX: Duration = Duration::from_secs(5);
const BACKGROUND_INTERVAL_MIN: Duration = Duration::from_millis(100);
/// Encryption context bounds (they end up in every ciphertext's AAD and in the audit log).
const CONTEXT_PAIRS_MAX: usize = 64;
const CONTEXT_BYTES_MAX: usize = 8192;

#[derive(Debug, Clone)]
pub struct KmsConfig {
    pub region: String,
    pub account: String,
    /// The append-only audit log (JSON lines, hash-chained and signed).
    pub audit_path: PathBuf,
    /// Rotation period of the SSE-S3 master key.
    pub sse_s3_rotation_days: u32,
}

/// The KMS's source of time, replaceable in tests.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to (tests).
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now_ms))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// How the KMS tells time.
#[derive(Clone)]
pub struct KmsOptions {
    pub clock: Arc<dyn Clock>,
    /// Length of one day of deletion windows and rotation periods.
    pub day_ms: i64,
}

impl KmsOptions {
    /// The system clock and real days, unless [`DAY_SCALE_ENV`] says otherwise.
    pub fn from_env() -> KmsOptions {
        let scaled = std::env::var(DAY_SCALE_ENV).ok().and_then(|v| v.trim().parse::<f64>().ok());
        let day_ms = match scaled {
            Some(secs) if secs > 0.0 && secs.is_finite() => {
                tracing::warn!(seconds_per_day = secs, "{DAY_SCALE_ENV} is set: KMS days are shortened (tests only)");
                ((secs * 1000.0) as i64).max(1)
            }
            _ => DAY_MS,
        };
        KmsOptions { clock: Arc::new(SystemClock), day_ms }
    }
}

/// A data key: the plaintext for immediate use (zeroized on drop) and the
/// ciphertext blob to store, which names the key and key version.
pub struct DataKey {
    pub plaintext: Key32,
    pub ciphertext: Vec<u8>,
    pub key_arn: String,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey").field("key_arn", &self.key_arn).field("plaintext", &self.plaintext).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("invalid ciphertext")]
    InvalidCiphertext,
    #[error("The key ID in the request does not identify a CMK that can perform this operation.")]
    IncorrectKey,
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidAliasName(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    Tag(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    InvalidMarker(String),
    #[error("The request would have succeeded, but the DryRun option is set.")]
    DryRun,
    /// The request body is not the JSON the operation takes.
    #[error("{0}")]
    Serialization(String),
    #[error("{0}")]
    UnknownOperation(String),
}

impl KmsError {
    /// The AWS exception name (`NotFoundException`, …).
    pub fn aws_name(&self) -> &'static str {
        match self {
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::InvalidCiphertext => "InvalidCiphertextException",
            KmsError::IncorrectKey => "IncorrectKeyException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::Internal(_) => "KMSInternalException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::Tag(_) => "TagException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::InvalidMarker(_) => "InvalidMarkerException",
            KmsError::DryRun => "DryRunOperationException",
            KmsError::Serialization(_) => "SerializationException",
            KmsError::UnknownOperation(_) => "UnknownOperationException",
        }
    }

    /// The HTTP status of this error in the KMS JSON protocol: faults are
    /// 5xx, everything else 400.
    pub fn http_status(&self) -> u16 {
        match self {
            KmsError::Internal(_) => 500,
            _ => 400,
        }
    }

    /// The `message` a client sees: internal details stay in the log, and
    /// an unopenable ciphertext says nothing (as AWS).
    pub fn client_message(&self) -> Option<String> {
        match self {
            KmsError::Internal(_) => Some("An internal error occurred. Please try again.".into()),
            KmsError::InvalidCiphertext => None,
            other => Some(other.to_string()),
        }
    }
}

fn internal(what: &str) -> impl Fn(bulwark_crypto::CryptoError) -> KmsError + '_ {
    move |e| KmsError::Internal(format!("{what}: {e}"))
}

/// A consistent view of the keystore and its parsed key policies.
struct Snapshot {
    generation: u64,
    state: State,
    policies: BTreeMap<String, Arc<Policy>>,
}

/// What a key id in a request refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyRef {
    Id(String),
    /// Full alias name, `alias/…`.
    Alias(String),
}

/// Where a use of a key comes from, for the audit log and the policy context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Api,
    SseKms,
    SseS3,
    Rewrap,
    Background,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::SseKms => "sse-kms",
            Source::SseS3 => "sse-s3",
            Source::Rewrap => "rewrap",
            Source::Background => "background",
        }
    }
}

pub struct Kms {
    store: Arc<ObjectStore>,
    authorizer: Arc<Authorizer>,
    config: KmsConfig,
    keystore_key: Key32,
    current: RwLock<Arc<Snapshot>>,
    writer: tokio::sync::Mutex<()>,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    day_ms: i64,
}

fn parse_policies(state: &State, account: &str) -> BTreeMap<String, Arc<Policy>> {
    let mut out = BTreeMap::new();
    for (id, record) in &state.keys {
        match Policy::parse_resource(&record.policy, account) {
            Ok(policy) => {
                out.insert(id.clone(), Arc::new(policy));
            }
            // Validated when stored; say it loudly rather than guess.
            Err(e) => {
                tracing::error!(key = %id, error = %e, "stored key policy no longer parses; only identity policies apply")
            }
        }
    }
    out
}

fn validate_context(context: &EncryptionContext) -> Result<(), KmsError> {
    let bytes: usize = context.iter().map(|(k, v)| k.len() + v.len()).sum();
    if context.len() > CONTEXT_PAIRS_MAX || bytes > CONTEXT_BYTES_MAX {
        return Err(KmsError::Validation(format!(
            "The encryption context is too large: at most {CONTEXT_PAIRS_MAX} pairs and {CONTEXT_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

impl Kms {
    /// Opens the keystore (or starts an empty one) and the audit log. Fails
    /// when the stored keystore cannot be opened with `root_key`.
    pub async fn open(
        store: Arc<ObjectStore>,
        root_key: &Key32,
        authorizer: Arc<Authorizer>,
        config: KmsConfig,
    ) -> Result<Kms, KmsError> {
        Kms::open_with(store, root_key, authorizer, config, KmsOptions::from_env()).await
    }

    /// [`Kms::open`] with an explicit clock and day length.
    pub async fn open_with(
        store: Arc<ObjectStore>,
        root_key: &Key32,
        authorizer: Arc<Authorizer>,
        config: KmsConfig,
        options: KmsOptions,
    ) -> Result<Kms, KmsError> {
        assert!(options.day_ms > 0);
        let keystore_key = bulwark_crypto::derive_key(root_key, b"kms/keystore");
        let (generation, state) = match store
            .load_document(keystore::DOCUMENT)
            .await
            .map_err(|e| KmsError::Internal(format!("the KMS keystore cannot be read: {e}")))?
        {
            Some(doc) => (doc.generation, keystore::open_state(&keystore_key, doc.generation, &doc.body)?),
            None => (0, State::default()),
        };
        let audit = AuditLog::open(&config.audit_path, audit::signing_key(root_key), options.clock.clone())
            .map_err(|e| KmsError::Internal(e.to_string()))?;
        let policies = parse_policies(&state, &config.account);
        tracing::info!(
            keys = state.keys.len(),
            aliases = state.aliases.len(),
            generation,
            audit_log = %config.audit_path.display(),
            "KMS keystore opened"
        );
        Ok(Kms {
            store,
            authorizer,
            config,
            keystore_key,
            current: RwLock::new(Arc::new(Snapshot { generation, state, policies })),
            writer: tokio::sync::Mutex::new(()),
            audit,
            clock: options.clock,
            day_ms: options.day_ms,
        })
    }

    pub fn config(&self) -> &KmsConfig {
        &self.config
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn days_ms(&self, days: u32) -> i64 {
        i64::from(days).saturating_mul(self.day_ms)
    }

    pub fn key_arn_of(&self, id: &str) -> String {
        format!("arn:aws:kms:{}:{}:key/{id}", self.config.region, self.config.account)
    }

    fn alias_arn_of(&self, name: &str) -> String {
        format!("arn:aws:kms:{}:{}:{name}", self.config.region, self.config.account)
    }

    /// Applies `change` to a copy of the keystore, stores it at write
    /// quorum, and only then makes it current.
    async fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T, KmsError>) -> Result<T, KmsError> {
        let _guard = self.writer.lock().await;
        let current = self.snapshot();
        let mut state = current.state.clone();
        let out = change(&mut state)?;
        let generation = current.generation + 1;
        let body = keystore::seal_state(&self.keystore_key, generation, &state)?;
        if let Err(e) =
            self.store.store_document(keystore::DOCUMENT, &Document { generation, body: Bytes::from(body) }).await
        {
            // Copies of the failed write may outlive its rollback: the next
            // write must not carry the same generation with other contents.
            let unchanged = Snapshot { generation, state: current.state.clone(), policies: current.policies.clone() };
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(unchanged);
            return Err(KmsError::Internal(format!("the KMS keystore cannot be stored: {e}")));
        }
        let policies = parse_policies(&state, &self.config.account);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot { generation, state, policies });
        Ok(out)
    }

    // ---- identities and permissions ---------------------------------------

    fn principal_of(&self, caller: &Caller) -> String {
        match caller {
            Caller::Root => "root".to_owned(),
            Caller::User { name, .. } => self.authorizer.identities().user_arn(name),
            Caller::Anonymous => "anonymous".to_owned(),
        }
    }

    fn principal_arn(&self, caller: &Caller) -> String {
        match caller {
            Caller::Root => format!("arn:aws:iam::{}:root", self.config.account),
            other => self.principal_of(other),
        }
    }

    /// Decides `action` for `caller` on key `key` (or on `*` for operations
    /// without a key) with the key's policy.
    fn authorize(
        &self,
        snapshot: &Snapshot,
        caller: &Caller,
        action: &str,
        key: Option<&str>,
        context: Option<&EncryptionContext>,
        source: Source,
    ) -> Result<(), KmsError> {
        let mut ctx = bulwark_policy::Context::new();
        self.authorizer.add_principal_keys(caller, &mut ctx);
        if *caller != Caller::Anonymous {
            ctx.insert("kms:CallerAccount", self.config.account.clone());
        }
        if source == Source::SseKms {
            ctx.insert("kms:ViaService", format!("s3.{}.amazonaws.com", self.config.region));
        }
        if let Some(context) = context {
            for (k, v) in context {
                ctx.insert(&format!("kms:EncryptionContext:{k}"), v.clone());
            }
            ctx.insert_many("kms:EncryptionContextKeys", context.keys().cloned().collect());
        }
        let resource = key.map_or_else(|| "*".to_owned(), |id| self.key_arn_of(id));
        let policy_name = key.map(|id| format!("key-policy:{id}"));
        let policy = key.and_then(|id| snapshot.policies.get(id));
        let resource_policy = policy_name.as_deref().zip(policy.map(Arc::as_ref));
        let verdict = self.authorizer.authorize_with(caller, action, &resource, &ctx, resource_policy);
        if verdict.allowed {
            return Ok(());
        }
        let why = if verdict.reason.starts_with("explicit deny") {
            " with an explicit deny".to_owned()
        } else {
            format!(" because no identity-based policy or key policy allows the {action} action")
        };
        Err(KmsError::AccessDenied(format!(
            "User: {} is not authorized to perform: {action} on resource: {resource}{why}",
            self.principal_arn(caller)
        )))
    }

    // ---- key references ---------------------------------------------------

    fn invalid_key_id(key_id: &str) -> KmsError {
        KmsError::NotFound(format!("Invalid keyId '{key_id}'"))
    }

    fn parse_uuid(text: &str) -> Option<String> {
        (text.len() == 36).then(|| Uuid::try_parse(text).ok()).flatten().map(|u| u.hyphenated().to_string())
    }

    /// Parses a key id, key ARN, alias name or alias ARN.
    fn key_ref(&self, key_id: &str) -> Result<KeyRef, KmsError> {
        if let Some(name) = key_id.strip_prefix("alias/") {
            if name.is_empty() {
                return Err(Self::invalid_key_id(key_id));
            }
            return Ok(KeyRef::Alias(key_id.to_owned()));
        }
        if let Some(rest) = key_id.strip_prefix("arn:") {
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let [partition, service, region, account, resource] = parts[..] else {
                return Err(Self::invalid_key_id(key_id));
            };
            if partition != "aws" || service != "kms" {
                return Err(Self::invalid_key_id(key_id));
            }
            let ours = region == self.config.region && account == self.config.account;
            if let Some(id) = resource.strip_prefix("key/") {
                let id = Self::parse_uuid(id).ok_or_else(|| Self::invalid_key_id(key_id))?;
                if !ours {
                    return Err(KmsError::NotFound(format!("Key '{key_id}' does not exist")));
                }
                return Ok(KeyRef::Id(id));
            }
            if resource.starts_with("alias/") && resource.len() > "alias/".len() {
                if !ours {
                    return Err(KmsError::NotFound(format!("Alias {key_id} is not found.")));
                }
                return Ok(KeyRef::Alias(resource.to_owned()));
            }
            return Err(Self::invalid_key_id(key_id));
        }
        Self::parse_uuid(key_id).map(KeyRef::Id).ok_or_else(|| Self::invalid_key_id(key_id))
    }

    /// The key id a reference names in `snapshot`; internal keys do not exist for clients.
    fn resolve(&self, snapshot: &Snapshot, key_ref: &KeyRef) -> Result<String, KmsError> {
        let missing = |id: &str| KmsError::NotFound(format!("Key '{}' does not exist", self.key_arn_of(id)));
        let id = match key_ref {
            KeyRef::Id(id) => id.clone(),
            KeyRef::Alias(name) => match snapshot.state.aliases.get(name) {
                Some(alias) => alias.target.clone(),
                None => return Err(KmsError::NotFound(format!("Alias {} is not found.", self.alias_arn_of(name)))),
            },
        };
        match snapshot.state.keys.get(&id) {
            Some(record) if record.manager != KeyManager::Internal => Ok(id),
            _ => Err(missing(&id)),
        }
    }

    /// Like [`Kms::resolve`], creating the `alias/aws/s3` key on first use.
    async fn resolve_or_create(&self, key_id: &str) -> Result<(Arc<Snapshot>, String), KmsError> {
        let key_ref = self.key_ref(key_id)?;
        let snapshot = self.snapshot();
        if key_ref == KeyRef::Alias(AWS_S3_ALIAS.to_owned()) && !snapshot.state.aliases.contains_key(AWS_S3_ALIAS) {
            self.create_aws_s3_key().await?;
            let snapshot = self.snapshot();
            let id = self.resolve(&snapshot, &key_ref)?;
            return Ok((snapshot, id));
        }
        let id = self.resolve(&snapshot, &key_ref)?;
        Ok((snapshot, id))
    }

    /// Errors for keys that cannot be used for cryptography right now.
    fn usable(&self, id: &str, record: &KeyRecord) -> Result<(), KmsError> {
        match record.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled(format!("{} is disabled.", self.key_arn_of(id)))),
            KeyState::PendingDeletion => {
                Err(KmsError::InvalidState(format!("{} is pending deletion.", self.key_arn_of(id))))
            }
        }
    }

    // ---- keys ---------------------------------------------------------------

    fn new_version(&self, rotation: Option<RotationType>) -> Result<KeyVersion, KmsError> {
        Ok(KeyVersion {
            material: Key32::random().map_err(internal("key material"))?,
            material_id: hex::encode(bulwark_crypto::random_array::<32>().map_err(internal("key material id"))?),
            created_ms: self.now_ms(),
            rotation,
        })
    }

    fn new_key(
        &self,
        manager: KeyManager,
        description: String,
        policy: String,
        rotation_days: Option<u32>,
    ) -> Result<KeyRecord, KmsError> {
        let now = self.now_ms();
        Ok(KeyRecord {
            manager,
            description,
            created_ms: now,
            state: KeyState::Enabled,
            deletion_ms: None,
            pending_window_days: None,
            rotation_period_days: rotation_days,
            next_rotation_ms: rotation_days.map(|days| now.saturating_add(self.days_ms(days))),
            on_demand_rotations: 0,
            versions: vec![self.new_version(None)?],
            policy,
            tags: BTreeMap::new(),
        })
    }

    fn default_policy(&self) -> String {
        format!(
            r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:aws:iam::{}:root"
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#,
            self.config.account
        )
    }

    /// The policy of the `aws/s3` key, as AWS writes it: anyone in the
    /// account may use it through S3; the account may read its metadata.
    fn aws_s3_policy(&self) -> String {
        let account = &self.config.account;
        let region = &self.config.region;
        format!(
            r#"{{
  "Version" : "2012-10-17",
  "Id" : "auto-s3-2",
  "Statement" : [ {{
    "Sid" : "Allow access through S3 for all principals in the account that are authorized to use S3",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "*"
    }},
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{
        "kms:CallerAccount" : "{account}",
        "kms:ViaService" : "s3.{region}.amazonaws.com"
      }}
    }}
  }}, {{
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:aws:iam::{account}:root"
    }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*" ],
    "Resource" : "*"
  }} ]
}}"#
        )
    }

    /// Creates the AWS managed key for S3 and its alias (once), audited.
    async fn create_aws_s3_key(&self) -> Result<(), KmsError> {
        let record = self.new_key(
            KeyManager::Aws,
            "Default key that protects my S3 objects when no other key is defined".into(),
            self.aws_s3_policy(),
            Some(365),
        )?;
        let id = Uuid::new_v4().hyphenated().to_string();
        let now = self.now_ms();
        let created = self
            .update(|state| {
                if state.aliases.contains_key(AWS_S3_ALIAS) {
                    return Ok(false);
                }
                state.keys.insert(id.clone(), record);
                state
                    .aliases
                    .insert(AWS_S3_ALIAS.into(), AliasRecord { target: id.clone(), created_ms: now, updated_ms: now });
                Ok(true)
            })
            .await;
        if matches!(created, Ok(false)) {
            return Ok(());
        }
        let entry = self.service_entry(Source::Background, "CreateKey", Some(&id), Some(1), "");
        self.audited(entry, created.map(|_| ())).await
    }

    /// The SSE-S3 master key's id, created on first use.
    async fn sse_s3_key(&self) -> Result<String, KmsError> {
        if let Some(id) = self.snapshot().state.sse_s3_key.clone() {
            return Ok(id);
        }
        let record = self.new_key(KeyManager::Internal, "SSE-S3 master key".into(), self.default_policy(), None)?;
        let id = Uuid::new_v4().hyphenated().to_string();
        let result = self
            .update(|state| {
                if let Some(existing) = &state.sse_s3_key {
                    return Ok((existing.clone(), false));
                }
                state.keys.insert(id.clone(), record);
                state.sse_s3_key = Some(id.clone());
                Ok((id.clone(), true))
            })
            .await;
        match result {
            Ok((id, false)) => Ok(id),
            other => {
                let entry = self.service_entry(Source::SseS3, "CreateKey", Some(&id), Some(1), "");
                self.audited(entry, other.map(|(id, _)| id)).await
            }
        }
    }

    // ---- audit ----------------------------------------------------------------

    fn entry(&self, principal: String, source: Source, operation: &str, request_id: &str) -> AuditEntry {
        AuditEntry {
            principal,
            source: source.as_str().to_owned(),
            operation: operation.to_owned(),
            request_id: request_id.to_owned(),
            ..AuditEntry::default()
        }
    }

    fn service_entry(
        &self,
        source: Source,
        operation: &str,
        key_id: Option<&str>,
        key_version: Option<u32>,
        request_id: &str,
    ) -> AuditEntry {
        let principal = match source {
            Source::SseS3 => "service:s3",
            Source::Rewrap => "service:rewrap",
            _ => "service:kms",
        };
        let mut entry = self.entry(principal.to_owned(), source, operation, request_id);
        entry.key_id = key_id.map(str::to_owned);
        entry.key_version = key_version;
        entry
    }

    /// Records the outcome of an operation; the result is returned only
    /// once the record is durable, and an unrecorded success is a failure.
    async fn audited<T>(&self, mut entry: AuditEntry, result: Result<T, KmsError>) -> Result<T, KmsError> {
        entry.outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.aws_name().to_owned(),
        };
        if let Err(e) = &result
            && let KmsError::Internal(detail) = e
        {
            tracing::error!(operation = %entry.operation, error = %detail, "KMS operation failed");
        }
        match self.audit.append(entry).await {
            Ok(()) => result,
            Err(e) => Err(KmsError::Internal(format!("the audit record could not be written: {e}"))),
        }
    }

    /// Records a KMS API request that was refused before it reached the KMS
    /// (bad signature, unknown access key): `who` is what the request
    /// claimed (an access key id), never a secret.
    pub async fn audit_rejected(&self, operation: &str, who: &str, error_name: &str, request_id: &str) {
        let mut entry = self.entry(format!("unauthenticated:{who}"), Source::Api, operation, request_id);
        entry.outcome = error_name.to_owned();
        if let Err(e) = self.audit.append(entry).await {
            tracing::error!(error = %e, "the audit record of a rejected KMS request could not be written");
        }
    }

    // ---- cryptography -----------------------------------------------------------

    /// Seals `plaintext` under the newest version of key `id`.
    fn seal_under(
        &self,
        id: &str,
        record: &KeyRecord,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, u32), KmsError> {
        let uuid = Uuid::try_parse(id).map_err(|_| KmsError::Internal(format!("stored key id {id} is not a UUID")))?;
        let (version, material) = record.newest();
        let blob =
            ciphertext::seal(&material.material, uuid, version, context, plaintext).map_err(internal("sealing"))?;
        Ok((blob, version))
    }

    /// Opens a parsed blob with the version of the key it names.
    fn open_blob(
        record: &KeyRecord,
        blob: &ciphertext::Blob<'_>,
        context: &EncryptionContext,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KmsError> {
        let version = record.version(blob.key_version).ok_or(KmsError::InvalidCiphertext)?;
        blob.open(&version.material, context).map_err(|_| KmsError::InvalidCiphertext)
    }

    /// The key a client ciphertext names, if it is a key clients may use.
    fn blob_key<'s>(
        &self,
        snapshot: &'s Snapshot,
        blob: &ciphertext::Blob<'_>,
    ) -> Result<(String, &'s KeyRecord), KmsError> {
        let id = blob.key_id.hyphenated().to_string();
        match snapshot.state.keys.get(&id) {
            Some(record) if record.manager != KeyManager::Internal => Ok((id, record)),
            // The SSE-S3 master key's ciphertexts are not for clients.
            Some(_) => Err(KmsError::InvalidCiphertext),
            None => Err(KmsError::NotFound(format!("Key '{}' does not exist", self.key_arn_of(&id)))),
        }
    }

    fn data_key(plaintext: &[u8], ciphertext: Vec<u8>, key_arn: String) -> Result<DataKey, KmsError> {
        let plaintext = Key32::from_slice(plaintext).ok_or(KmsError::InvalidCiphertext)?;
        Ok(DataKey { plaintext, ciphertext, key_arn })
    }

    // ---- the interface of the S3 layer ----------------------------------------------

    /// Deletion after the pending window, automatic rotation, SSE-S3 master
    /// rotation: [`Kms::run_maintenance`] every few seconds (a fraction of a
    /// scaled day in tests). The task ends when the KMS is dropped.
    pub fn start_background(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let interval = Duration::from_millis(u64::try_from(self.day_ms / 4).unwrap_or(u64::MAX))
            .clamp(BACKGROUND_INTERVAL_MIN, BACKGROUND_INTERVAL_MAX);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(kms) = weak.upgrade() else { break };
                if let Err(e) = kms.run_maintenance().await {
                    tracing::warn!(error = %e, "KMS maintenance pass failed; will retry");
                }
            }
        });
    }

    /// One maintenance pass: deletes keys whose deletion date has passed,
    /// rotates keys whose rotation is due, and rotates the SSE-S3 master key
    /// every `sse_s3_rotation_days`. Each change is audited.
    pub async fn run_maintenance(&self) -> Result<(), KmsError> {
        let now = self.now_ms();
        let snapshot = self.snapshot();
        let sse_period = self.days_ms(self.config.sse_s3_rotation_days.max(1));
        let mut deletions = Vec::new();
        let mut rotations = Vec::new();
        for (id, record) in &snapshot.state.keys {
            if record.state == KeyState::PendingDeletion && record.deletion_ms.is_some_and(|at| at <= now) {
                deletions.push(id.clone());
            } else if record.manager == KeyManager::Internal {
                if record.newest().1.created_ms.saturating_add(sse_period) <= now {
                    rotations.push(id.clone());
                }
            } else if record.state == KeyState::Enabled && record.next_rotation_ms.is_some_and(|at| at <= now) {
                rotations.push(id.clone());
            }
        }
        for id in deletions {
            let result = self
                .update(|state| {
                    let due = state.keys.get(&id).is_some_and(|r| {
                        r.state == KeyState::PendingDeletion && r.deletion_ms.is_some_and(|at| at <= now)
                    });
                    if due {
                        state.keys.remove(&id);
                        state.aliases.retain(|_, alias| alias.target != id);
                    }
                    Ok(())
                })
                .await;
            tracing::info!(key = %id, ok = result.is_ok(), "KMS key deleted after its waiting period");
            let entry = self.service_entry(Source::Background, "DeleteKey", Some(&id), None, "");
            self.audited(entry, result).await?;
        }
        for id in rotations {
            self.rotate_audited(&id, RotationType::Automatic, Source::Background).await?;
        }
        Ok(())
    }

    /// Appends a version to key `id` (not audited here: callers do).
    async fn rotate(&self, id: &str, kind: RotationType) -> Result<u32, KmsError> {
        let version = self.new_version(Some(kind))?;
        let now = self.now_ms();
        let day_ms = self.day_ms;
        let result = self
            .update(|state| {
                let record = state.keys.get_mut(id).ok_or_else(|| KmsError::NotFound(format!("key {id}")))?;
                if record.versions.len() >= keystore::KEY_VERSIONS_MAX {
                    return Err(KmsError::LimitExceeded(format!("key {id} has the most versions a key may have")));
                }
                record.versions.push(version);
                if kind == RotationType::OnDemand {
                    record.on_demand_rotations += 1;
                }
                if kind == RotationType::Automatic
                    && let (Some(days), Some(next)) = (record.rotation_period_days, record.next_rotation_ms)
                {
                    let period = i64::from(days).saturating_mul(day_ms);
                    let following = next.saturating_add(period);
                    record.next_rotation_ms =
                        Some(if following <= now { now.saturating_add(period) } else { following });
                }
                Ok(u32::try_from(record.versions.len()).unwrap_or(u32::MAX))
            })
            .await;
        if let Ok(version) = &result {
            tracing::info!(key = %id, version, kind = kind.as_str(), "KMS key rotated");
        }
        result
    }

    /// [`Kms::rotate`] on the service's own behalf, audited.
    async fn rotate_audited(&self, id: &str, kind: RotationType, source: Source) -> Result<u32, KmsError> {
        let result = self.rotate(id, kind).await;
        let operation = match kind {
            RotationType::Automatic => "RotateKey",
            RotationType::OnDemand => "RotateKeyOnDemand",
        };
        let entry = self.service_entry(source, operation, Some(id), result.as_ref().ok().copied(), "");
        self.audited(entry, result).await
    }

    /// SSE-KMS: a data key under `key_id` (id, ARN, alias name or alias ARN;
    /// `None` = the `alias/aws/s3` key, created on first use). Checks that
    /// `caller` may `kms:GenerateDataKey` with the key; audited.
    pub async fn generate_data_key(
        &self,
        key_id: Option<&str>,
        context: &EncryptionContext,
        caller: &Caller,
        request_id: &str,
    ) -> Result<DataKey, KmsError> {
        let mut entry = self.entry(self.principal_of(caller), Source::SseKms, "GenerateDataKey", request_id);
        entry.context = context.clone();
        let result = async {
            validate_context(context)?;
            let (snapshot, id) = self.resolve_or_create(key_id.unwrap_or(AWS_S3_ALIAS)).await?;
            entry.key_id = Some(id.clone());
            self.authorize(&snapshot, caller, "kms:GenerateDataKey", Some(&id), Some(context), Source::SseKms)?;
            let record = &snapshot.state.keys[&id];
            self.usable(&id, record)?;
            let plaintext = Key32::random().map_err(internal("data key"))?;
            let (blob, version) = self.seal_under(&id, record, context, plaintext.expose())?;
            entry.key_version = Some(version);
            Ok(DataKey { plaintext, ciphertext: blob, key_arn: self.key_arn_of(&id) })
        }
        .await;
        self.audited(entry, result).await
    }

    /// SSE-KMS: opens a stored data key; checks `kms:Decrypt` for `caller`; audited.
    pub async fn decrypt_data_key(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        caller: &Caller,
        request_id: &str,
    ) -> Result<DataKey, KmsError> {
        let mut entry = self.entry(self.principal_of(caller), Source::SseKms, "Decrypt", request_id);
        entry.context = context.clone();
        let result = (|| {
            let blob = ciphertext::parse(ciphertext).map_err(|_| KmsError::InvalidCiphertext)?;
            entry.key_id = Some(blob.key_id.hyphenated().to_string());
            entry.key_version = Some(blob.key_version);
            let snapshot = self.snapshot();
            let (id, record) = self.blob_key(&snapshot, &blob)?;
            self.authorize(&snapshot, caller, "kms:Decrypt", Some(&id), Some(context), Source::SseKms)?;
            self.usable(&id, record)?;
            let plaintext = Self::open_blob(record, &blob, context)?;
            Self::data_key(&plaintext, ciphertext.to_vec(), self.key_arn_of(&id))
        })();
        self.audited(entry, result).await
    }

    /// SSE-S3: a data key under the internal SSE-S3 master key (no caller permission; audited).
    pub async fn sse_s3_generate(&self, context: &EncryptionContext, request_id: &str) -> Result<DataKey, KmsError> {
        let mut entry = self.service_entry(Source::SseS3, "GenerateDataKey", None, None, request_id);
        entry.context = context.clone();
        let result = async {
            validate_context(context)?;
            let id = self.sse_s3_key().await?;
            entry.key_id = Some(id.clone());
            let snapshot = self.snapshot();
            let record = snapshot.state.keys.get(&id).ok_or_else(|| KmsError::Internal("SSE-S3 key missing".into()))?;
            let plaintext = Key32::random().map_err(internal("data key"))?;
            let (blob, version) = self.seal_under(&id, record, context, plaintext.expose())?;
            entry.key_version = Some(version);
            Ok(DataKey { plaintext, ciphertext: blob, key_arn: self.key_arn_of(&id) })
        }
        .await;
        self.audited(entry, result).await
    }

    pub async fn sse_s3_decrypt(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        request_id: &str,
    ) -> Result<DataKey, KmsError> {
        let mut entry = self.service_entry(Source::SseS3, "Decrypt", None, None, request_id);
        entry.context = context.clone();
        let result = (|| {
            let blob = ciphertext::parse(ciphertext).map_err(|_| KmsError::InvalidCiphertext)?;
            let id = blob.key_id.hyphenated().to_string();
            entry.key_id = Some(id.clone());
            entry.key_version = Some(blob.key_version);
            let snapshot = self.snapshot();
            // Only the master key's own ciphertexts: this path checks no caller.
            let record = match snapshot.state.keys.get(&id) {
                Some(record) if record.manager == KeyManager::Internal => record,
                _ => return Err(KmsError::InvalidCiphertext),
            };
            let plaintext = Self::open_blob(record, &blob, context)?;
            Self::data_key(&plaintext, ciphertext.to_vec(), self.key_arn_of(&id))
        })();
        self.audited(entry, result).await
    }

    /// Rotates the SSE-S3 master key now.
    pub async fn rotate_sse_s3(&self) -> Result<(), KmsError> {
        let id = self.sse_s3_key().await?;
        self.rotate_audited(&id, RotationType::OnDemand, Source::SseS3).await.map(|_| ())
    }

    /// Re-encrypts a stored data key (SSE-S3 or SSE-KMS) under the newest
    /// version of the same key; `None` when it already is. Audited.
    pub async fn rewrap(
        &self,
        ciphertext: &[u8],
        context: &EncryptionContext,
        request_id: &str,
    ) -> Result<Option<Vec<u8>>, KmsError> {
        let mut entry = self.service_entry(Source::Rewrap, "ReEncrypt", None, None, request_id);
        entry.context = context.clone();
        let result = (|| {
            let blob = ciphertext::parse(ciphertext).map_err(|_| KmsError::InvalidCiphertext)?;
            let id = blob.key_id.hyphenated().to_string();
            entry.key_id = Some(id.clone());
            entry.key_version = Some(blob.key_version);
            let snapshot = self.snapshot();
            let record = snapshot
                .state
                .keys
                .get(&id)
                .ok_or_else(|| KmsError::NotFound(format!("Key '{}' does not exist", self.key_arn_of(&id))))?;
            let (newest, _) = record.newest();
            entry.target_key_id = Some(id.clone());
            entry.target_key_version = Some(newest);
            if blob.key_version == newest {
                return Ok(None);
            }
            self.usable(&id, record)?;
            let plaintext = Self::open_blob(record, &blob, context)?;
            let (sealed, _) = self.seal_under(&id, record, context, &plaintext)?;
            Ok(Some(sealed))
        })();
        self.audited(entry, result).await
    }

    /// The full key ARN for an id, ARN or alias (for response headers);
    /// `None` = the `alias/aws/s3` key. NotFound if there is no such key.
    /// A lookup, not a use of the key: audited only if it creates the
    /// `aws/s3` key.
    pub async fn key_arn(&self, key_id: Option<&str>) -> Result<String, KmsError> {
        let (_, id) = self.resolve_or_create(key_id.unwrap_or(AWS_S3_ALIAS)).await?;
        Ok(self.key_arn_of(&id))
    }

    /// One AWS KMS JSON 1.1 request (`operation` is what follows
    /// `TrentService.`): HTTP status and JSON body (errors as `{"__type", "message"}`).
    pub async fn handle_api(&self, operation: &str, body: &[u8], caller: &Caller, request_id: &str) -> (u16, Vec<u8>) {
        api::handle(self, operation, body, caller, request_id).await
    }
}

#[cfg(test)]
mod tests;
