//! Action names: validation when a policy is parsed, and the compiled (lowercased) pattern used to
//! match a request's action case-insensitively.

use crate::error::PolicyError;
use crate::pattern::Tok;

/// Service prefixes an identity policy may name. Only `s3` actions are ever requested from this
/// server today; the others are accepted so that policies written for AWS (which routinely grant
/// `kms:Decrypt` next to `s3:GetObject`) need not be edited.
pub(crate) const IDENTITY_SERVICES: &[&str] = &["s3", "kms", "iam", "sts"];

/// A KMS key policy only governs KMS requests on its key.
pub(crate) const KEY_SERVICES: &[&str] = &["kms"];

/// A bucket policy only governs S3 requests on its bucket.
pub(crate) const BUCKET_SERVICES: &[&str] = &["s3"];

/// S3 actions, lowercased and sorted so that [`is_s3_action`] can binary-search (a unit test keeps
/// the order honest).
const S3_ACTIONS: &[&str] = &[
    "abortmultipartupload",
    "bypassgovernanceretention",
    "createaccesspoint",
    "createbucket",
    "createjob",
    "createsession",
    "deleteaccesspoint",
    "deleteaccesspointpolicy",
    "deletebucket",
    "deletebucketownershipcontrols",
    "deletebucketpolicy",
    "deletebucketwebsite",
    "deleteobject",
    "deleteobjecttagging",
    "deleteobjectversion",
    "deleteobjectversiontagging",
    "getaccelerateconfiguration",
    "getaccesspoint",
    "getaccesspointpolicy",
    "getaccountpublicaccessblock",
    "getanalyticsconfiguration",
    "getbucketacl",
    "getbucketcors",
    "getbucketlocation",
    "getbucketlogging",
    "getbucketnotification",
    "getbucketobjectlockconfiguration",
    "getbucketownershipcontrols",
    "getbucketpolicy",
    "getbucketpolicystatus",
    "getbucketpublicaccessblock",
    "getbucketrequestpayment",
    "getbuckettagging",
    "getbucketversioning",
    "getbucketwebsite",
    "getencryptionconfiguration",
    "getintelligenttieringconfiguration",
    "getinventoryconfiguration",
    "getlifecycleconfiguration",
    "getmetricsconfiguration",
    "getobject",
    "getobjectacl",
    "getobjectattributes",
    "getobjectlegalhold",
    "getobjectretention",
    "getobjecttagging",
    "getobjecttorrent",
    "getobjectversion",
    "getobjectversionacl",
    "getobjectversionattributes",
    "getobjectversionforreplication",
    "getobjectversiontagging",
    "getobjectversiontorrent",
    "getreplicationconfiguration",
    "listaccesspoints",
    "listallmybuckets",
    "listbucket",
    "listbucketmultipartuploads",
    "listbucketversions",
    "listjobs",
    "listmultipartuploadparts",
    "objectowneroverridetobucketowner",
    "putaccelerateconfiguration",
    "putaccesspointpolicy",
    "putaccountpublicaccessblock",
    "putanalyticsconfiguration",
    "putbucketacl",
    "putbucketcors",
    "putbucketlogging",
    "putbucketnotification",
    "putbucketobjectlockconfiguration",
    "putbucketownershipcontrols",
    "putbucketpolicy",
    "putbucketpublicaccessblock",
    "putbucketrequestpayment",
    "putbuckettagging",
    "putbucketversioning",
    "putbucketwebsite",
    "putencryptionconfiguration",
    "putintelligenttieringconfiguration",
    "putinventoryconfiguration",
    "putlifecycleconfiguration",
    "putmetricsconfiguration",
    "putobject",
    "putobjectacl",
    "putobjectlegalhold",
    "putobjectretention",
    "putobjecttagging",
    "putobjectversionacl",
    "putobjectversiontagging",
    "putreplicationconfiguration",
    "replicatedelete",
    "replicateobject",
    "replicatetags",
    "restoreobject",
];

fn is_s3_action(lowercase_name: &str) -> bool {
    S3_ACTIONS.binary_search(&lowercase_name).is_ok()
}

/// Validates one Action/NotAction entry and compiles it to a lowercase pattern.
///
/// Accepted: `*`, or `service:name` where `service` is one of `services` (no wildcards there) and
/// `name` is letters and digits with `*`/`?`. An `s3:` name without wildcards must be a real S3
/// action, so a typo like `s3:GetObjects` is refused instead of silently granting nothing.
pub(crate) fn parse_action(raw: &str, services: &[&str]) -> Result<Vec<Tok>, PolicyError> {
    let invalid = || PolicyError::InvalidAction(raw.to_owned());
    let lower = raw.to_lowercase();
    if lower == "*" {
        return Ok(vec![Tok::Many]);
    }
    let (service, name) = lower.split_once(':').ok_or_else(invalid)?;
    if !services.contains(&service) {
        return Err(invalid());
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?') {
        return Err(invalid());
    }
    let has_wildcard = name.contains(['*', '?']);
    if service == "s3" && !has_wildcard && !is_s3_action(name) {
        return Err(invalid());
    }
    Ok(lower
        .chars()
        .map(|c| match c {
            '*' => Tok::Many,
            '?' => Tok::One,
            c => Tok::Char(c),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_action_table_is_sorted_lowercase_and_unique() {
        for pair in S3_ACTIONS.windows(2) {
            assert!(pair[0] < pair[1], "{} must sort before {}", pair[0], pair[1]);
        }
        for name in S3_ACTIONS {
            assert_eq!(*name, name.to_lowercase());
        }
    }

    #[test]
    fn actions_are_validated() {
        let accepted = ["*", "s3:*", "S3:getobject", "s3:Get*", "s3:?etObject", "kms:Decrypt", "iam:*", "sts:Foo"];
        for raw in accepted {
            assert!(parse_action(raw, IDENTITY_SERVICES).is_ok(), "{raw}");
        }
        let refused = ["s3:Frobnicate", "s3:", "s3", "ec2:RunInstances", "s*:GetObject", "s3:Get Object", ""];
        for raw in refused {
            assert_eq!(parse_action(raw, IDENTITY_SERVICES), Err(PolicyError::InvalidAction(raw.to_owned())));
        }
        assert!(parse_action("kms:Decrypt", BUCKET_SERVICES).is_err());
    }
}
