//! The AWS KMS JSON 1.1 API (`X-Amz-Target: TrentService.<Op>`): request
//! parsing and validation, one handler per operation, and the error body.
//! Exception names and messages follow AWS (REFERENCE.md §1). Every request
//! — answered, refused or malformed — is audited before it is answered.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bulwark_access::Caller;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::keystore::{AliasRecord, KeyManager, KeyRecord, KeyState, RotationType};
use crate::{
    EncryptionContext, KeyRef, Kms, KmsError, Snapshot, Source, ciphertext, internal, keystore, validate_context,
};

/// Longest operation name kept in the audit log (it comes from the client).
const OPERATION_CHARS_MAX: usize = 64;
const DESCRIPTION_CHARS_MAX: usize = 8192;
const ALIAS_CHARS_MAX: usize = 256;
const TAG_KEY_CHARS_MAX: usize = 128;
const TAG_VALUE_CHARS_MAX: usize = 256;
const TAGS_PER_KEY_MAX: usize = 50;
const ON_DEMAND_ROTATIONS_MAX: u32 = 25;
const ROTATION_DAYS_MIN: u32 = 90;
const ROTATION_DAYS_MAX: u32 = 2560;
const ROTATION_DAYS_DEFAULT: u32 = 365;
const PENDING_WINDOW_DAYS_MIN: u32 = 7;
const PENDING_WINDOW_DAYS_MAX: u32 = 30;
const PENDING_WINDOW_DAYS_DEFAULT: u32 = 30;
const LIST_LIMIT_MAX: u32 = 1000;
const LIST_LIMIT_DEFAULT: u32 = 100;
const RANDOM_BYTES_MAX: u32 = 1024;
const ENCRYPT_PLAINTEXT_BYTES_MAX: usize = 4096;
const KEY_POLICY_CHARS_MAX: usize = 131_072;
const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

const _: () = assert!(ENCRYPT_PLAINTEXT_BYTES_MAX <= ciphertext::PLAINTEXT_BYTES_MAX);
const _: () = assert!(RANDOM_BYTES_MAX as usize <= ciphertext::PLAINTEXT_BYTES_MAX);

type Answer = Result<Option<Value>, KmsError>;

pub(crate) async fn handle(
    kms: &Kms,
    operation: &str,
    body: &[u8],
    caller: &Caller,
    request_id: &str,
) -> (u16, Vec<u8>) {
    let recorded: String = operation.chars().take(OPERATION_CHARS_MAX).collect();
    let mut entry = kms.entry(kms.principal_of(caller), Source::Api, &recorded, request_id);
    let mut call = Call { kms, caller, entry: &mut entry };
    let result = call.dispatch(operation, body).await;
    match kms.audited(entry, result).await {
        Ok(Some(value)) => (200, serde_json::to_vec(&value).unwrap_or_default()),
        Ok(None) => (200, Vec::new()),
        Err(e) => (e.http_status(), error_body(&e)),
    }
}

/// `{"__type": "<Exception>", "message": "…"}`; no message for an
/// unopenable ciphertext.
pub(crate) fn error_body(error: &KmsError) -> Vec<u8> {
    let value = match error.client_message() {
        Some(message) => json!({ "__type": error.aws_name(), "message": message }),
        None => json!({ "__type": error.aws_name() }),
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

fn validation(value: impl std::fmt::Display, field: &str, constraint: &str) -> KmsError {
    KmsError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    ))
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, KmsError> {
    value.ok_or_else(|| {
        KmsError::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, KmsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    // The parser's message could quote the request (a plaintext), so say less.
    serde_json::from_slice(body)
        .map_err(|_| KmsError::Serialization("The request body is not valid JSON for this operation.".into()))
}

fn blob(text: &str, field: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, KmsError> {
    BASE64
        .decode(text)
        .map(zeroize::Zeroizing::new)
        .map_err(|_| KmsError::Serialization(format!("Could not decode the base64 value of '{field}'.")))
}

fn epoch(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn check_algorithm(algorithm: Option<&str>, field: &str) -> Result<(), KmsError> {
    match algorithm {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(other) => Err(validation(other, field, "Member must satisfy enum value set: [SYMMETRIC_DEFAULT]")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    tag_key: Option<String>,
    tag_value: Option<String>,
}

fn validate_tags(tags: &[Tag]) -> Result<Vec<(String, String)>, KmsError> {
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        let key = required(tag.tag_key.clone(), "tags.member.tagKey")?;
        let value = required(tag.tag_value.clone(), "tags.member.tagValue")?;
        if key.is_empty() || key.chars().count() > TAG_KEY_CHARS_MAX {
            return Err(validation(&key, "tags.member.tagKey", "Member must have length between 1 and 128"));
        }
        if value.chars().count() > TAG_VALUE_CHARS_MAX {
            return Err(validation(
                &value,
                "tags.member.tagValue",
                "Member must have length less than or equal to 256",
            ));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(KmsError::Tag("Tags beginning with aws: are reserved".into()));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn apply_tags(record: &mut KeyRecord, tags: Vec<(String, String)>) -> Result<(), KmsError> {
    record.tags.extend(tags);
    if record.tags.len() > TAGS_PER_KEY_MAX {
        return Err(KmsError::LimitExceeded(format!("A KMS key can have at most {TAGS_PER_KEY_MAX} tags.")));
    }
    Ok(())
}

/// `(Marker, Limit)` of a list request, validated.
fn page_limit(limit: Option<u32>) -> Result<usize, KmsError> {
    match limit {
        None => Ok(LIST_LIMIT_DEFAULT as usize),
        Some(n) if (1..=LIST_LIMIT_MAX).contains(&n) => Ok(n as usize),
        Some(n) => Err(validation(n, "limit", "Member must have value between 1 and 1000")),
    }
}

/// One API request being served: the KMS, the caller and the audit record
/// the handlers fill in as they learn which key is used.
struct Call<'a> {
    kms: &'a Kms,
    caller: &'a Caller,
    entry: &'a mut AuditEntry,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyIdOnly {
    key_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateKeyRequest {
    policy: Option<String>,
    description: Option<String>,
    key_usage: Option<String>,
    key_spec: Option<String>,
    customer_master_key_spec: Option<String>,
    origin: Option<String>,
    tags: Option<Vec<Tag>>,
    multi_region: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRequest {
    key_id: Option<String>,
    limit: Option<u32>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AliasRequest {
    alias_name: Option<String>,
    target_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnableRotationRequest {
    key_id: Option<String>,
    rotation_period_in_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListRotationsRequest {
    key_id: Option<String>,
    include_key_material: Option<String>,
    limit: Option<u32>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GenerateDataKeyRequest {
    key_id: Option<String>,
    encryption_context: Option<EncryptionContext>,
    key_spec: Option<String>,
    number_of_bytes: Option<u32>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptRequest {
    key_id: Option<String>,
    plaintext: Option<String>,
    encryption_context: Option<EncryptionContext>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DecryptRequest {
    ciphertext_blob: Option<String>,
    encryption_context: Option<EncryptionContext>,
    key_id: Option<String>,
    encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ReEncryptRequest {
    ciphertext_blob: Option<String>,
    source_encryption_context: Option<EncryptionContext>,
    source_key_id: Option<String>,
    destination_key_id: Option<String>,
    destination_encryption_context: Option<EncryptionContext>,
    source_encryption_algorithm: Option<String>,
    destination_encryption_algorithm: Option<String>,
    dry_run: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduleDeletionRequest {
    key_id: Option<String>,
    pending_window_in_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyPolicyRequest {
    key_id: Option<String>,
    policy_name: Option<String>,
    policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagRequest {
    key_id: Option<String>,
    tags: Option<Vec<Tag>>,
    tag_keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescriptionRequest {
    key_id: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RandomRequest {
    number_of_bytes: Option<u32>,
}

impl Call<'_> {
    async fn dispatch(&mut self, operation: &str, body: &[u8]) -> Answer {
        match operation {
            "CreateKey" => self.create_key(parse(body)?).await,
            "DescribeKey" => self.describe_key(parse(body)?).await,
            "ListKeys" => self.list_keys(parse(body)?),
            "CreateAlias" => self.create_alias(parse(body)?).await,
            "UpdateAlias" => self.update_alias(parse(body)?).await,
            "ListAliases" => self.list_aliases(parse(body)?),
            "DeleteAlias" => self.delete_alias(parse(body)?).await,
            "EnableKey" => self.set_enabled(parse(body)?, true).await,
            "DisableKey" => self.set_enabled(parse(body)?, false).await,
            "EnableKeyRotation" => self.enable_rotation(parse(body)?).await,
            "DisableKeyRotation" => self.disable_rotation(parse(body)?).await,
            "GetKeyRotationStatus" => self.rotation_status(parse(body)?).await,
            "RotateKeyOnDemand" => self.rotate_on_demand(parse(body)?).await,
            "ListKeyRotations" => self.list_rotations(parse(body)?).await,
            "GenerateDataKey" => self.generate_data_key(parse(body)?, true).await,
            "GenerateDataKeyWithoutPlaintext" => self.generate_data_key(parse(body)?, false).await,
            "Encrypt" => self.encrypt(parse(body)?).await,
            "Decrypt" => self.decrypt(parse(body)?).await,
            "ReEncrypt" => self.re_encrypt(parse(body)?).await,
            "ScheduleKeyDeletion" => self.schedule_deletion(parse(body)?).await,
            "CancelKeyDeletion" => self.cancel_deletion(parse(body)?).await,
            "GetKeyPolicy" => self.get_policy(parse(body)?).await,
            "PutKeyPolicy" => self.put_policy(parse(body)?).await,
            "TagResource" => self.tag(parse(body)?).await,
            "UntagResource" => self.untag(parse(body)?).await,
            "ListResourceTags" => self.list_tags(parse(body)?).await,
            "UpdateKeyDescription" => self.update_description(parse(body)?).await,
            "GenerateRandom" => self.generate_random(parse(body)?),
            _ => Err(KmsError::UnknownOperation(format!("Operation {operation} is not supported by this server."))),
        }
    }

    // ---- shared steps -------------------------------------------------------

    /// Resolves a key reference (creating `aws/s3` on first use), records
    /// the key in the audit entry and checks `action` on it.
    async fn key_for(
        &mut self,
        key_id: Option<String>,
        action: &str,
        context: Option<&EncryptionContext>,
    ) -> Result<(std::sync::Arc<Snapshot>, String), KmsError> {
        let key_id = required(key_id, "keyId")?;
        let (snapshot, id) = self.kms.resolve_or_create(&key_id).await?;
        self.entry.key_id = Some(id.clone());
        self.kms.authorize(&snapshot, self.caller, action, Some(&id), context, Source::Api)?;
        Ok((snapshot, id))
    }

    fn arn(&self, id: &str) -> String {
        self.kms.key_arn_of(id)
    }

    /// Refuses configuration changes of keys that AWS manages.
    fn customer_managed(&self, id: &str, record: &KeyRecord) -> Result<(), KmsError> {
        match record.manager {
            KeyManager::Customer => Ok(()),
            _ => Err(KmsError::UnsupportedOperation(format!(
                "{} is an AWS managed key; its configuration cannot be changed.",
                self.arn(id)
            ))),
        }
    }

    fn not_pending(&self, id: &str, record: &KeyRecord) -> Result<(), KmsError> {
        match record.state {
            KeyState::PendingDeletion => Err(KmsError::InvalidState(format!("{} is pending deletion.", self.arn(id)))),
            _ => Ok(()),
        }
    }

    /// Changes key `id` in a stored update; the closure sees its record.
    async fn change_key<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut KeyRecord) -> Result<T, KmsError>,
    ) -> Result<T, KmsError> {
        let missing = || KmsError::NotFound(format!("Key '{}' does not exist", self.arn(id)));
        self.kms.update(|state| change(state.keys.get_mut(id).ok_or_else(missing)?)).await
    }

    fn metadata(&self, id: &str, record: &KeyRecord) -> Value {
        let mut meta = json!({
            "AWSAccountId": self.kms.config.account,
            "KeyId": id,
            "Arn": self.arn(id),
            "CreationDate": epoch(record.created_ms),
            "Enabled": record.state == KeyState::Enabled,
            "Description": record.description,
            "KeyUsage": "ENCRYPT_DECRYPT",
            "KeyState": record.state.as_str(),
            "Origin": "AWS_KMS",
            "KeyManager": if record.manager == KeyManager::Customer { "CUSTOMER" } else { "AWS" },
            "CustomerMasterKeySpec": SYMMETRIC_DEFAULT,
            "KeySpec": SYMMETRIC_DEFAULT,
            "EncryptionAlgorithms": [SYMMETRIC_DEFAULT],
            "MultiRegion": false,
            "CurrentKeyMaterialId": record.newest().1.material_id,
        });
        if let (Some(at), Value::Object(fields)) = (record.deletion_ms, &mut meta) {
            fields.insert("DeletionDate".into(), epoch(at));
            if let Some(days) = record.pending_window_days {
                fields.insert("PendingDeletionWindowInDays".into(), json!(days));
            }
        }
        meta
    }

    fn context_of(&mut self, context: Option<EncryptionContext>) -> Result<EncryptionContext, KmsError> {
        let context = context.unwrap_or_default();
        validate_context(&context)?;
        self.entry.context = context.clone();
        Ok(context)
    }

    // ---- keys -----------------------------------------------------------------

    async fn create_key(&mut self, request: CreateKeyRequest) -> Answer {
        let snapshot = self.kms.snapshot();
        self.kms.authorize(&snapshot, self.caller, "kms:CreateKey", None, None, Source::Api)?;
        if let Some(usage) = request.key_usage.as_deref().filter(|u| *u != "ENCRYPT_DECRYPT") {
            return Err(KmsError::UnsupportedOperation(format!("KeyUsage {usage} is not supported by this server.")));
        }
        for spec in [&request.key_spec, &request.customer_master_key_spec].into_iter().flatten() {
            if spec != SYMMETRIC_DEFAULT {
                return Err(KmsError::UnsupportedOperation(format!("KeySpec {spec} is not supported by this server.")));
            }
        }
        if let Some(origin) = request.origin.as_deref().filter(|o| *o != "AWS_KMS") {
            return Err(KmsError::UnsupportedOperation(format!("Origin {origin} is not supported by this server.")));
        }
        if request.multi_region == Some(true) {
            return Err(KmsError::UnsupportedOperation("Multi-Region keys are not supported by this server.".into()));
        }
        let description = request.description.unwrap_or_default();
        if description.chars().count() > DESCRIPTION_CHARS_MAX {
            return Err(validation("…", "description", "Member must have length less than or equal to 8192"));
        }
        let policy = match request.policy {
            Some(policy) => {
                self.validate_policy(&policy)?;
                policy
            }
            None => self.kms.default_policy(),
        };
        let tags = validate_tags(request.tags.as_deref().unwrap_or_default())?;
        let mut record = self.kms.new_key(KeyManager::Customer, description, policy, None)?;
        apply_tags(&mut record, tags)?;
        let id = Uuid::new_v4().hyphenated().to_string();
        self.entry.key_id = Some(id.clone());
        self.entry.key_version = Some(1);
        let metadata = self.metadata(&id, &record);
        self.kms
            .update(|state| {
                if state.keys.len() >= keystore::KEYS_MAX {
                    return Err(KmsError::LimitExceeded("The number of KMS keys is at its limit.".into()));
                }
                state.keys.insert(id.clone(), record);
                Ok(())
            })
            .await?;
        Ok(Some(json!({ "KeyMetadata": metadata })))
    }

    fn validate_policy(&self, policy: &str) -> Result<(), KmsError> {
        if policy.is_empty() || policy.chars().count() > KEY_POLICY_CHARS_MAX {
            return Err(validation("…", "policy", "Member must have length between 1 and 131072"));
        }
        bulwark_policy::Policy::parse_resource(policy, &self.kms.config.account)
            .map(|_| ())
            .map_err(|e| KmsError::MalformedPolicyDocument(e.to_string()))
    }

    async fn describe_key(&mut self, request: KeyIdOnly) -> Answer {
        let (snapshot, id) = self.key_for(request.key_id, "kms:DescribeKey", None).await?;
        Ok(Some(json!({ "KeyMetadata": self.metadata(&id, &snapshot.state.keys[&id]) })))
    }

    fn list_keys(&mut self, request: ListRequest) -> Answer {
        let snapshot = self.kms.snapshot();
        self.kms.authorize(&snapshot, self.caller, "kms:ListKeys", None, None, Source::Api)?;
        let limit = page_limit(request.limit)?;
        let after = match request.marker {
            Some(marker) => {
                Some(Kms::parse_uuid(&marker).ok_or_else(|| KmsError::InvalidMarker("Invalid marker".into()))?)
            }
            None => None,
        };
        let visible = snapshot.state.keys.iter().filter(|(_, r)| r.manager != KeyManager::Internal);
        let mut rest = visible.filter(|(id, _)| after.as_ref().is_none_or(|a| id.as_str() > a.as_str())).peekable();
        let mut keys = Vec::new();
        let mut last = None;
        while keys.len() < limit {
            let Some((id, _)) = rest.next() else { break };
            keys.push(json!({ "KeyId": id, "KeyArn": self.arn(id) }));
            last = Some(id.clone());
        }
        Ok(Some(page(json!({ "Keys": keys }), rest.peek().is_some(), last)))
    }

    async fn set_enabled(&mut self, request: KeyIdOnly, enable: bool) -> Answer {
        let action = if enable { "kms:EnableKey" } else { "kms:DisableKey" };
        let (snapshot, id) = self.key_for(request.key_id, action, None).await?;
        let record = &snapshot.state.keys[&id];
        self.customer_managed(&id, record)?;
        self.not_pending(&id, record)?;
        let arn = self.arn(&id);
        self.change_key(&id, |record| {
            if record.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!("{arn} is pending deletion.")));
            }
            record.state = if enable { KeyState::Enabled } else { KeyState::Disabled };
            Ok(())
        })
        .await?;
        Ok(None)
    }

    async fn update_description(&mut self, request: DescriptionRequest) -> Answer {
        let (snapshot, id) = self.key_for(request.key_id, "kms:UpdateKeyDescription", None).await?;
        self.customer_managed(&id, &snapshot.state.keys[&id])?;
        let description = required(request.description, "description")?;
        if description.chars().count() > DESCRIPTION_CHARS_MAX {
            return Err(validation("…", "description", "Member must have length less than or equal to 8192"));
        }
        self.change_key(&id, |record| {
            record.description = description;
            Ok(())
        })
        .await?;
        Ok(None)
    }

    // ---- aliases ----------------------------------------------------------------

    fn validate_alias_name(&self, name: Option<String>) -> Result<String, KmsError> {
        let name = required(name, "aliasName")?;
        if !name.starts_with("alias/") {
            return Err(KmsError::Validation(
                "Alias must start with the prefix \"alias/\". Please see \
                 https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
                    .into(),
            ));
        }
        let well_formed = name.len() > "alias/".len()
            && name.len() <= ALIAS_CHARS_MAX
            && name.chars().all(|c| c.is_ascii_alphanumeric() || ":/_-".contains(c));
        if !well_formed {
            return Err(validation(
                &name,
                "aliasName",
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
            ));
        }
        if name.starts_with("alias/aws/") {
            return Err(KmsError::InvalidAliasName(
                "Cannot create, update or delete aliases with the reserved prefix alias/aws/".into(),
            ));
        }
        Ok(name)
    }

    /// The customer key an alias may point to (`TargetKeyId` takes a key id
    /// or key ARN, not an alias).
    async fn alias_target(&mut self, target: Option<String>, action: &str) -> Result<String, KmsError> {
        let target = required(target, "targetKeyId")?;
        if matches!(self.kms.key_ref(&target)?, KeyRef::Alias(_)) {
            return Err(KmsError::Validation("TargetKeyId must be a key ID or key ARN, not an alias.".into()));
        }
        let (snapshot, id) = self.key_for(Some(target), action, None).await?;
        let record = &snapshot.state.keys[&id];
        self.customer_managed(&id, record)?;
        self.not_pending(&id, record)?;
        Ok(id)
    }

    /// Alias operations also need the action on the alias itself (an
    /// identity-policy matter: aliases have no policy).
    fn authorize_alias(&self, action: &str, name: &str) -> Result<(), KmsError> {
        let snapshot = self.kms.snapshot();
        let mut ctx = bulwark_policy::Context::new();
        self.kms.authorizer.add_principal_keys(self.caller, &mut ctx);
        ctx.insert("kms:CallerAccount", self.kms.config.account.clone());
        let arn = self.kms.alias_arn_of(name);
        let verdict = self.kms.authorizer.authorize_with(self.caller, action, &arn, &ctx, None);
        drop(snapshot);
        if verdict.allowed {
            Ok(())
        } else {
            Err(KmsError::AccessDenied(format!(
                "User: {} is not authorized to perform: {action} on resource: {arn}",
                self.kms.principal_arn(self.caller)
            )))
        }
    }

    async fn create_alias(&mut self, request: AliasRequest) -> Answer {
        let name = self.validate_alias_name(request.alias_name)?;
        self.authorize_alias("kms:CreateAlias", &name)?;
        let id = self.alias_target(request.target_key_id, "kms:CreateAlias").await?;
        let now = self.kms.now_ms();
        let arn = self.kms.alias_arn_of(&name);
        self.kms
            .update(|state| {
                if state.aliases.contains_key(&name) {
                    return Err(KmsError::AlreadyExists(format!("An alias with the name {arn} already exists")));
                }
                if state.aliases.len() >= keystore::ALIASES_MAX {
                    return Err(KmsError::LimitExceeded("The number of aliases is at its limit.".into()));
                }
                state.aliases.insert(name, AliasRecord { target: id, created_ms: now, updated_ms: now });
                Ok(())
            })
            .await?;
        Ok(None)
    }

    async fn update_alias(&mut self, request: AliasRequest) -> Answer {
        let name = self.validate_alias_name(request.alias_name)?;
        self.authorize_alias("kms:UpdateAlias", &name)?;
        let snapshot = self.kms.snapshot();
        let Some(current) = snapshot.state.aliases.get(&name) else {
            return Err(KmsError::NotFound(format!("Alias {} is not found.", self.kms.alias_arn_of(&name))));
        };
        // The key the alias leaves must allow it too, as in AWS.
        self.kms.authorize(&snapshot, self.caller, "kms:UpdateAlias", Some(&current.target), None, Source::Api)?;
        let id = self.alias_target(request.target_key_id, "kms:UpdateAlias").await?;
        let now = self.kms.now_ms();
        let arn = self.kms.alias_arn_of(&name);
        self.kms
            .update(|state| {
                let alias = state
                    .aliases
                    .get_mut(&name)
                    .ok_or_else(|| KmsError::NotFound(format!("Alias {arn} is not found.")))?;
                alias.target = id;
                alias.updated_ms = now;
                Ok(())
            })
            .await?;
        Ok(None)
    }

    fn list_aliases(&mut self, request: ListRequest) -> Answer {
        let snapshot = self.kms.snapshot();
        self.kms.authorize(&snapshot, self.caller, "kms:ListAliases", None, None, Source::Api)?;
        let limit = page_limit(request.limit)?;
        let only = match request.key_id {
            Some(key_id) => {
                let key_ref = self.kms.key_ref(&key_id)?;
                if matches!(key_ref, KeyRef::Alias(_)) {
                    return Err(KmsError::Validation("KeyId must be a key ID or key ARN, not an alias.".into()));
                }
                Some(self.kms.resolve(&snapshot, &key_ref)?)
            }
            None => None,
        };
        if let Some(marker) = &request.marker
            && !marker.starts_with("alias/")
        {
            return Err(KmsError::InvalidMarker("Invalid marker".into()));
        }
        let mut rest = snapshot
            .state
            .aliases
            .iter()
            .filter(|(name, alias)| {
                request.marker.as_ref().is_none_or(|m| name.as_str() > m.as_str())
                    && only.as_ref().is_none_or(|id| &alias.target == id)
            })
            .peekable();
        let mut aliases = Vec::new();
        let mut last = None;
        while aliases.len() < limit {
            let Some((name, alias)) = rest.next() else { break };
            aliases.push(json!({
                "AliasName": name,
                "AliasArn": self.kms.alias_arn_of(name),
                "TargetKeyId": alias.target,
                "CreationDate": epoch(alias.created_ms),
                "LastUpdatedDate": epoch(alias.updated_ms),
            }));
            last = Some(name.clone());
        }
        Ok(Some(page(json!({ "Aliases": aliases }), rest.peek().is_some(), last)))
    }

    async fn delete_alias(&mut self, request: AliasRequest) -> Answer {
        let name = self.validate_alias_name(request.alias_name)?;
        self.authorize_alias("kms:DeleteAlias", &name)?;
        let snapshot = self.kms.snapshot();
        let arn = self.kms.alias_arn_of(&name);
        let Some(alias) = snapshot.state.aliases.get(&name) else {
            return Err(KmsError::NotFound(format!("Alias {arn} is not found.")));
        };
        self.entry.key_id = Some(alias.target.clone());
        self.kms.authorize(&snapshot, self.caller, "kms:DeleteAlias", Some(&alias.target), None, Source::Api)?;
        self.kms
            .update(|state| match state.aliases.remove(&name) {
                Some(_) => Ok(()),
                None => Err(KmsError::NotFound(format!("Alias {arn} is not found."))),
            })
            .await?;
        Ok(None)
    }

    // ---- rotation -------------------------------------------------------------------

    /// Rotation settings may change only on enabled customer keys.
    fn rotatable(&self, id: &str, record: &KeyRecord) -> Result<(), KmsError> {
        self.customer_managed(id, record)?;
        self.kms.usable(id, record)
    }

    async fn enable_rotation(&mut self, request: EnableRotationRequest) -> Answer {
        let days = request.rotation_period_in_days.unwrap_or(ROTATION_DAYS_DEFAULT);
        if !(ROTATION_DAYS_MIN..=ROTATION_DAYS_MAX).contains(&days) {
            return Err(validation(days, "rotationPeriodInDays", "Member must have value between 90 and 2560"));
        }
        let (snapshot, id) = self.key_for(request.key_id, "kms:EnableKeyRotation", None).await?;
        self.rotatable(&id, &snapshot.state.keys[&id])?;
        let next = self.kms.now_ms().saturating_add(self.kms.days_ms(days));
        self.change_key(&id, |record| {
            if record.rotation_period_days != Some(days) || record.next_rotation_ms.is_none() {
                record.next_rotation_ms = Some(next);
            }
            record.rotation_period_days = Some(days);
            Ok(())
        })
        .await?;
        Ok(None)
    }

    async fn disable_rotation(&mut self, request: KeyIdOnly) -> Answer {
        let (snapshot, id) = self.key_for(request.key_id, "kms:DisableKeyRotation", None).await?;
        self.rotatable(&id, &snapshot.state.keys[&id])?;
        self.change_key(&id, |record| {
            record.rotation_period_days = None;
            record.next_rotation_ms = None;
            Ok(())
        })
        .await?;
        Ok(None)
    }

    async fn rotation_status(&mut self, request: KeyIdOnly) -> Answer {
        let (snapshot, id) = self.key_for(request.key_id, "kms:GetKeyRotationStatus", None).await?;
        let record = &snapshot.state.keys[&id];
        self.not_pending(&id, record)?;
        let mut status = json!({ "KeyRotationEnabled": record.rotation_period_days.is_some(), "KeyId": self.arn(&id) });
        if let (Some(days), Value::Object(fields)) = (record.rotation_period_days, &mut status) {
            fields.insert("RotationPeriodInDays".into(), json!(days));
            if let Some(next) = record.next_rotation_ms {
                fields.insert("NextRotationDate".into(), epoch(next));
            }
        }
        Ok(Some(status))
    }

    async fn rotate_on_demand(&mut self, request: KeyIdOnly) -> Answer {
        let (snapshot, id) = self.key_for(request.key_id, "kms:RotateKeyOnDemand", None).await?;
        let record = &snapshot.state.keys[&id];
        self.rotatable(&id, record)?;
        if record.on_demand_rotations >= ON_DEMAND_ROTATIONS_MAX {
            return Err(KmsError::LimitExceeded(format!(
                "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations \
                 can be performed for this key: {}",
                self.arn(&id)
            )));
        }
        let version = self.kms.rotate(&id, RotationType::OnDemand).await?;
        self.entry.key_version = Some(version);
        Ok(Some(json!({ "KeyId": self.arn(&id) })))
    }

    async fn list_rotations(&mut self, request: ListRotationsRequest) -> Answer {
        let (snapshot, id) = self.key_for(request.key_id, "kms:ListKeyRotations", None).await?;
        let record = &snapshot.state.keys[&id];
        self.not_pending(&id, record)?;
        let all = match request.include_key_material.as_deref() {
            None | Some("ROTATIONS_ONLY") => false,
            Some("ALL_KEY_MATERIAL") => true,
            Some(other) => {
                return Err(validation(
                    other,
                    "includeKeyMaterial",
                    "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]",
                ));
            }
        };
        let limit = page_limit(request.limit)?;
        let start = match request.marker {
            Some(marker) => marker.parse::<usize>().map_err(|_| KmsError::InvalidMarker("Invalid marker".into()))?,
            None => 0,
        };
        let newest = record.versions.len();
        let listed: Vec<Value> = record
            .versions
            .iter()
            .enumerate()
            .filter(|(_, v)| all || v.rotation.is_some())
            .skip(start)
            .take(limit)
            .map(|(index, version)| {
                let mut item = json!({
                    "KeyId": self.arn(&id),
                    "KeyMaterialId": version.material_id,
                    "KeyMaterialState": if index + 1 == newest { "CURRENT" } else { "NON_CURRENT" },
                    "RotationDate": epoch(version.created_ms),
                });
                if let (Some(kind), Value::Object(fields)) = (version.rotation, &mut item) {
                    fields.insert("RotationType".into(), json!(kind.as_str()));
                }
                item
            })
            .collect();
        let total = record.versions.iter().filter(|v| all || v.rotation.is_some()).count();
        let end = start.saturating_add(listed.len());
        Ok(Some(page(json!({ "Rotations": listed }), end < total, Some(end.to_string()))))
    }

    // ---- cryptography -------------------------------------------------------------------

    async fn generate_data_key(&mut self, request: GenerateDataKeyRequest, with_plaintext: bool) -> Answer {
        let length = match (request.key_spec.as_deref(), request.number_of_bytes) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(KmsError::Validation("Please specify either number of bytes or key spec.".into()));
            }
            (Some("AES_256"), None) => 32,
            (Some("AES_128"), None) => 16,
            (Some(other), None) => {
                return Err(validation(other, "keySpec", "Member must satisfy enum value set: [AES_256, AES_128]"));
            }
            (None, Some(n)) if (1..=RANDOM_BYTES_MAX).contains(&n) => n as usize,
            (None, Some(n)) => {
                return Err(validation(n, "numberOfBytes", "Member must have value between 1 and 1024"));
            }
        };
        let context = self.context_of(request.encryption_context)?;
        let action = if with_plaintext { "kms:GenerateDataKey" } else { "kms:GenerateDataKeyWithoutPlaintext" };
        let (snapshot, id) = self.key_for(request.key_id, action, Some(&context)).await?;
        let record = &snapshot.state.keys[&id];
        self.kms.usable(&id, record)?;
        if request.dry_run == Some(true) {
            return Err(KmsError::DryRun);
        }
        let plaintext = bulwark_crypto::random_vec(length).map_err(internal("data key"))?;
        let (blob, version) = self.kms.seal_under(&id, record, &context, &plaintext)?;
        self.entry.key_version = Some(version);
        let mut answer = json!({
            "CiphertextBlob": BASE64.encode(&blob),
            "KeyId": self.arn(&id),
            "KeyMaterialId": record.newest().1.material_id,
        });
        if let (true, Value::Object(fields)) = (with_plaintext, &mut answer) {
            fields.insert("Plaintext".into(), json!(BASE64.encode(plaintext.as_slice())));
        }
        Ok(Some(answer))
    }

    async fn encrypt(&mut self, request: EncryptRequest) -> Answer {
        let plaintext = blob(&required(request.plaintext, "plaintext")?, "Plaintext")?;
        if plaintext.is_empty() || plaintext.len() > ENCRYPT_PLAINTEXT_BYTES_MAX {
            return Err(validation("…", "plaintext", "Member must have length between 1 and 4096"));
        }
        check_algorithm(request.encryption_algorithm.as_deref(), "encryptionAlgorithm")?;
        let context = self.context_of(request.encryption_context)?;
        let (snapshot, id) = self.key_for(request.key_id, "kms:Encrypt", Some(&context)).await?;
        let record = &snapshot.state.keys[&id];
        self.kms.usable(&id, record)?;
        if request.dry_run == Some(true) {
            return Err(KmsError::DryRun);
        }
        let (sealed, version) = self.kms.seal_under(&id, record, &context, &plaintext)?;
        self.entry.key_version = Some(version);
        Ok(Some(json!({
            "CiphertextBlob": BASE64.encode(&sealed),
            "KeyId": self.arn(&id),
            "EncryptionAlgorithm": SYMMETRIC_DEFAULT,
        })))
    }

    /// Parses a client ciphertext and finds its key; with `expected` (a
    /// KeyId from the request) the ciphertext must name that key.
    async fn ciphertext_key(
        &mut self,
        ciphertext: &[u8],
        expected: Option<String>,
    ) -> Result<(std::sync::Arc<Snapshot>, String, u32), KmsError> {
        if ciphertext.is_empty() || ciphertext.len() > ciphertext::BLOB_BYTES_MAX {
            return Err(validation("…", "ciphertextBlob", "Member must have length between 1 and 6144"));
        }
        let parsed = ciphertext::parse(ciphertext).map_err(|_| KmsError::InvalidCiphertext)?;
        let named = parsed.key_id.hyphenated().to_string();
        self.entry.key_id = Some(named.clone());
        self.entry.key_version = Some(parsed.key_version);
        if let Some(expected) = expected {
            let (_, id) = self.kms.resolve_or_create(&expected).await?;
            if id != named {
                return Err(KmsError::IncorrectKey);
            }
        }
        let snapshot = self.kms.snapshot();
        let (id, _) = self.kms.blob_key(&snapshot, &parsed)?;
        Ok((snapshot, id, parsed.key_version))
    }

    async fn decrypt(&mut self, request: DecryptRequest) -> Answer {
        let ciphertext = blob(&required(request.ciphertext_blob, "ciphertextBlob")?, "CiphertextBlob")?;
        check_algorithm(request.encryption_algorithm.as_deref(), "encryptionAlgorithm")?;
        let context = self.context_of(request.encryption_context)?;
        let (snapshot, id, _) = self.ciphertext_key(&ciphertext, request.key_id).await?;
        self.kms.authorize(&snapshot, self.caller, "kms:Decrypt", Some(&id), Some(&context), Source::Api)?;
        let record = &snapshot.state.keys[&id];
        self.kms.usable(&id, record)?;
        if request.dry_run == Some(true) {
            return Err(KmsError::DryRun);
        }
        let parsed = ciphertext::parse(&ciphertext).map_err(|_| KmsError::InvalidCiphertext)?;
        let plaintext = Kms::open_blob(record, &parsed, &context)?;
        let material_id = record.version(parsed.key_version).map(|v| v.material_id.clone()).unwrap_or_default();
        Ok(Some(json!({
            "KeyId": self.arn(&id),
            "Plaintext": BASE64.encode(plaintext.as_slice()),
            "EncryptionAlgorithm": SYMMETRIC_DEFAULT,
            "KeyMaterialId": material_id,
        })))
    }

    async fn re_encrypt(&mut self, request: ReEncryptRequest) -> Answer {
        let ciphertext = blob(&required(request.ciphertext_blob, "ciphertextBlob")?, "CiphertextBlob")?;
        let destination = required(request.destination_key_id, "destinationKeyId")?;
        check_algorithm(request.source_encryption_algorithm.as_deref(), "sourceEncryptionAlgorithm")?;
        check_algorithm(request.destination_encryption_algorithm.as_deref(), "destinationEncryptionAlgorithm")?;
        let source_context = self.context_of(request.source_encryption_context)?;
        let target_context = request.destination_encryption_context.unwrap_or_default();
        validate_context(&target_context)?;
        let (snapshot, source_id, source_version) = self.ciphertext_key(&ciphertext, request.source_key_id).await?;
        self.kms.authorize(
            &snapshot,
            self.caller,
            "kms:ReEncryptFrom",
            Some(&source_id),
            Some(&source_context),
            Source::Api,
        )?;
        let source = &snapshot.state.keys[&source_id];
        self.kms.usable(&source_id, source)?;
        let (target_snapshot, target_id) = self.kms.resolve_or_create(&destination).await?;
        self.entry.target_key_id = Some(target_id.clone());
        self.kms.authorize(
            &target_snapshot,
            self.caller,
            "kms:ReEncryptTo",
            Some(&target_id),
            Some(&target_context),
            Source::Api,
        )?;
        let target = &target_snapshot.state.keys[&target_id];
        self.kms.usable(&target_id, target)?;
        if request.dry_run == Some(true) {
            return Err(KmsError::DryRun);
        }
        let parsed = ciphertext::parse(&ciphertext).map_err(|_| KmsError::InvalidCiphertext)?;
        let plaintext = Kms::open_blob(source, &parsed, &source_context)?;
        let (sealed, version) = self.kms.seal_under(&target_id, target, &target_context, &plaintext)?;
        self.entry.target_key_version = Some(version);
        let source_material = source.version(source_version).map(|v| v.material_id.clone()).unwrap_or_default();
        Ok(Some(json!({
            "CiphertextBlob": BASE64.encode(&sealed),
            "SourceKeyId": self.arn(&source_id),
            "KeyId": self.arn(&target_id),
            "SourceEncryptionAlgorithm": SYMMETRIC_DEFAULT,
            "DestinationEncryptionAlgorithm": SYMMETRIC_DEFAULT,
            "SourceKeyMaterialId": source_material,
            "DestinationKeyMaterialId": target.newest().1.material_id,
        })))
    }

    fn generate_random(&mut self, request: RandomRequest) -> Answer {
        let snapshot = self.kms.snapshot();
        self.kms.authorize(&snapshot, self.caller, "kms:GenerateRandom", None, None, Source::Api)?;
        let n = request.number_of_bytes.ok_or_else(|| KmsError::Validation("NumberOfBytes is required.".into()))?;
        if !(1..=RANDOM_BYTES_MAX).contains(&n) {
            return Err(validation(n, "numberOfBytes", "Member must have value between 1 and 1024"));
        }
        let bytes = bulwark_crypto::random_vec(n as usize).map_err(internal("random"))?;
        Ok(Some(json!({ "Plaintext": BASE64.encode(bytes.as_slice()) })))
    }

    // ---- deletion -----------------------------------------------------------------------

    async fn schedule_deletion(&mut self, request: ScheduleDeletionRequest) -> Answer {
        let days = request.pending_window_in_days.unwrap_or(PENDING_WINDOW_DAYS_DEFAULT);
        if days < PENDING_WINDOW_DAYS_MIN {
            return Err(validation(days, "pendingWindowInDays", "Member must have value greater than or equal to 7"));
        }
        if days > PENDING_WINDOW_DAYS_MAX {
            return Err(validation(days, "pendingWindowInDays", "Member must have value less than or equal to 30"));
        }
        let (snapshot, id) = self.key_for(request.key_id, "kms:ScheduleKeyDeletion", None).await?;
        let record = &snapshot.state.keys[&id];
        self.customer_managed(&id, record)?;
        self.not_pending(&id, record)?;
        let deletion = self.kms.now_ms().saturating_add(self.kms.days_ms(days));
        let arn = self.arn(&id);
        self.change_key(&id, |record| {
            if record.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!("{arn} is pending deletion.")));
            }
            record.state = KeyState::PendingDeletion;
            record.deletion_ms = Some(deletion);
            record.pending_window_days = Some(days);
            Ok(())
        })
        .await?;
        tracing::info!(key = %id, deletion_ms = deletion, "KMS key scheduled for deletion");
        Ok(Some(json!({
            "KeyId": arn,
            "DeletionDate": epoch(deletion),
            "KeyState": KeyState::PendingDeletion.as_str(),
            "PendingWindowInDays": days,
        })))
    }

    async fn cancel_deletion(&mut self, request: KeyIdOnly) -> Answer {
        let (_, id) = self.key_for(request.key_id, "kms:CancelKeyDeletion", None).await?;
        let arn = self.arn(&id);
        self.change_key(&id, |record| {
            if record.state != KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!("{arn} is not pending deletion.")));
            }
            record.state = KeyState::Disabled;
            record.deletion_ms = None;
            record.pending_window_days = None;
            Ok(())
        })
        .await?;
        Ok(Some(json!({ "KeyId": arn })))
    }

    // ---- policies and tags ---------------------------------------------------------------

    fn policy_name(name: Option<&str>) -> Result<(), KmsError> {
        match name {
            None | Some("default") => Ok(()),
            Some(_) => Err(KmsError::NotFound("No such policy exists".into())),
        }
    }

    async fn get_policy(&mut self, request: KeyPolicyRequest) -> Answer {
        Self::policy_name(request.policy_name.as_deref())?;
        let (snapshot, id) = self.key_for(request.key_id, "kms:GetKeyPolicy", None).await?;
        Ok(Some(json!({ "Policy": snapshot.state.keys[&id].policy, "PolicyName": "default" })))
    }

    async fn put_policy(&mut self, request: KeyPolicyRequest) -> Answer {
        Self::policy_name(request.policy_name.as_deref())?;
        let policy = required(request.policy, "policy")?;
        let (snapshot, id) = self.key_for(request.key_id, "kms:PutKeyPolicy", None).await?;
        let record = &snapshot.state.keys[&id];
        self.customer_managed(&id, record)?;
        self.not_pending(&id, record)?;
        self.validate_policy(&policy)?;
        self.change_key(&id, |record| {
            record.policy = policy;
            Ok(())
        })
        .await?;
        Ok(None)
    }

    async fn tag(&mut self, request: TagRequest) -> Answer {
        let tags = validate_tags(&required(request.tags, "tags")?)?;
        let (snapshot, id) = self.key_for(request.key_id, "kms:TagResource", None).await?;
        let record = &snapshot.state.keys[&id];
        self.customer_managed(&id, record)?;
        self.not_pending(&id, record)?;
        self.change_key(&id, |record| apply_tags(record, tags)).await?;
        Ok(None)
    }

    async fn untag(&mut self, request: TagRequest) -> Answer {
        let keys = required(request.tag_keys, "tagKeys")?;
        let (snapshot, id) = self.key_for(request.key_id, "kms:UntagResource", None).await?;
        let record = &snapshot.state.keys[&id];
        self.customer_managed(&id, record)?;
        self.not_pending(&id, record)?;
        self.change_key(&id, |record| {
            for key in &keys {
                record.tags.remove(key);
            }
            Ok(())
        })
        .await?;
        Ok(None)
    }

    async fn list_tags(&mut self, request: KeyIdOnly) -> Answer {
        let (snapshot, id) = self.key_for(request.key_id, "kms:ListResourceTags", None).await?;
        let tags: Vec<Value> =
            snapshot.state.keys[&id].tags.iter().map(|(k, v)| json!({ "TagKey": k, "TagValue": v })).collect();
        Ok(Some(json!({ "Tags": tags, "Truncated": false })))
    }
}

/// Adds `Truncated` and, when truncated, `NextMarker` to a list answer.
fn page(mut answer: Value, truncated: bool, last: Option<String>) -> Value {
    if let Value::Object(fields) = &mut answer {
        fields.insert("Truncated".into(), json!(truncated));
        if let (true, Some(marker)) = (truncated, last) {
            fields.insert("NextMarker".into(), json!(marker));
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_carry_the_aws_name_and_no_message_for_bad_ciphertexts() {
        let body: Value = serde_json::from_slice(&error_body(&KmsError::InvalidCiphertext)).expect("json");
        assert_eq!(body, json!({ "__type": "InvalidCiphertextException" }));
        let body: Value =
            serde_json::from_slice(&error_body(&KmsError::Disabled("arn:x is disabled.".into()))).expect("json");
        assert_eq!(body, json!({ "__type": "DisabledException", "message": "arn:x is disabled." }));
        let body: Value =
            serde_json::from_slice(&error_body(&KmsError::Internal("drive 3 failed".into()))).expect("json");
        assert!(!body.to_string().contains("drive 3"), "internal details stay in the log");
    }

    #[test]
    fn tags_with_the_aws_prefix_are_reserved() {
        let tag = |k: &str| Tag { tag_key: Some(k.into()), tag_value: Some("v".into()) };
        assert!(validate_tags(&[tag("team")]).is_ok());
        let error = validate_tags(&[tag("aws:owner")]).expect_err("reserved");
        assert_eq!(
            (error.aws_name(), error.to_string().as_str()),
            ("TagException", "Tags beginning with aws: are reserved")
        );
        assert_eq!(validate_tags(&[tag("")]).expect_err("empty").aws_name(), "ValidationException");
    }
}
