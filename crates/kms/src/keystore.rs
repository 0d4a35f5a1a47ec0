//! The keystore: every KMS key with its versioned material, aliases and
//! policies, kept as one replicated document (`bulwark_object::Document`
//! named `kms`) whose body is sealed under a key derived from the root key.
//!
//! Stored body = `nonce (12) ‖ AES-256-GCM(derive_key(root, "kms/keystore"),
//! nonce, JSON state, AAD = "bulwark kms keystore v1\0" ‖ u64be(generation)) ‖ tag`.
//! Binding the generation means an old body replayed under a newer
//! generation number does not open. Without the right root key nothing
//! opens, and [`open_state`] says so instead of starting with an empty
//! keystore (which would orphan every ciphertext).

use std::collections::BTreeMap;

use bulwark_crypto::Key32;
use serde::{Deserialize, Serialize};

use crate::KmsError;

/// Name of the replicated document.
pub(crate) const DOCUMENT: &str = "kms";
const AAD_DOMAIN: &[u8] = b"bulwark kms keystore v1\0";
/// Keys in the keystore, at most (AWS's default quota per region).
pub(crate) const KEYS_MAX: usize = 100_000;
/// Aliases, at most.
pub(crate) const ALIASES_MAX: usize = 100_000;
/// Versions of one key's material, at most (on-demand rotations are
/// limited to 25; automatic ones at 90 days take centuries to get there).
pub(crate) const KEY_VERSIONS_MAX: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
}

impl KeyState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KeyManager {
    /// Created by a client with CreateKey.
    Customer,
    /// `alias/aws/s3`, created on first use.
    Aws,
    /// The SSE-S3 master key: never visible through the API.
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RotationType {
    Automatic,
    OnDemand,
}

impl RotationType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RotationType::Automatic => "AUTOMATIC",
            RotationType::OnDemand => "ON_DEMAND",
        }
    }
}

/// One version of a key's material. Version `n` is `versions[n - 1]`.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct KeyVersion {
    #[serde(with = "material_hex")]
    pub(crate) material: Key32,
    /// What AWS calls KeyMaterialId: 64 hex digits, not secret.
    pub(crate) material_id: String,
    pub(crate) created_ms: i64,
    /// How this version came to be; `None` for the key's first material.
    pub(crate) rotation: Option<RotationType>,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub(crate) manager: KeyManager,
    pub(crate) description: String,
    pub(crate) created_ms: i64,
    pub(crate) state: KeyState,
    #[serde(default)]
    pub(crate) deletion_ms: Option<i64>,
    #[serde(default)]
    pub(crate) pending_window_days: Option<u32>,
    /// Automatic rotation: enabled when set.
    #[serde(default)]
    pub(crate) rotation_period_days: Option<u32>,
    #[serde(default)]
    pub(crate) next_rotation_ms: Option<i64>,
    #[serde(default)]
    pub(crate) on_demand_rotations: u32,
    pub(crate) versions: Vec<KeyVersion>,
    pub(crate) policy: String,
    #[serde(default)]
    pub(crate) tags: BTreeMap<String, String>,
}

impl KeyRecord {
    /// The newest version: its number and material.
    pub(crate) fn newest(&self) -> (u32, &KeyVersion) {
        // A key is created with one version and versions are never removed.
        let version = self.versions.last().expect("a key has at least one version");
        (u32::try_from(self.versions.len()).unwrap_or(u32::MAX), version)
    }

    pub(crate) fn version(&self, number: u32) -> Option<&KeyVersion> {
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        self.versions.get(index)
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct AliasRecord {
    /// Key id (UUID) the alias points to.
    pub(crate) target: String,
    pub(crate) created_ms: i64,
    pub(crate) updated_ms: i64,
}

/// The whole keystore.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    /// By key id (UUID, hyphenated lowercase).
    #[serde(default)]
    pub(crate) keys: BTreeMap<String, KeyRecord>,
    /// By full alias name (`alias/…`).
    #[serde(default)]
    pub(crate) aliases: BTreeMap<String, AliasRecord>,
    /// The key id of the SSE-S3 master key, once created.
    #[serde(default)]
    pub(crate) sse_s3_key: Option<String>,
}

/// Key material as hex inside the sealed document; the decoded text is
/// zeroized, and the key lives in a zeroizing [`Key32`].
mod material_hex {
    use bulwark_crypto::Key32;
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub(crate) fn serialize<S: Serializer>(key: &Key32, serializer: S) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(hex::encode(key.expose()));
        serializer.serialize_str(&text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Key32, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        let bytes = Zeroizing::new(hex::decode(text.as_str()).map_err(serde::de::Error::custom)?);
        Key32::from_slice(&bytes).ok_or_else(|| serde::de::Error::custom("key material is not 32 bytes"))
    }
}

fn aad(generation: u64) -> Vec<u8> {
    [AAD_DOMAIN, &generation.to_be_bytes()].concat()
}

/// Seals the state for generation `generation`.
pub(crate) fn seal_state(key: &Key32, generation: u64, state: &State) -> Result<Vec<u8>, KmsError> {
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(state).map_err(|e| KmsError::Internal(format!("keystore does not serialise: {e}")))?,
    );
    bulwark_crypto::seal_bytes(key, &aad(generation), &json)
        .map_err(|e| KmsError::Internal(format!("keystore cannot be sealed: {e}")))
}

/// Opens a stored state; fails with a message that names the likely cause.
pub(crate) fn open_state(key: &Key32, generation: u64, body: &[u8]) -> Result<State, KmsError> {
    let json = bulwark_crypto::open_bytes(key, &aad(generation), body).map_err(|_| {
        KmsError::Internal(
            "the KMS keystore cannot be opened: the root key is not the one it was sealed with, or the stored \
             keystore is damaged"
                .into(),
        )
    })?;
    serde_json::from_slice(&json).map_err(|e| KmsError::Internal(format!("the KMS keystore does not parse: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let mut state = State::default();
        state.keys.insert(
            "6f1c3a4e-0000-4000-8000-000000000001".into(),
            KeyRecord {
                manager: KeyManager::Customer,
                description: "d".into(),
                created_ms: 1,
                state: KeyState::Enabled,
                deletion_ms: None,
                pending_window_days: None,
                rotation_period_days: Some(365),
                next_rotation_ms: Some(2),
                on_demand_rotations: 0,
                versions: vec![KeyVersion {
                    material: Key32::from_bytes([7; 32]),
                    material_id: "00".repeat(32),
                    created_ms: 1,
                    rotation: None,
                }],
                policy: "{}".into(),
                tags: BTreeMap::new(),
            },
        );
        state
    }

    #[test]
    fn the_sealed_state_opens_only_with_its_key_and_generation() {
        let key = Key32::random().expect("key");
        let body = seal_state(&key, 4, &state()).expect("seal");
        assert!(!body.windows(64).any(|w| w == "07".repeat(32).as_bytes()), "material is not in the clear");
        let opened = open_state(&key, 4, &body).expect("open");
        let record = &opened.keys["6f1c3a4e-0000-4000-8000-000000000001"];
        assert_eq!(record.newest().1.material.expose(), &[7; 32]);
        assert_eq!(record.newest().0, 1);
        let wrong_key = open_state(&Key32::random().expect("key"), 4, &body).err().expect("wrong key");
        assert!(wrong_key.to_string().contains("root key"), "{wrong_key}");
        assert!(open_state(&key, 5, &body).is_err(), "a replayed body under another generation");
    }
}
