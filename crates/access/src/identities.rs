//! Users, groups, access keys and managed policies.
//!
//! The whole identity state is one document (see
//! `bulwark_object::Document`): replicated on every drive of the first set,
//! written at write quorum, newest generation wins. Updates are serialised
//! by a lock, applied to a copy, stored, and only then made visible, so a
//! failed store changes nothing that callers can see.
//!
//! SigV4 needs the secret itself to recompute signatures, so a hash cannot
//! be stored. Each secret is derived from a random 32-byte seed that is kept
//! only sealed (AES-256-GCM, HKDF-derived key-encryption key bound to the
//! access key id) under the identity sealing key, which is derived from the
//! server's root key held outside the data drives.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use base64::Engine;
use bulwark_crypto::{Key32, SealedKey};
use bulwark_object::{Document, ObjectStore};
use bulwark_policy::Policy;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::{AccessError, Result};

/// Name of the replicated document holding identities.
const DOCUMENT: &str = "iam";
/// Domain of the sealing context of secret seeds.
const SEAL_CONTEXT: &[u8] = b"bulwark/iam/secret-key/v1\0";
/// Access keys per user, as a guard against runaway scripts.
const KEYS_PER_USER_MAX: usize = 10;
const NAME_LEN_MAX: usize = 64;
const SECRET_LEN: usize = 40;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Root,
    User { name: String, groups: Vec<String> },
    Anonymous,
}

impl Caller {
    pub fn label(&self) -> String {
        match self {
            Caller::Root => "root".to_owned(),
            Caller::User { name, .. } => format!("user:{name}"),
            Caller::Anonymous => "anonymous".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    users: BTreeMap<String, User>,
    #[serde(default)]
    groups: BTreeMap<String, Group>,
    #[serde(default)]
    policies: BTreeMap<String, ManagedPolicy>,
    #[serde(default)]
    keys: BTreeMap<String, AccessKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    created_ns: i64,
    enabled: bool,
    #[serde(default)]
    policies: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Group {
    created_ns: i64,
    #[serde(default)]
    members: BTreeSet<String>,
    #[serde(default)]
    policies: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManagedPolicy {
    created_ns: i64,
    updated_ns: i64,
    document: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessKey {
    user: String,
    created_ns: i64,
    enabled: bool,
    sealed_seed: StoredSeal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSeal {
    salt: String,
    nonce: String,
    ciphertext: String,
}

/// What the admin API reports about a user.
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    pub name: String,
    pub arn: String,
    pub created_ns: i64,
    pub enabled: bool,
    pub groups: Vec<String>,
    pub policies: Vec<String>,
    pub access_keys: Vec<KeyInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub access_key: String,
    pub user: String,
    pub created_ns: i64,
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupInfo {
    pub name: String,
    pub created_ns: i64,
    pub members: Vec<String>,
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyInfo {
    pub name: String,
    pub created_ns: i64,
    pub updated_ns: i64,
    pub attached_to: Vec<String>,
    pub document: serde_json::Value,
}

/// A freshly created access key: the only time the secret is shown.
#[derive(Serialize)]
pub struct NewKey {
    pub access_key: String,
    pub secret_key: String,
    pub user: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey").field("access_key", &self.access_key).field("user", &self.user).finish()
    }
}

/// Where a managed policy is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attachment {
    User(String),
    Group(String),
}

/// A consistent view: the state and its parsed policies.
struct Snapshot {
    generation: u64,
    state: State,
    parsed: BTreeMap<String, Arc<Policy>>,
}

/// The root identity (from the environment or the credentials file).
pub struct Root {
    pub access_key: String,
    pub secret_key: String,
}

pub struct Identities {
    store: Arc<ObjectStore>,
    sealing: Key32,
    root: Root,
    account: String,
    current: RwLock<Arc<Snapshot>>,
    writer: tokio::sync::Mutex<()>,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn validate_name(kind: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AccessError::InvalidInput(format!(
            "{kind} name must be 1-{NAME_LEN_MAX} characters of letters, digits and +=,.@_-"
        )))
    }
}

fn parse_all(state: &State) -> BTreeMap<String, Arc<Policy>> {
    let mut parsed = BTreeMap::new();
    for (name, policy) in &state.policies {
        match Policy::parse_identity(&policy.document) {
            Ok(p) => {
                parsed.insert(name.clone(), Arc::new(p));
            }
            // Validated before it was stored; a parser change must not lock
            // anyone out silently, so say it loudly and leave it out.
            Err(e) => tracing::error!(policy = %name, error = %e, "stored policy no longer parses; ignored"),
        }
    }
    parsed
}

/// The secret access key derived from a seed: 40 characters of base64.
fn secret_from_seed(seed: &Key32) -> String {
    let mut text = base64::engine::general_purpose::STANDARD.encode(seed.expose());
    text.truncate(SECRET_LEN);
    text
}

fn seal_context(access_key: &str) -> Vec<u8> {
    [SEAL_CONTEXT, access_key.as_bytes()].concat()
}

fn random_access_key() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let tail: String = (0..18).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("BK{tail}")
}

impl Identities {
    /// Loads the identity state. Refuses to start when the stored state
    /// cannot be read or a stored key cannot be unsealed with `sealing`
    /// (the wrong root key would otherwise lock every user out silently).
    pub async fn open(store: Arc<ObjectStore>, sealing: Key32, root: Root, account: String) -> Result<Identities> {
        let (generation, state) = match store.load_document(DOCUMENT).await? {
            Some(doc) => {
                let state: State = serde_json::from_slice(&doc.body)
                    .map_err(|e| AccessError::Corrupt(format!("identity state unreadable: {e}")))?;
                (doc.generation, state)
            }
            None => (0, State::default()),
        };
        let identities = Identities {
            store,
            sealing,
            root,
            account,
            current: RwLock::new(Arc::new(Snapshot { generation, parsed: parse_all(&state), state })),
            writer: tokio::sync::Mutex::new(()),
        };
        let snapshot = identities.snapshot();
        if let Some((access_key, key)) = snapshot.state.keys.iter().next() {
            identities.unseal(access_key, &key.sealed_seed).map_err(|_| {
                AccessError::Corrupt(
                    "cannot unseal stored access keys: the root key is not the one they were sealed with".into(),
                )
            })?;
        }
        tracing::info!(
            users = snapshot.state.users.len(),
            groups = snapshot.state.groups.len(),
            keys = snapshot.state.keys.len(),
            policies = snapshot.state.policies.len(),
            "identities loaded"
        );
        Ok(identities)
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn root_access_key(&self) -> &str {
        &self.root.access_key
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn unseal(&self, access_key: &str, seal: &StoredSeal) -> Result<String> {
        let decode = |s: &str| hex::decode(s).map_err(|_| AccessError::Corrupt("sealed key is not hex".into()));
        let sealed = SealedKey {
            salt: decode(&seal.salt)?.try_into().map_err(|_| AccessError::Corrupt("bad salt".into()))?,
            nonce: decode(&seal.nonce)?.try_into().map_err(|_| AccessError::Corrupt("bad nonce".into()))?,
            ciphertext: decode(&seal.ciphertext)?,
        };
        let seed = bulwark_crypto::unseal_key(&self.sealing, &seal_context(access_key), &sealed)
            .map_err(|_| AccessError::Corrupt("sealed key does not open".into()))?;
        Ok(secret_from_seed(&seed))
    }

    /// The secret of an active access key and who it belongs to; `None` for
    /// unknown, disabled or deleted keys and for disabled users.
    pub fn secret_for(&self, access_key: &str) -> Option<(String, Caller)> {
        if bool::from(access_key.as_bytes().ct_eq(self.root.access_key.as_bytes())) {
            return Some((self.root.secret_key.clone(), Caller::Root));
        }
        let snapshot = self.snapshot();
        let key = snapshot.state.keys.get(access_key)?;
        let user = snapshot.state.users.get(&key.user)?;
        if !key.enabled || !user.enabled {
            return None;
        }
        match self.unseal(access_key, &key.sealed_seed) {
            Ok(secret) => Some((secret, Self::caller(&snapshot.state, &key.user))),
            Err(e) => {
                tracing::error!(access_key = %access_key, error = %e, "access key unusable");
                None
            }
        }
    }

    /// The caller an access key stands for, if it is active.
    pub fn caller_for(&self, access_key: &str) -> Option<Caller> {
        if bool::from(access_key.as_bytes().ct_eq(self.root.access_key.as_bytes())) {
            return Some(Caller::Root);
        }
        let snapshot = self.snapshot();
        let key = snapshot.state.keys.get(access_key)?;
        let user = snapshot.state.users.get(&key.user)?;
        (key.enabled && user.enabled).then(|| Self::caller(&snapshot.state, &key.user))
    }

    fn caller(state: &State, user: &str) -> Caller {
        let groups =
            state.groups.iter().filter(|(_, g)| g.members.contains(user)).map(|(name, _)| name.clone()).collect();
        Caller::User { name: user.to_owned(), groups }
    }

    /// The identity policies that apply to a user, named for the access log:
    /// `user:<u>/policy:<p>` or `group:<g>/policy:<p>`.
    pub fn policies_of(&self, user: &str) -> Vec<(String, Arc<Policy>)> {
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        let Some(record) = snapshot.state.users.get(user) else {
            return out;
        };
        for name in &record.policies {
            if let Some(p) = snapshot.parsed.get(name) {
                out.push((format!("user:{user}/policy:{name}"), p.clone()));
            }
        }
        for (group, g) in snapshot.state.groups.iter().filter(|(_, g)| g.members.contains(user)) {
            for name in &g.policies {
                if let Some(p) = snapshot.parsed.get(name) {
                    out.push((format!("group:{group}/policy:{name}"), p.clone()));
                }
            }
        }
        out
    }

    /// Applies `change` to a copy of the state, stores it at write quorum,
    /// and only then makes it current.
    async fn update<T>(&self, change: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let _guard = self.writer.lock().await;
        let current = self.snapshot();
        let mut state = current.state.clone();
        let out = change(&mut state)?;
        let body = serde_json::to_vec(&state).map_err(|e| AccessError::Corrupt(e.to_string()))?;
        let generation = current.generation + 1;
        if let Err(e) = self.store.store_document(DOCUMENT, &Document { generation, body: Bytes::from(body) }).await {
            // Copies of the failed write may outlive its rollback: the next
            // write must not carry the same generation with other contents.
            let unchanged = Snapshot { generation, state: current.state.clone(), parsed: current.parsed.clone() };
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(unchanged);
            return Err(e.into());
        }
        let parsed = parse_all(&state);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Snapshot { generation, state, parsed });
        Ok(out)
    }

    // ---- users -----------------------------------------------------------

    pub fn user_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:user/{name}", self.account)
    }

    pub async fn create_user(&self, name: &str) -> Result<UserInfo> {
        validate_name("user", name)?;
        self.update(|state| {
            if state.users.contains_key(name) {
                return Err(AccessError::AlreadyExists(format!("user {name}")));
            }
            state
                .users
                .insert(name.to_owned(), User { created_ns: now_ns(), enabled: true, policies: BTreeSet::new() });
            Ok(())
        })
        .await?;
        self.user(name)
    }

    /// Deletes a user together with its access keys and group memberships.
    pub async fn delete_user(&self, name: &str) -> Result<()> {
        self.update(|state| {
            state.users.remove(name).ok_or_else(|| AccessError::NoSuchEntity(format!("user {name}")))?;
            state.keys.retain(|_, k| k.user != name);
            for group in state.groups.values_mut() {
                group.members.remove(name);
            }
            Ok(())
        })
        .await
    }

    pub async fn set_user_enabled(&self, name: &str, enabled: bool) -> Result<()> {
        self.update(|state| {
            let user = state.users.get_mut(name).ok_or_else(|| AccessError::NoSuchEntity(format!("user {name}")))?;
            user.enabled = enabled;
            Ok(())
        })
        .await
    }

    pub fn user(&self, name: &str) -> Result<UserInfo> {
        let snapshot = self.snapshot();
        let user = snapshot.state.users.get(name).ok_or_else(|| AccessError::NoSuchEntity(format!("user {name}")))?;
        Ok(self.user_info(&snapshot.state, name, user))
    }

    fn user_info(&self, state: &State, name: &str, user: &User) -> UserInfo {
        UserInfo {
            name: name.to_owned(),
            arn: self.user_arn(name),
            created_ns: user.created_ns,
            enabled: user.enabled,
            groups: state.groups.iter().filter(|(_, g)| g.members.contains(name)).map(|(n, _)| n.clone()).collect(),
            policies: user.policies.iter().cloned().collect(),
            access_keys: state.keys.iter().filter(|(_, k)| k.user == name).map(|(id, k)| key_info(id, k)).collect(),
        }
    }

    pub fn users(&self) -> Vec<UserInfo> {
        let snapshot = self.snapshot();
        snapshot.state.users.iter().map(|(name, user)| self.user_info(&snapshot.state, name, user)).collect()
    }

    // ---- access keys -----------------------------------------------------

    pub async fn create_key(&self, user: &str) -> Result<NewKey> {
        let seed = Key32::random().map_err(|e| AccessError::Corrupt(e.to_string()))?;
        let secret_key = secret_from_seed(&seed);
        let root_key = self.root.access_key.clone();
        let sealing = &self.sealing;
        let access_key = self
            .update(|state| {
                if !state.users.contains_key(user) {
                    return Err(AccessError::NoSuchEntity(format!("user {user}")));
                }
                if state.keys.values().filter(|k| k.user == user).count() >= KEYS_PER_USER_MAX {
                    return Err(AccessError::LimitExceeded(format!(
                        "user {user} already has {KEYS_PER_USER_MAX} access keys"
                    )));
                }
                let access_key = std::iter::repeat_with(random_access_key)
                    .find(|k| !state.keys.contains_key(k) && *k != root_key)
                    .unwrap_or_default();
                let sealed = bulwark_crypto::seal_key(sealing, &seal_context(&access_key), &seed)
                    .map_err(|e| AccessError::Corrupt(e.to_string()))?;
                let sealed_seed = StoredSeal {
                    salt: hex::encode(sealed.salt),
                    nonce: hex::encode(sealed.nonce),
                    ciphertext: hex::encode(&sealed.ciphertext),
                };
                state.keys.insert(
                    access_key.clone(),
                    AccessKey { user: user.to_owned(), created_ns: now_ns(), enabled: true, sealed_seed },
                );
                Ok(access_key)
            })
            .await?;
        tracing::info!(user = %user, access_key = %access_key, "access key created");
        Ok(NewKey { access_key, secret_key, user: user.to_owned() })
    }

    pub fn keys(&self, user: Option<&str>) -> Result<Vec<KeyInfo>> {
        let snapshot = self.snapshot();
        if let Some(user) = user
            && !snapshot.state.users.contains_key(user)
        {
            return Err(AccessError::NoSuchEntity(format!("user {user}")));
        }
        Ok(snapshot
            .state
            .keys
            .iter()
            .filter(|(_, k)| user.is_none_or(|u| k.user == u))
            .map(|(id, k)| key_info(id, k))
            .collect())
    }

    pub async fn set_key_enabled(&self, access_key: &str, enabled: bool) -> Result<()> {
        self.update(|state| {
            let key = state
                .keys
                .get_mut(access_key)
                .ok_or_else(|| AccessError::NoSuchEntity(format!("access key {access_key}")))?;
            key.enabled = enabled;
            Ok(())
        })
        .await?;
        tracing::info!(access_key = %access_key, enabled, "access key state changed");
        Ok(())
    }

    pub async fn delete_key(&self, access_key: &str) -> Result<()> {
        self.update(|state| {
            state
                .keys
                .remove(access_key)
                .map(|_| ())
                .ok_or_else(|| AccessError::NoSuchEntity(format!("access key {access_key}")))
        })
        .await?;
        tracing::info!(access_key = %access_key, "access key deleted");
        Ok(())
    }

    // ---- groups ----------------------------------------------------------

    pub async fn create_group(&self, name: &str) -> Result<()> {
        validate_name("group", name)?;
        self.update(|state| {
            if state.groups.contains_key(name) {
                return Err(AccessError::AlreadyExists(format!("group {name}")));
            }
            state.groups.insert(
                name.to_owned(),
                Group { created_ns: now_ns(), members: BTreeSet::new(), policies: BTreeSet::new() },
            );
            Ok(())
        })
        .await
    }

    pub async fn delete_group(&self, name: &str) -> Result<()> {
        self.update(|state| {
            state.groups.remove(name).map(|_| ()).ok_or_else(|| AccessError::NoSuchEntity(format!("group {name}")))
        })
        .await
    }

    pub async fn set_membership(&self, group: &str, user: &str, member: bool) -> Result<()> {
        self.update(|state| {
            if !state.users.contains_key(user) {
                return Err(AccessError::NoSuchEntity(format!("user {user}")));
            }
            let g = state.groups.get_mut(group).ok_or_else(|| AccessError::NoSuchEntity(format!("group {group}")))?;
            if member {
                g.members.insert(user.to_owned());
            } else if !g.members.remove(user) {
                return Err(AccessError::NoSuchEntity(format!("user {user} is not in group {group}")));
            }
            Ok(())
        })
        .await
    }

    pub fn groups(&self) -> Vec<GroupInfo> {
        let snapshot = self.snapshot();
        snapshot
            .state
            .groups
            .iter()
            .map(|(name, g)| GroupInfo {
                name: name.clone(),
                created_ns: g.created_ns,
                members: g.members.iter().cloned().collect(),
                policies: g.policies.iter().cloned().collect(),
            })
            .collect()
    }

    // ---- managed policies ------------------------------------------------

    /// Creates or replaces a managed policy; the document must parse.
    pub async fn put_policy(&self, name: &str, document: &str) -> Result<()> {
        validate_name("policy", name)?;
        Policy::parse_identity(document).map_err(|e| AccessError::MalformedPolicy(e.to_string()))?;
        self.update(|state| {
            let now = now_ns();
            let created_ns = state.policies.get(name).map_or(now, |p| p.created_ns);
            state
                .policies
                .insert(name.to_owned(), ManagedPolicy { created_ns, updated_ns: now, document: document.to_owned() });
            Ok(())
        })
        .await
    }

    /// Deletes a policy that is attached nowhere (as IAM: DeleteConflict).
    pub async fn delete_policy(&self, name: &str) -> Result<()> {
        self.update(|state| {
            if !state.policies.contains_key(name) {
                return Err(AccessError::NoSuchEntity(format!("policy {name}")));
            }
            let attached = attachments(state, name);
            if !attached.is_empty() {
                return Err(AccessError::Conflict(format!(
                    "policy {name} is attached to {}; detach it first",
                    attached.join(", ")
                )));
            }
            state.policies.remove(name);
            Ok(())
        })
        .await
    }

    pub async fn attach(&self, policy: &str, to: &Attachment, attach: bool) -> Result<()> {
        self.update(|state| {
            if !state.policies.contains_key(policy) {
                return Err(AccessError::NoSuchEntity(format!("policy {policy}")));
            }
            let set = match to {
                Attachment::User(u) => {
                    &mut state.users.get_mut(u).ok_or_else(|| AccessError::NoSuchEntity(format!("user {u}")))?.policies
                }
                Attachment::Group(g) => {
                    &mut state
                        .groups
                        .get_mut(g)
                        .ok_or_else(|| AccessError::NoSuchEntity(format!("group {g}")))?
                        .policies
                }
            };
            if attach {
                set.insert(policy.to_owned());
            } else if !set.remove(policy) {
                return Err(AccessError::NoSuchEntity(format!("policy {policy} is not attached there")));
            }
            Ok(())
        })
        .await
    }

    pub fn policies(&self) -> Vec<PolicyInfo> {
        let snapshot = self.snapshot();
        snapshot.state.policies.iter().map(|(name, p)| policy_info(&snapshot.state, name, p)).collect()
    }

    pub fn policy(&self, name: &str) -> Result<PolicyInfo> {
        let snapshot = self.snapshot();
        let p = snapshot.state.policies.get(name).ok_or_else(|| AccessError::NoSuchEntity(format!("policy {name}")))?;
        Ok(policy_info(&snapshot.state, name, p))
    }
}

fn key_info(id: &str, key: &AccessKey) -> KeyInfo {
    KeyInfo { access_key: id.to_owned(), user: key.user.clone(), created_ns: key.created_ns, enabled: key.enabled }
}

fn attachments(state: &State, policy: &str) -> Vec<String> {
    let users = state.users.iter().filter(|(_, u)| u.policies.contains(policy)).map(|(n, _)| format!("user:{n}"));
    let groups = state.groups.iter().filter(|(_, g)| g.policies.contains(policy)).map(|(n, _)| format!("group:{n}"));
    users.chain(groups).collect()
}

fn policy_info(state: &State, name: &str, p: &ManagedPolicy) -> PolicyInfo {
    PolicyInfo {
        name: name.to_owned(),
        created_ns: p.created_ns,
        updated_ns: p.updated_ns,
        attached_to: attachments(state, name),
        document: serde_json::from_str(&p.document).unwrap_or(serde_json::Value::String(p.document.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_forty_base64_characters_of_its_seed() {
        let seed = Key32::from_bytes([7; 32]);
        let secret = secret_from_seed(&seed);
        assert_eq!(secret.len(), SECRET_LEN);
        assert_ne!(secret, secret_from_seed(&Key32::from_bytes([8; 32])));
    }

    #[test]
    fn names_follow_iam_rules() {
        assert!(validate_name("user", "alice.smith@example-1").is_ok());
        assert!(validate_name("user", "").is_err());
        assert!(validate_name("user", "a/b").is_err());
        assert!(validate_name("user", &"x".repeat(65)).is_err());
    }

    #[test]
    fn access_keys_look_like_access_keys() {
        let key = random_access_key();
        assert_eq!(key.len(), 20);
        assert!(key.starts_with("BK") && key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    }
}
