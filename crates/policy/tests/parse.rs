//! Parsing: every refusal says what was wrong, and every form AWS documents is accepted.
#![allow(clippy::unwrap_used)]

use bulwark_policy::{BUCKET_POLICY_BYTES_MAX, IDENTITY_POLICY_CHARS_MAX, Policy, PolicyError};

const ACCOUNT: &str = "123456789012";
const BUCKET: &str = "photos";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Identity,
    Bucket,
}

fn parse(kind: Kind, json: &str) -> Result<Policy, PolicyError> {
    match kind {
        Kind::Identity => Policy::parse_identity(json),
        Kind::Bucket => Policy::parse_bucket(json, BUCKET, ACCOUNT),
    }
}

/// A policy with one statement whose fields are `statement` (a JSON object body without braces).
fn one_statement(statement: &str) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": [{{{statement}}}]}}"#)
}

/// Asserts that `json` is refused with exactly `message`.
fn check_refused(kind: Kind, json: &str, message: &str) {
    match parse(kind, json) {
        Ok(_) => panic!("{kind:?} policy was accepted, expected {message:?}:\n{json}"),
        Err(error) => assert_eq!(error.to_string(), message, "{kind:?} policy:\n{json}"),
    }
}

fn check_accepted(kind: Kind, json: &str) -> Policy {
    match parse(kind, json) {
        Ok(policy) => policy,
        Err(error) => panic!("{kind:?} policy refused with {error:?}:\n{json}"),
    }
}

const ALLOW_GET: &str = r#""Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*""#;
const ANYONE: &str = r#""Principal": "*""#;

#[test]
fn refusals_name_what_was_wrong() {
    use Kind::{Bucket, Identity};
    let cases: &[(Kind, String, &str)] = &[
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": "s3:Frobnicate", "Resource": "*""#),
            "Policy has invalid action: s3:Frobnicate",
        ),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": ["s3:GetObject", "ec2:RunInstances"], "Resource": "*""#),
            "Policy has invalid action: ec2:RunInstances",
        ),
        (
            Bucket,
            one_statement(
                r#""Principal": "*", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "arn:aws:s3:::photos""#,
            ),
            "Policy has invalid action: kms:Decrypt",
        ),
        (
            Identity,
            one_statement(&format!(r#"{ALLOW_GET}, "Condition": {{"StringEqualz": {{"s3:prefix": "a"}}}}"#)),
            "Unknown condition operator: StringEqualz",
        ),
        (
            Identity,
            one_statement(&format!(r#"{ALLOW_GET}, "Condition": {{"NullIfExists": {{"s3:prefix": "true"}}}}"#)),
            "Unknown condition operator: NullIfExists",
        ),
        (Bucket, one_statement(ALLOW_GET), "Missing required field Principal"),
        (
            Bucket,
            one_statement(&format!(r#"{ALLOW_GET}, "Principal": "*", "NotPrincipal": {{"AWS": "bob"}}"#)),
            "Statement cannot have both Principal and NotPrincipal",
        ),
        (
            Identity,
            one_statement(&format!("{ALLOW_GET}, {ANYONE}")),
            "Statement must not have Principal in an identity policy",
        ),
        (
            Identity,
            one_statement(&format!(r#"{ALLOW_GET}, "NotPrincipal": {{"AWS": "bob"}}"#)),
            "Statement must not have NotPrincipal in an identity policy",
        ),
        (
            Identity,
            r#"{"Version": "2011-01-01", "Statement": []}"#.to_owned(),
            "Unsupported policy version: 2011-01-01",
        ),
        (Identity, r#"{"Version": 2012, "Statement": []}"#.to_owned(), "Unsupported policy version: 2012"),
        (Identity, r#"{"Version": "2012-10-17"}"#.to_owned(), "Missing required field Statement"),
        (
            Identity,
            r#"{"Version": "2012-10-17", "Statement": []}"#.to_owned(),
            "Invalid value for field Statement: expected an object or a non-empty array of objects",
        ),
        (Identity, one_statement(r#""Action": "s3:GetObject", "Resource": "*""#), "Missing required field Effect"),
        (Identity, one_statement(r#""Effect": "Allow", "Resource": "*""#), "Missing required field Action"),
        (Identity, one_statement(r#""Effect": "Allow", "Action": "s3:*""#), "Missing required field Resource"),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": "s3:*", "NotAction": "s3:GetObject", "Resource": "*""#),
            "Statement cannot have both Action and NotAction",
        ),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": "s3:*", "Resource": "*", "NotResource": "*""#),
            "Statement cannot have both Resource and NotResource",
        ),
        (Identity, one_statement(r#""Effect": "allow", "Action": "s3:*", "Resource": "*""#), "Invalid effect: allow"),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": [], "Resource": "*""#),
            "Invalid value for field Action: expected a string or a non-empty array of strings",
        ),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": "s3:*", "NotResource": 7"#),
            "Invalid value for field NotResource: expected a string or a non-empty array of strings",
        ),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": "s3:*", "Resource": "*", "Sid": 1"#),
            "Invalid value for field Sid: expected a string",
        ),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": "s3:*", "Resource": "*", "Actions": "s3:*""#),
            "Unknown field in statement: Actions",
        ),
        (
            Identity,
            r#"{"Version": "2012-10-17", "Statement": [], "Comment": "x"}"#.to_owned(),
            "Unknown field in policy: Comment",
        ),
        (
            Identity,
            r#"{"Statement": [{"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                              {"Sid": "A", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}"#
                .to_owned(),
            "Duplicate statement id: A",
        ),
        (Identity, "[]".to_owned(), "Invalid JSON: the policy must be a JSON object"),
        (
            Identity,
            one_statement(&format!(r#"{ALLOW_GET}, "Condition": {{"StringEquals": {{"SourceIp": "a"}}}}"#)),
            "Invalid condition key: SourceIp",
        ),
        (
            Identity,
            one_statement(&format!(r#"{ALLOW_GET}, "Condition": {{"StringEquals": {{"ec2:Region": "a"}}}}"#)),
            "Invalid condition key: ec2:Region",
        ),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username""#),
            "Invalid policy variable in: arn:aws:s3:::home/${aws:username",
        ),
        (
            Identity,
            one_statement(r#""Effect": "Allow", "Action": "s3:*", "Resource": "photos/*""#),
            "Policy has invalid resource",
        ),
    ];
    for (kind, json, message) in cases {
        check_refused(*kind, json, message);
    }
}

#[test]
fn invalid_json_reports_the_parser_error() {
    let error = Policy::parse_identity(r#"{"Statement": "#).unwrap_err();
    assert!(matches!(error, PolicyError::InvalidJson(_)), "{error:?}");
    assert!(error.to_string().starts_with("Invalid JSON: EOF while parsing"), "{error}");
}

#[test]
fn condition_values_the_operator_cannot_use_are_named() {
    let cases = [
        (r#""NumericLessThan": {"s3:max-keys": "ten"}"#, "Invalid value for condition operator NumericLessThan: ten"),
        (
            r#""DateGreaterThan": {"aws:CurrentTime": ["2026-01-01", "yesterday"]}"#,
            "Invalid value for condition operator DateGreaterThan: yesterday",
        ),
        (
            r#""IpAddress": {"aws:SourceIp": "10.0.0.0/33"}"#,
            "Invalid value for condition operator IpAddress: 10.0.0.0/33",
        ),
        (
            r#""NotIpAddressIfExists": {"aws:SourceIp": "host"}"#,
            "Invalid value for condition operator NotIpAddressIfExists: host",
        ),
        (r#""BinaryEquals": {"s3:blob": "!!!"}"#, "Invalid value for condition operator BinaryEquals: !!!"),
        (r#""Bool": {"aws:SecureTransport": "yes"}"#, "Invalid value for condition operator Bool: yes"),
        (r#""Null": {"s3:prefix": "maybe"}"#, "Invalid value for condition operator Null: maybe"),
        (r#""ArnLike": {"aws:SourceArn": "not-an-arn"}"#, "Invalid value for condition operator ArnLike: not-an-arn"),
        (r#""StringEquals": {"s3:prefix": null}"#, "Invalid value for condition operator StringEquals: null"),
        (r#""StringEquals": {"s3:prefix": []}"#, "Invalid value for condition operator StringEquals: []"),
        (
            r#""StringEquals": {"s3:prefix": [{"a": 1}]}"#,
            r#"Invalid value for condition operator StringEquals: [{"a":1}]"#,
        ),
    ];
    for (condition, message) in cases {
        let json = one_statement(&format!(r#"{ALLOW_GET}, "Condition": {{{condition}}}"#));
        check_refused(Kind::Identity, &json, message);
    }
}

#[test]
fn principals_outside_this_account_or_not_users_are_refused() {
    let principals = [
        r#"{"Service": "cloudtrail.amazonaws.com"}"#,
        r#"{"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}"#,
        r#"{"AWS": "*", "Service": "s3.amazonaws.com"}"#,
        r#"{"AWS": "111111111111"}"#,
        r#"{"AWS": "arn:aws:iam::111111111111:root"}"#,
        r#"{"AWS": "arn:aws:iam::111111111111:user/alice"}"#,
        r#"{"AWS": "arn:aws:iam::123456789012:role/admin"}"#,
        r#"{"AWS": "arn:aws:iam::123456789012:user/*"}"#,
        r#"{"AWS": "arn:aws:iam::123456789012:user/path/alice"}"#,
        r#"{"AWS": "arn:aws:sts::123456789012:assumed-role/r/s"}"#,
        r#"{"AWS": []}"#,
        r#"{"AWS": ["alice", 7]}"#,
        r#"{"AWS": "not a user"}"#,
        r#"{}"#,
        r#""alice""#,
        r#"["*"]"#,
    ];
    for principal in principals {
        let json = one_statement(&format!(r#"{ALLOW_GET}, "Principal": {principal}"#));
        check_refused(Kind::Bucket, &json, "Invalid principal in policy");
    }
}

#[test]
fn bucket_policy_resources_must_stay_inside_the_bucket() {
    let refused = [
        "*",
        "arn:aws:s3:::other",
        "arn:aws:s3:::other/*",
        "arn:aws:s3:::photo",
        "arn:aws:s3:::photosx/*",
        "arn:aws:s3:::*x/*",
        "arn:aws:s3:::${aws:username}/*",
        "arn:aws:s3::123456789012:photos/*",
        "arn:aws:kms:::photos",
        "photos/*",
    ];
    for resource in refused {
        let json = one_statement(&format!(
            r#""Principal": "*", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "{resource}""#
        ));
        check_refused(Kind::Bucket, &json, "Policy has invalid resource");
    }
    let accepted = [
        "arn:aws:s3:::photos",
        "arn:aws:s3:::photos/*",
        "arn:aws:s3:::photos/${aws:username}/*",
        "arn:aws:s3:::photo?/a",
        "arn:aws:s3:::pho*",
        "arn:aws:s3:::*",
    ];
    for resource in accepted {
        let json = one_statement(&format!(
            r#""Principal": "*", "Effect": "Allow", "Action": "s3:GetObject", "NotResource": "{resource}""#
        ));
        check_accepted(Kind::Bucket, &json);
    }
}

#[test]
fn size_limits_are_enforced_per_kind() {
    let statement = format!(r#"{{{ANYONE}, {ALLOW_GET}}}"#);
    let mut statements = vec![statement.clone()];
    while statements.join(",").len() < BUCKET_POLICY_BYTES_MAX {
        statements
            .push(statement.replace("\"Principal\"", &format!("\"Sid\": \"s{}\", \"Principal\"", statements.len())));
    }
    let big = format!(r#"{{"Statement": [{}]}}"#, statements.join(","));
    check_refused(Kind::Bucket, &big, "Policy is larger than 20480 bytes");

    // Identity policies count characters other than whitespace, like AWS.
    let padding = " ".repeat(IDENTITY_POLICY_CHARS_MAX);
    let padded = format!(r#"{{"Statement": {{{padding}"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}}}"#);
    check_accepted(Kind::Identity, &padded);
    let long_sid = "S".repeat(IDENTITY_POLICY_CHARS_MAX);
    let long =
        format!(r#"{{"Statement": {{"Sid": "{long_sid}", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}}}}"#);
    check_refused(Kind::Identity, &long, "Policy is larger than 6144 non-whitespace characters");
    check_refused(Kind::Identity, &" ".repeat(65 * 1024), "Policy is larger than 65536 bytes");
}

#[test]
fn documented_forms_are_accepted() {
    use Kind::{Bucket, Identity};
    let cases: &[(Kind, &str)] = &[
        // Statement as a single object; no Version (means 2008-10-17); an Id.
        (Identity, r#"{"Id": "x", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#),
        (
            Identity,
            r#"{"Version": "2008-10-17", "Statement": {"Effect": "Deny", "NotAction": ["s3:Get*", "s3:List*"], "NotResource": "*"}}"#,
        ),
        (
            Identity,
            r#"{"Version": "2012-10-17", "Statement": [{"Sid": "kms", "Effect": "Allow", "Action": ["kms:Decrypt", "iam:GetUser", "sts:GetCallerIdentity"], "Resource": "arn:aws:kms:us-east-1:123456789012:key/*"}]}"#,
        ),
        (
            Identity,
            r#"{"Statement": {"Effect": "Allow", "Action": "S3:getobject", "Resource": "arn:aws:s3:::*/${aws:username}"}}"#,
        ),
        (
            Bucket,
            r#"{"Statement": {"Principal": {"AWS": "*"}, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"}}"#,
        ),
        (
            Bucket,
            r#"{"Statement": {"Principal": {"AWS": ["123456789012", "arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:user/alice", "bob", "*"]}, "Effect": "Allow", "Action": "s3:*", "Resource": ["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"]}}"#,
        ),
        (
            Bucket,
            r#"{"Statement": {"NotPrincipal": {"AWS": "arn:aws:iam::123456789012:user/alice"}, "Effect": "Deny", "NotAction": "s3:Get*", "Resource": "arn:aws:s3:::photos/*"}}"#,
        ),
    ];
    for (kind, json) in cases {
        let policy = check_accepted(*kind, json);
        assert_eq!(policy.source(), *json);
    }
}

#[test]
fn every_condition_operator_and_value_type_is_accepted() {
    let conditions = r#"{
        "StringEquals": {"s3:prefix": ["a", 1, true]},
        "StringNotEquals": {"s3:prefix": "a"},
        "StringEqualsIgnoreCase": {"s3:prefix": "a"},
        "StringNotEqualsIgnoreCase": {"s3:prefix": "a"},
        "StringLike": {"s3:prefix": "home/${aws:username, 'guest'}/${*}*"},
        "StringNotLike": {"s3:prefix": "a?"},
        "NumericEquals": {"s3:max-keys": 10},
        "NumericNotEquals": {"s3:max-keys": "10"},
        "NumericLessThan": {"s3:max-keys": 1.5},
        "NumericLessThanEquals": {"s3:max-keys": "-3"},
        "NumericGreaterThan": {"s3:max-keys": "1e3"},
        "NumericGreaterThanEquals": {"s3:max-keys": 0},
        "DateEquals": {"aws:CurrentTime": "2026-01-01"},
        "DateNotEquals": {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
        "DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00.5+02:00"},
        "DateLessThanEquals": {"aws:EpochTime": 1767225600},
        "DateGreaterThan": {"aws:CurrentTime": "2026-01-01T00:00:00"},
        "DateGreaterThanEquals": {"aws:CurrentTime": "1767225600"},
        "Bool": {"aws:SecureTransport": true},
        "BinaryEquals": {"s3:blob": "aGVsbG8="},
        "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]},
        "NotIpAddress": {"aws:SourceIp": "::1"},
        "ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic"},
        "ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:*"},
        "ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic"},
        "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/${aws:username}"},
        "Null": {"s3:prefix": ["true", false]},
        "StringEqualsIfExists": {"s3:prefix": "a"},
        "NumericLessThanIfExists": {"s3:max-keys": "5"},
        "ForAnyValue:StringLike": {"aws:TagKeys": "team*"},
        "ForAllValues:StringEqualsIgnoreCaseIfExists": {"aws:TagKeys": ["a", "b"]},
        "ForAnyValue:IpAddress": {"aws:SourceIp": "10.0.0.0/8"}
    }"#;
    let json = one_statement(&format!(r#"{ALLOW_GET}, "Condition": {conditions}"#));
    check_accepted(Kind::Identity, &json);
}

#[test]
fn public_means_granted_to_everyone_without_a_pin() {
    let cases: &[(&str, bool)] = &[
        (r#""Principal": "*", "Effect": "Allow""#, true),
        (r#""Principal": {"AWS": "*"}, "Effect": "Allow""#, true),
        (r#""Principal": {"AWS": ["alice", "*"]}, "Effect": "Allow""#, true),
        (r#""NotPrincipal": {"AWS": "alice"}, "Effect": "Allow""#, true),
        (r#""NotPrincipal": {"AWS": "*"}, "Effect": "Allow""#, false),
        (r#""Principal": "*", "Effect": "Deny""#, false),
        (r#""Principal": {"AWS": "alice"}, "Effect": "Allow""#, false),
        (r#""Principal": {"AWS": "123456789012"}, "Effect": "Allow""#, false),
        (r#""Principal": "*", "Effect": "Allow", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, false),
        (r#""Principal": "*", "Effect": "Allow", "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#, true),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "0.0.0.0/1"]}}"#,
            true,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#,
            false,
        ),
        (r#""Principal": "*", "Effect": "Allow", "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, true),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            true,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}"#,
            false,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"StringEquals": {"AWS:SOURCEVPC": "vpc-111bbb22"}}"#,
            false,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}"#,
            false,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}"#,
            false,
        ),
        (r#""Principal": "*", "Effect": "Allow", "Condition": {"StringEquals": {"aws:username": "alice"}}"#, false),
        (r#""Principal": "*", "Effect": "Allow", "Condition": {"StringLike": {"aws:userid": "AIDA*"}}"#, true),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"StringEquals": {"aws:userid": "${aws:username}"}}"#,
            true,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:t"}}"#,
            false,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/*"}}"#,
            true,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}"#,
            false,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"StringNotEquals": {"aws:SourceAccount": "123456789012"}}"#,
            true,
        ),
        (
            r#""Principal": "*", "Effect": "Allow", "Condition": {"ForAllValues:StringEquals": {"aws:SourceAccount": "123456789012"}}"#,
            true,
        ),
        (r#""Principal": "*", "Effect": "Allow", "Condition": {"StringEquals": {"s3:prefix": "public/"}}"#, true),
        (r#""Principal": "*", "Effect": "Allow", "Condition": {"Bool": {"aws:SecureTransport": "true"}}"#, true),
    ];
    for (statement, expected) in cases {
        let json =
            one_statement(&format!(r#"{statement}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*""#));
        let policy = check_accepted(Kind::Bucket, &json);
        assert_eq!(policy.is_public(), *expected, "{statement}");
    }
    let identity =
        Policy::parse_identity(&one_statement(r#""Effect": "Allow", "Action": "*", "Resource": "*""#)).unwrap();
    assert!(!identity.is_public());
}
