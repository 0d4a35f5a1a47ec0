//! Principal / NotPrincipal: who a bucket-policy statement is about.
//!
//! This server has one account, so every principal a policy can name lives in it: the account
//! itself (its root), one of its users, or everyone. Anything else — another account, a service,
//! a canonical user, a role — cannot ever be the requester here, and is refused at parse time
//! rather than silently never matching.

use serde_json::Value;

use crate::Principal;
use crate::error::PolicyError;

/// One entry of a Principal element, inside the policy's own account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalSpec {
    /// `"*"` or `{"AWS": "*"}`: every requester, anonymous included.
    Everyone,
    /// `"123456789012"` or `"arn:aws:iam::123456789012:root"`: the account.
    Account { account: String },
    /// `"arn:aws:iam::123456789012:user/alice"` or `"alice"`.
    User { account: String, name: String },
}

impl PrincipalSpec {
    /// Whether `principal` is covered by this entry.
    ///
    /// An account entry in an Allow names the account's root: for the same account AWS does not
    /// let a resource policy that names the account grant anything to its users (their identity
    /// policies decide). In a Deny it covers everyone in the account, root and users alike, so that
    /// "deny account X" cannot be dodged by signing as a user of X.
    pub(crate) fn covers(&self, principal: &Principal, in_deny: bool) -> bool {
        match (self, principal) {
            (PrincipalSpec::Everyone, _) => true,
            (PrincipalSpec::Account { account }, Principal::Root { account: theirs }) => account == theirs,
            (PrincipalSpec::Account { account }, Principal::User { account: theirs, .. }) => {
                in_deny && account == theirs
            }
            (PrincipalSpec::User { account, name }, Principal::User { account: theirs, name: their_name }) => {
                account == theirs && name == their_name
            }
            _ => false,
        }
    }
}

/// Parses a Principal/NotPrincipal value: `"*"` or `{"AWS": entry | [entries]}`.
pub(crate) fn parse_principal(value: &Value, account: &str) -> Result<Vec<PrincipalSpec>, PolicyError> {
    let invalid = || PolicyError::InvalidPrincipal(value.to_string());
    let entries = match value {
        Value::String(star) if star == "*" => return Ok(vec![PrincipalSpec::Everyone]),
        Value::Object(map) if map.len() == 1 => map.get("AWS").ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    let specs = match entries {
        Value::String(entry) => vec![parse_entry(entry, account).ok_or_else(invalid)?],
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|item| item.as_str().and_then(|entry| parse_entry(entry, account)).ok_or_else(invalid))
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid()),
    };
    Ok(specs)
}

/// Length of an AWS account id.
const ACCOUNT_ID_DIGITS: usize = 12;

/// Longest IAM user name.
const USER_NAME_CHARS_MAX: usize = 64;

fn parse_entry(entry: &str, account: &str) -> Option<PrincipalSpec> {
    if entry == "*" {
        return Some(PrincipalSpec::Everyone);
    }
    if is_account_id(entry) {
        return (entry == account).then(|| PrincipalSpec::Account { account: account.to_owned() });
    }
    if let Some(rest) = entry.strip_prefix("arn:") {
        let (theirs, resource) = rest.strip_prefix("aws:iam::")?.split_once(':')?;
        if theirs != account {
            return None;
        }
        if resource == "root" {
            return Some(PrincipalSpec::Account { account: account.to_owned() });
        }
        let name = resource.strip_prefix("user/")?;
        return is_user_name(name).then(|| PrincipalSpec::User { account: account.to_owned(), name: name.to_owned() });
    }
    is_user_name(entry).then(|| PrincipalSpec::User { account: account.to_owned(), name: entry.to_owned() })
}

fn is_account_id(text: &str) -> bool {
    text.len() == ACCOUNT_ID_DIGITS && text.bytes().all(|b| b.is_ascii_digit())
}

/// IAM user names: 1–64 of letters, digits and `+=,.@_-` (no `/`, so no paths).
fn is_user_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= USER_NAME_CHARS_MAX
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}
