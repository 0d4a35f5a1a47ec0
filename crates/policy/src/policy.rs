//! Parsing a policy document into a validated [`Policy`], and the per-statement match used by
//! evaluation.
//!
//! Parsing is strict: unknown fields, unknown actions, unknown operators and malformed values are
//! errors, because a policy that silently means less (or more) than its author wrote is worse than
//! one refused with a message. The size check runs before the JSON parser sees the text, and
//! `serde_json` bounds nesting depth, so hostile input costs at most linear work.

use serde_json::{Map, Value};

use crate::action::{BUCKET_SERVICES, IDENTITY_SERVICES, KEY_SERVICES, parse_action};
use crate::condition::{Condition, parse_conditions};
use crate::error::PolicyError;
use crate::pattern::{ARN_FIELDS, Template, Tok, glob_match};
use crate::principal::{PrincipalSpec, parse_principal};
use crate::{Context, Principal, Request};

/// Largest bucket policy, in bytes (AWS: 20 KB).
pub const BUCKET_POLICY_BYTES_MAX: usize = 20 * 1024;
/// Largest resource policy of a KMS key, in bytes (AWS: 32 KB).
pub const KEY_POLICY_BYTES_MAX: usize = 32 * 1024;
/// Largest identity policy, in characters other than whitespace (AWS counts managed policies so).
pub const IDENTITY_POLICY_CHARS_MAX: usize = 6144;
/// Largest identity policy in raw bytes, whitespace included: a bound on parsing work so that a
/// document padded with megabytes of blanks is refused before it is parsed.
pub const IDENTITY_POLICY_BYTES_MAX: usize = 64 * 1024;

const _: () = assert!(IDENTITY_POLICY_CHARS_MAX <= IDENTITY_POLICY_BYTES_MAX);

const VERSION_CURRENT: &str = "2012-10-17";
const VERSION_OLD: &str = "2008-10-17";

const POLICY_FIELDS: &[&str] = &["Version", "Id", "Statement"];
const STATEMENT_FIELDS: &[&str] =
    &["Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"];

/// A parsed and validated policy, with the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    source: String,
    statements: Vec<Statement>,
}

/// What a policy is attached to, which decides what it may say.
enum Kind<'a> {
    Identity,
    Bucket {
        bucket: &'a str,
        account: &'a str,
    },
    /// A resource's own policy (a KMS key policy): principals like a bucket policy, `kms:`
    /// actions, and resources that are `*` or any ARN (key policies say `"Resource": "*"`,
    /// meaning the key the policy is attached to).
    Resource {
        account: &'a str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatementEffect {
    Allow,
    Deny,
}

/// A list from a field or its `Not` twin (Action/NotAction, …): the statement covers what matches
/// one of `items`, or, when `negated`, what matches none of them.
#[derive(Debug, Clone, PartialEq)]
struct Clause<T> {
    negated: bool,
    items: Vec<T>,
}

impl<T> Clause<T> {
    fn covers(&self, mut matches: impl FnMut(&T) -> bool) -> bool {
        self.items.iter().any(&mut matches) != self.negated
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Statement {
    /// The Sid, or `#<index>` when there is none: how a decision names this statement.
    pub(crate) label: String,
    pub(crate) effect: StatementEffect,
    /// Always present in bucket policies, never in identity policies.
    principal: Option<Clause<PrincipalSpec>>,
    /// Lowercased patterns.
    action: Clause<Vec<Tok>>,
    resource: Clause<Template>,
    conditions: Vec<Condition>,
}

impl Policy {
    /// Parses an identity policy (attached to a user or group): Principal/NotPrincipal are
    /// forbidden, since the principal is whoever the policy is attached to. Size is limited to
    /// [`IDENTITY_POLICY_CHARS_MAX`] non-whitespace characters, like AWS managed policies.
    pub fn parse_identity(json: &str) -> Result<Policy, PolicyError> {
        if json.len() > IDENTITY_POLICY_BYTES_MAX {
            return Err(PolicyError::TooLarge { limit: IDENTITY_POLICY_BYTES_MAX, unit: "bytes" });
        }
        if json.chars().filter(|c| !c.is_whitespace()).count() > IDENTITY_POLICY_CHARS_MAX {
            return Err(PolicyError::TooLarge { limit: IDENTITY_POLICY_CHARS_MAX, unit: "non-whitespace characters" });
        }
        parse(json, &Kind::Identity)
    }

    /// Parses the bucket policy of `bucket`, owned by `account` (12 digits). Every statement must
    /// name a Principal or NotPrincipal of that account (or `*`), and every Resource/NotResource
    /// must be an S3 ARN inside the bucket. Size is limited to [`BUCKET_POLICY_BYTES_MAX`] bytes.
    pub fn parse_bucket(json: &str, bucket: &str, account: &str) -> Result<Policy, PolicyError> {
        if json.len() > BUCKET_POLICY_BYTES_MAX {
            return Err(PolicyError::TooLarge { limit: BUCKET_POLICY_BYTES_MAX, unit: "bytes" });
        }
        parse(json, &Kind::Bucket { bucket, account })
    }

    /// Parses the resource policy of a KMS key owned by `account` (12 digits). Every statement
    /// must name a Principal or NotPrincipal of that account (or `*`), actions must be `kms:`
    /// actions (or `*`), and Resource/NotResource is `*` or any ARN. Size is limited to
    /// [`KEY_POLICY_BYTES_MAX`] bytes.
    pub fn parse_resource(json: &str, account: &str) -> Result<Policy, PolicyError> {
        if json.len() > KEY_POLICY_BYTES_MAX {
            return Err(PolicyError::TooLarge { limit: KEY_POLICY_BYTES_MAX, unit: "bytes" });
        }
        parse(json, &Kind::Resource { account })
    }

    /// Whether some statement tests a condition key that starts with
    /// `prefix` (compared case-insensitively), e.g. `s3:ExistingObjectTag/`:
    /// lets a caller skip looking up a value no statement asks for.
    pub fn tests_condition_key_prefix(&self, prefix: &str) -> bool {
        self.statements.iter().flat_map(|s| &s.conditions).any(|c| {
            c.key().len() >= prefix.len() && c.key().as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        })
    }

    /// The JSON text this policy was parsed from, unchanged (what GetBucketPolicy returns).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the policy grants something to everyone, by the AWS rule: some Allow statement's
    /// principal covers anonymous requesters (`"*"`, `{"AWS": "*"}`, or a NotPrincipal not listing
    /// `*`), and none of its conditions pins a fixed value of a key that identifies the requester or
    /// their network (aws:SourceIp with a range of /8 or narrower (IPv6: /32), aws:SourceVpc,
    /// aws:SourceVpce, aws:SourceArn, aws:SourceAccount, aws:PrincipalArn, aws:PrincipalAccount,
    /// aws:PrincipalOrgID, aws:userid, aws:username). A pin is a positive, non-`IfExists`,
    /// non-`ForAllValues` String/Arn/IpAddress condition whose values have no variables (and, for
    /// the `Like`/Arn operators, no wildcards). Identity policies are never public.
    pub fn is_public(&self) -> bool {
        self.statements.iter().any(|statement| {
            statement.effect == StatementEffect::Allow
                && statement
                    .principal
                    .as_ref()
                    .is_some_and(|clause| clause.covers(|spec| spec.covers(&Principal::Anonymous, false)))
                && !statement.conditions.iter().any(Condition::pins_fixed_value)
        })
    }

    pub(crate) fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

impl Statement {
    /// Whether this statement is about `request`. `action` is the request's action lowercased;
    /// `in_bucket_policy` says whether the statement is read as part of a bucket policy, where a
    /// statement without a principal (only possible if an identity policy was passed there by
    /// mistake) is about no one.
    pub(crate) fn applies(&self, request: &Request<'_>, action: &str, in_bucket_policy: bool) -> bool {
        let in_deny = self.effect == StatementEffect::Deny;
        let principal_ok = match &self.principal {
            Some(clause) => clause.covers(|spec| spec.covers(request.principal, in_deny)),
            None => !in_bucket_policy,
        };
        principal_ok
            && self.action.covers(|pattern| glob_match(pattern, action))
            && self.resource.covers(|template| {
                template.to_pattern(request.context).is_some_and(|pattern| glob_match(&pattern, request.resource))
            })
            && self.conditions.iter().all(|condition| condition.holds(request.context))
    }
}

fn parse(json: &str, kind: &Kind<'_>) -> Result<Policy, PolicyError> {
    let root: Value = serde_json::from_str(json).map_err(|error| PolicyError::InvalidJson(error.to_string()))?;
    let Value::Object(fields) = &root else {
        return Err(PolicyError::InvalidJson("the policy must be a JSON object".to_owned()));
    };
    check_fields(fields, POLICY_FIELDS, "policy")?;
    let variables = match fields.get("Version") {
        None => false,
        Some(Value::String(version)) if version == VERSION_CURRENT => true,
        Some(Value::String(version)) if version == VERSION_OLD => false,
        Some(Value::String(version)) => return Err(PolicyError::UnsupportedVersion(version.clone())),
        Some(other) => return Err(PolicyError::UnsupportedVersion(other.to_string())),
    };
    if fields.get("Id").is_some_and(|id| !id.is_string()) {
        return Err(PolicyError::InvalidFieldType { field: "Id", expected: "a string" });
    }
    let statement_objects: Vec<&Map<String, Value>> = match fields.get("Statement") {
        None => return Err(PolicyError::MissingField("Statement")),
        Some(Value::Object(statement)) => vec![statement],
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().map(|item| item.as_object().ok_or(STATEMENT_SHAPE)).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(STATEMENT_SHAPE),
    };
    let mut statements: Vec<Statement> = Vec::with_capacity(statement_objects.len());
    for (index, object) in statement_objects.into_iter().enumerate() {
        let statement = parse_statement(object, index, kind, variables)?;
        if statements.iter().any(|earlier| earlier.label == statement.label) {
            return Err(PolicyError::DuplicateSid(statement.label));
        }
        statements.push(statement);
    }
    Ok(Policy { source: json.to_owned(), statements })
}

const STATEMENT_SHAPE: PolicyError =
    PolicyError::InvalidFieldType { field: "Statement", expected: "an object or a non-empty array of objects" };

fn check_fields(fields: &Map<String, Value>, known: &[&str], place: &'static str) -> Result<(), PolicyError> {
    match fields.keys().find(|field| !known.contains(&field.as_str())) {
        Some(field) => Err(PolicyError::UnknownField { place, field: field.clone() }),
        None => Ok(()),
    }
}

fn parse_statement(
    fields: &Map<String, Value>,
    index: usize,
    kind: &Kind<'_>,
    variables: bool,
) -> Result<Statement, PolicyError> {
    check_fields(fields, STATEMENT_FIELDS, "statement")?;
    let label = match fields.get("Sid") {
        // An empty Sid names nothing; AWS accepts it, so label it like a missing one.
        None => format!("#{index}"),
        Some(Value::String(sid)) if sid.is_empty() => format!("#{index}"),
        Some(Value::String(sid)) => sid.clone(),
        Some(_) => return Err(PolicyError::InvalidFieldType { field: "Sid", expected: "a string" }),
    };
    let effect = match fields.get("Effect") {
        None => return Err(PolicyError::MissingField("Effect")),
        Some(Value::String(effect)) if effect == "Allow" => StatementEffect::Allow,
        Some(Value::String(effect)) if effect == "Deny" => StatementEffect::Deny,
        Some(Value::String(effect)) => return Err(PolicyError::InvalidEffect(effect.clone())),
        Some(other) => return Err(PolicyError::InvalidEffect(other.to_string())),
    };
    let principal = match kind {
        Kind::Identity => {
            for field in ["Principal", "NotPrincipal"] {
                if fields.contains_key(field) {
                    return Err(PolicyError::PrincipalInIdentityPolicy(field));
                }
            }
            None
        }
        Kind::Bucket { account, .. } | Kind::Resource { account } => {
            let (negated, value) = field_or_negation(fields, "Principal", "NotPrincipal")?;
            Some(Clause { negated, items: parse_principal(value, account)? })
        }
    };
    let services = match kind {
        Kind::Identity => IDENTITY_SERVICES,
        Kind::Bucket { .. } => BUCKET_SERVICES,
        Kind::Resource { .. } => KEY_SERVICES,
    };
    let (negated, value) = field_or_negation(fields, "Action", "NotAction")?;
    let actions = string_list(value, if negated { "NotAction" } else { "Action" })?;
    let action =
        Clause { negated, items: actions.iter().map(|raw| parse_action(raw, services)).collect::<Result<_, _>>()? };
    let (negated, value) = field_or_negation(fields, "Resource", "NotResource")?;
    let resources = string_list(value, if negated { "NotResource" } else { "Resource" })?;
    let resource = Clause {
        negated,
        items: resources.iter().map(|raw| parse_resource(raw, kind, variables)).collect::<Result<_, _>>()?,
    };
    let conditions = match fields.get("Condition") {
        None => Vec::new(),
        Some(block) => parse_conditions(block, variables)?,
    };
    Ok(Statement { label, effect, principal, action, resource, conditions })
}

/// Exactly one of `field` and `negation` must be present; returns whether it was the negation.
fn field_or_negation<'v>(
    fields: &'v Map<String, Value>,
    field: &'static str,
    negation: &'static str,
) -> Result<(bool, &'v Value), PolicyError> {
    match (fields.get(field), fields.get(negation)) {
        (Some(value), None) => Ok((false, value)),
        (None, Some(value)) => Ok((true, value)),
        (Some(_), Some(_)) => Err(PolicyError::BothFieldAndNegation(field)),
        (None, None) => Err(PolicyError::MissingField(field)),
    }
}

/// A string or a non-empty array of strings.
fn string_list<'v>(value: &'v Value, field: &'static str) -> Result<Vec<&'v str>, PolicyError> {
    let wrong = || PolicyError::InvalidFieldType { field, expected: "a string or a non-empty array of strings" };
    match value {
        Value::String(single) => Ok(vec![single]),
        Value::Array(items) if !items.is_empty() => items.iter().map(|item| item.as_str().ok_or_else(wrong)).collect(),
        _ => Err(wrong()),
    }
}

const S3_ARN_PREFIX: &str = "arn:aws:s3:::";

/// Identity and key policies: `*` or any ARN (six colon-separated fields). Bucket policies: an S3 ARN
/// whose bucket part (wildcards allowed, variables not) matches this bucket.
fn parse_resource(raw: &str, kind: &Kind<'_>, variables: bool) -> Result<Template, PolicyError> {
    let invalid = || PolicyError::InvalidResource(raw.to_owned());
    match kind {
        Kind::Identity | Kind::Resource { .. } if raw == "*" => Ok(Template::any()),
        Kind::Identity | Kind::Resource { .. } => {
            if !raw.starts_with("arn:") || raw.split(':').count() < ARN_FIELDS {
                return Err(invalid());
            }
            Template::parse(raw, variables)
        }
        Kind::Bucket { bucket, .. } => {
            let path = raw.strip_prefix(S3_ARN_PREFIX).ok_or_else(invalid)?;
            let bucket_part = path.split_once('/').map_or(path, |(bucket_part, _)| bucket_part);
            let bucket_template = Template::parse(bucket_part, variables).map_err(|_| invalid())?;
            if bucket_template.has_variables() {
                return Err(invalid());
            }
            let bucket_pattern = bucket_template.to_pattern(&Context::new()).ok_or_else(invalid)?;
            if !glob_match(&bucket_pattern, bucket) {
                return Err(invalid());
            }
            Template::parse(raw, variables)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Decision, Effect, NamedPolicy, authorize};

    const ACCOUNT: &str = "123456789012";

    fn key_policy(statement: &str) -> String {
        format!(r#"{{"Version": "2012-10-17", "Statement": [{statement}]}}"#)
    }

    fn decide(policy: &Policy, principal: &Principal, action: &str) -> Decision {
        let context = Context::new();
        let request = Request {
            principal,
            action,
            resource: "arn:aws:kms:us-east-1:123456789012:key/6f1c3a4e-0000-4000-8000-000000000001",
            context: &context,
        };
        authorize(&request, &[], Some(NamedPolicy { name: "key-policy", policy }))
    }

    #[test]
    fn key_policies_take_kms_actions_principals_and_any_resource() {
        let default = key_policy(
            r#"{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"}"#,
        );
        assert!(Policy::parse_resource(&default, ACCOUNT).is_ok());
        let user = key_policy(
            r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:DescribeKey"],
                "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:team": "red"}}}"#,
        );
        let policy = Policy::parse_resource(&user, ACCOUNT).expect("user grant");
        let alice = Principal::User { account: ACCOUNT.into(), name: "alice".into() };
        // The condition needs the context key, which this request lacks.
        assert_eq!(decide(&policy, &alice, "kms:Decrypt").effect, Effect::ImplicitDeny);
        let arn = key_policy(
            r#"{"Effect": "Deny", "Principal": "*", "Action": "kms:ScheduleKeyDeletion",
                "Resource": "arn:aws:kms:us-east-1:123456789012:key/*"}"#,
        );
        let deny = Policy::parse_resource(&arn, ACCOUNT).expect("deny by ARN");
        let root = Principal::Root { account: ACCOUNT.into() };
        assert_eq!(decide(&deny, &root, "kms:ScheduleKeyDeletion").effect, Effect::ExplicitDeny);
        assert_eq!(decide(&deny, &root, "kms:Decrypt").effect, Effect::Allow);

        let refused = [
            (r#"{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}"#, "Missing required field Principal"),
            (
                r#"{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}"#,
                "Policy has invalid action: s3:GetObject",
            ),
            (
                r#"{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:*", "Resource": "*"}"#,
                "Invalid principal in policy",
            ),
            (
                r#"{"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "key/1"}"#,
                "Policy has invalid resource",
            ),
        ];
        for (statement, message) in refused {
            let error = Policy::parse_resource(&key_policy(statement), ACCOUNT).expect_err(statement);
            assert_eq!(error.to_string(), message, "{statement}");
        }
        let padded = format!("{default}{}", " ".repeat(KEY_POLICY_BYTES_MAX));
        assert_eq!(
            Policy::parse_resource(&padded, ACCOUNT),
            Err(PolicyError::TooLarge { limit: KEY_POLICY_BYTES_MAX, unit: "bytes" })
        );
    }

    #[test]
    fn condition_key_prefixes_are_found_case_insensitively() {
        let policy = Policy::parse_identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
                "Condition":{"StringEquals":{"s3:ExistingObjectTag/Class":"public"}}}]}"#,
        )
        .expect("valid");
        assert!(policy.tests_condition_key_prefix("s3:existingobjecttag/"));
        assert!(policy.tests_condition_key_prefix("S3:ExistingObjectTag/"));
        assert!(!policy.tests_condition_key_prefix("s3:RequestObjectTag/"));
        let plain = Policy::parse_identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/s3:ExistingObjectTag/x"}]}"#,
        )
        .expect("valid");
        assert!(!plain.tests_condition_key_prefix("s3:existingobjecttag/"), "only condition keys count");
    }
}
