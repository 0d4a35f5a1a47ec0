//! Evaluation: hand-written policies and requests with the decision (and deciding statement) that
//! AWS would give, one table per area, each checked through one helper.
#![allow(clippy::unwrap_used)]

use bulwark_policy::{Context, Decision, Effect, NamedPolicy, Policy, Principal, Request, authorize};

const ACCOUNT: &str = "123456789012";
const BUCKET: &str = "photos";
const BUCKET_POLICY_NAME: &str = "bucket-policy:photos";

fn alice() -> Principal {
    Principal::User { account: ACCOUNT.to_owned(), name: "alice".to_owned() }
}

fn bob() -> Principal {
    Principal::User { account: ACCOUNT.to_owned(), name: "bob".to_owned() }
}

fn root() -> Principal {
    Principal::Root { account: ACCOUNT.to_owned() }
}

fn identity_name(index: usize) -> String {
    format!("user:alice/policy:{index}")
}

/// One request against a set of policies and the decision expected for it.
struct Case<'a> {
    what: &'a str,
    identity: &'a [&'a str],
    bucket: Option<&'a str>,
    principal: Principal,
    action: &'a str,
    resource: &'a str,
    context: &'a [(&'a str, &'a [&'a str])],
    effect: Effect,
    /// (policy name, statement label); policy index `i` of `identity` is named `identity_name(i)`.
    decided_by: Option<(&'a str, &'a str)>,
}

fn context_of(entries: &[(&str, &[&str])]) -> Context {
    let mut context = Context::new();
    for (key, values) in entries {
        context.insert_many(key, values.iter().map(|value| (*value).to_owned()).collect());
    }
    context
}

fn decide(case: &Case<'_>) -> Decision {
    let identity: Vec<Policy> = case
        .identity
        .iter()
        .map(|json| Policy::parse_identity(json).unwrap_or_else(|error| panic!("{}: {error}: {json}", case.what)))
        .collect();
    let names: Vec<String> = (0..identity.len()).map(identity_name).collect();
    let named: Vec<NamedPolicy<'_>> =
        identity.iter().zip(&names).map(|(policy, name)| NamedPolicy { name, policy }).collect();
    let bucket = case.bucket.map(|json| {
        Policy::parse_bucket(json, BUCKET, ACCOUNT).unwrap_or_else(|error| panic!("{}: {error}: {json}", case.what))
    });
    let context = context_of(case.context);
    let request =
        Request { principal: &case.principal, action: case.action, resource: case.resource, context: &context };
    authorize(&request, &named, bucket.as_ref().map(|policy| NamedPolicy { name: BUCKET_POLICY_NAME, policy }))
}

fn check(cases: &[Case<'_>]) {
    for case in cases {
        let decision = decide(case);
        assert_eq!(decision.effect, case.effect, "{}", case.what);
        let decided_by =
            decision.decided_by.as_ref().map(|decider| (decider.policy.as_str(), decider.statement.as_str()));
        assert_eq!(decided_by, case.decided_by, "{}", case.what);
    }
}

const READ_PHOTOS: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Sid": "ReadPhotos", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
     "Resource": ["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"]}]}"#;
const EVERYTHING: &str = r#"{"Statement": {"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*"}}"#;
const DENY_GET: &str =
    r#"{"Statement": {"Sid": "NoGet", "Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"}}"#;
const PHOTO: &str = "arn:aws:s3:::photos/cat.jpg";

fn user_case<'a>(
    what: &'a str,
    identity: &'a [&'a str],
    action: &'a str,
    resource: &'a str,
    effect: Effect,
    decided_by: Option<(&'a str, &'a str)>,
) -> Case<'a> {
    Case { what, identity, bucket: None, principal: alice(), action, resource, context: &[], effect, decided_by }
}

#[test]
fn identity_policies_allow_what_they_list() {
    let not_delete = r#"{"Statement": {"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "*"}}"#;
    let not_secret = r#"{"Statement": [{"Sid": "a", "Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::x/*"},
        {"Effect": "Allow", "Action": "s3:*", "NotResource": ["arn:aws:s3:::secret", "arn:aws:s3:::secret/*"]}]}"#;
    let shouting =
        r#"{"Statement": {"Effect": "Allow", "Action": "S3:GETOBJECT", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let list_all =
        r#"{"Statement": {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "arn:aws:s3:::*"}}"#;
    let empty_sids = r#"{"Statement": [{"Sid": "", "Effect": "Allow", "Action": "s3:PutObject", "Resource": "*"},
        {"Sid": "", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}"#;
    let p0 = identity_name(0);
    let p1 = identity_name(1);
    use Effect::{Allow, ImplicitDeny};
    check(&[
        user_case("listed action", &[READ_PHOTOS], "s3:GetObject", PHOTO, Allow, Some((&p0, "ReadPhotos"))),
        user_case(
            "bucket ARN",
            &[READ_PHOTOS],
            "s3:ListBucket",
            "arn:aws:s3:::photos",
            Allow,
            Some((&p0, "ReadPhotos")),
        ),
        user_case("unlisted action", &[READ_PHOTOS], "s3:PutObject", PHOTO, ImplicitDeny, None),
        user_case("other bucket", &[READ_PHOTOS], "s3:GetObject", "arn:aws:s3:::videos/a", ImplicitDeny, None),
        user_case(
            "resources are case-sensitive",
            &[READ_PHOTOS],
            "s3:GetObject",
            "arn:aws:s3:::Photos/a",
            ImplicitDeny,
            None,
        ),
        user_case("actions are not", &[READ_PHOTOS], "S3:getobject", PHOTO, Allow, Some((&p0, "ReadPhotos"))),
        user_case("policy action in capitals", &[shouting], "s3:GetObject", PHOTO, Allow, Some((&p0, "#0"))),
        user_case("no policies", &[], "s3:GetObject", PHOTO, ImplicitDeny, None),
        user_case("NotAction allows others", &[not_delete], "s3:GetObject", PHOTO, Allow, Some((&p0, "#0"))),
        user_case("NotAction excludes", &[not_delete], "s3:DeleteObjectVersion", PHOTO, ImplicitDeny, None),
        user_case("NotResource allows others", &[not_secret], "s3:GetObject", PHOTO, Allow, Some((&p0, "#1"))),
        user_case("NotResource excludes", &[not_secret], "s3:GetObject", "arn:aws:s3:::secret/k", ImplicitDeny, None),
        user_case("NotResource bucket", &[not_secret], "s3:ListBucket", "arn:aws:s3:::secret", ImplicitDeny, None),
        user_case(
            "second policy decides",
            &[READ_PHOTOS, EVERYTHING],
            "s3:PutObject",
            PHOTO,
            Allow,
            Some((&p1, "All")),
        ),
        user_case("list all buckets", &[list_all], "s3:ListAllMyBuckets", "arn:aws:s3:::*", Allow, Some((&p0, "#0"))),
        user_case("empty Sid is labelled by index", &[empty_sids], "s3:GetObject", PHOTO, Allow, Some((&p0, "#1"))),
        user_case("star resource", &[EVERYTHING], "s3:ListAllMyBuckets", "arn:aws:s3:::*", Allow, Some((&p0, "All"))),
    ]);
}

#[test]
fn explicit_deny_beats_every_allow() {
    let bucket_allows_alice = r#"{"Statement": {"Sid": "AliceReads", "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"},
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let bucket_denies_delete = r#"{"Statement": [
        {"Sid": "NoDelete", "Principal": "*", "Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::photos/*"}]}"#;
    let p0 = identity_name(0);
    let p1 = identity_name(1);
    check(&[
        Case {
            what: "bucket deny beats identity allow",
            identity: &[EVERYTHING],
            bucket: Some(bucket_denies_delete),
            principal: alice(),
            action: "s3:DeleteObject",
            resource: PHOTO,
            context: &[],
            effect: Effect::ExplicitDeny,
            decided_by: Some((BUCKET_POLICY_NAME, "NoDelete")),
        },
        Case {
            what: "identity deny beats bucket allow",
            identity: &[DENY_GET],
            bucket: Some(bucket_allows_alice),
            principal: alice(),
            action: "s3:GetObject",
            resource: PHOTO,
            context: &[],
            effect: Effect::ExplicitDeny,
            decided_by: Some((&p0, "NoGet")),
        },
        Case {
            what: "identity deny in a later policy beats an earlier allow",
            identity: &[EVERYTHING, DENY_GET],
            bucket: None,
            principal: alice(),
            action: "s3:GetObject",
            resource: PHOTO,
            context: &[],
            effect: Effect::ExplicitDeny,
            decided_by: Some((&p1, "NoGet")),
        },
        Case {
            what: "bucket allow alone suffices for a named user",
            identity: &[],
            bucket: Some(bucket_allows_alice),
            principal: alice(),
            action: "s3:GetObject",
            resource: PHOTO,
            context: &[],
            effect: Effect::Allow,
            decided_by: Some((BUCKET_POLICY_NAME, "AliceReads")),
        },
        Case {
            what: "bucket allow for alice is not for bob",
            identity: &[],
            bucket: Some(bucket_allows_alice),
            principal: bob(),
            action: "s3:GetObject",
            resource: PHOTO,
            context: &[],
            effect: Effect::ImplicitDeny,
            decided_by: None,
        },
        Case {
            what: "deny that does not match leaves the allow",
            identity: &[EVERYTHING],
            bucket: Some(bucket_denies_delete),
            principal: alice(),
            action: "s3:GetObject",
            resource: PHOTO,
            context: &[],
            effect: Effect::Allow,
            decided_by: Some((&p0, "All")),
        },
    ]);
}

#[test]
fn root_ignores_identity_policies_but_not_bucket_denies() {
    let deny_everyone = r#"{"Statement": {"Sid": "Lockdown", "Principal": "*", "Effect": "Deny", "Action": "s3:*",
        "Resource": ["arn:aws:s3:::photos", "arn:aws:s3:::photos/*"]}}"#;
    let deny_account = r#"{"Statement": {"Sid": "DenyAccount", "Principal": {"AWS": "123456789012"}, "Effect": "Deny",
        "Action": "s3:PutObject", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let allow_account = r#"{"Statement": {"Sid": "AllowAccount", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let base = |what, identity, bucket, principal, action, effect, decided_by| Case {
        what,
        identity,
        bucket,
        principal,
        action,
        resource: PHOTO,
        context: &[],
        effect,
        decided_by,
    };
    let p0 = identity_name(0);
    check(&[
        base("root, no policies", &[], None, root(), "s3:PutObject", Effect::Allow, None),
        base("root, identity deny ignored", &[DENY_GET], None, root(), "s3:GetObject", Effect::Allow, None),
        base(
            "root, bucket deny applies",
            &[],
            Some(deny_everyone),
            root(),
            "s3:GetObject",
            Effect::ExplicitDeny,
            Some((BUCKET_POLICY_NAME, "Lockdown")),
        ),
        base(
            "account deny covers root",
            &[],
            Some(deny_account),
            root(),
            "s3:PutObject",
            Effect::ExplicitDeny,
            Some((BUCKET_POLICY_NAME, "DenyAccount")),
        ),
        base(
            "account deny covers the account's users",
            &[EVERYTHING],
            Some(deny_account),
            alice(),
            "s3:PutObject",
            Effect::ExplicitDeny,
            Some((BUCKET_POLICY_NAME, "DenyAccount")),
        ),
        base(
            "account allow does not grant to users",
            &[],
            Some(allow_account),
            alice(),
            "s3:GetObject",
            Effect::ImplicitDeny,
            None,
        ),
        base(
            "users still need their own grant",
            &[EVERYTHING],
            Some(allow_account),
            alice(),
            "s3:GetObject",
            Effect::Allow,
            Some((&p0, "All")),
        ),
    ]);
}

#[test]
fn anonymous_needs_a_bucket_statement_for_everyone() {
    let public_read = r#"{"Statement": {"Sid": "Public", "Principal": "*", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let public_aws_star = r#"{"Statement": {"Principal": {"AWS": "*"}, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let alice_only = r#"{"Statement": {"Principal": {"AWS": "alice"}, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let all_but_bob = r#"{"Statement": {"Sid": "NotBob", "NotPrincipal": {"AWS": "bob"}, "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let base = |what, identity, bucket, principal, effect, decided_by| Case {
        what,
        identity,
        bucket,
        principal,
        action: "s3:GetObject",
        resource: PHOTO,
        context: &[],
        effect,
        decided_by,
    };
    check(&[
        base(
            "public read",
            &[],
            Some(public_read),
            Principal::Anonymous,
            Effect::Allow,
            Some((BUCKET_POLICY_NAME, "Public")),
        ),
        base(
            "AWS star",
            &[],
            Some(public_aws_star),
            Principal::Anonymous,
            Effect::Allow,
            Some((BUCKET_POLICY_NAME, "#0")),
        ),
        base("named user is not anonymous", &[], Some(alice_only), Principal::Anonymous, Effect::ImplicitDeny, None),
        base("identity policies never apply", &[EVERYTHING], None, Principal::Anonymous, Effect::ImplicitDeny, None),
        base("no bucket policy", &[], None, Principal::Anonymous, Effect::ImplicitDeny, None),
        base(
            "NotPrincipal covers anonymous",
            &[],
            Some(all_but_bob),
            Principal::Anonymous,
            Effect::Allow,
            Some((BUCKET_POLICY_NAME, "NotBob")),
        ),
        base(
            "NotPrincipal covers alice",
            &[],
            Some(all_but_bob),
            alice(),
            Effect::Allow,
            Some((BUCKET_POLICY_NAME, "NotBob")),
        ),
        base("NotPrincipal excludes bob", &[], Some(all_but_bob), bob(), Effect::ImplicitDeny, None),
    ]);
}

#[test]
fn not_principal_deny_spares_only_those_listed() {
    let only_alice = r#"{"Statement": {"Sid": "OnlyAlice", "NotPrincipal": {"AWS": ["arn:aws:iam::123456789012:user/alice"]},
        "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::photos/*"}}"#;
    let base = |what, principal, effect, decided_by| Case {
        what,
        identity: &[EVERYTHING],
        bucket: Some(only_alice),
        principal,
        action: "s3:GetObject",
        resource: PHOTO,
        context: &[],
        effect,
        decided_by,
    };
    let p0 = identity_name(0);
    let denied = Some((BUCKET_POLICY_NAME, "OnlyAlice"));
    check(&[
        base("alice spared", alice(), Effect::Allow, Some((&p0, "All"))),
        base("bob denied", bob(), Effect::ExplicitDeny, denied),
        base("root denied too", root(), Effect::ExplicitDeny, denied),
        base("anonymous denied", Principal::Anonymous, Effect::ExplicitDeny, denied),
    ]);
}

#[test]
fn policy_variables_in_resources() {
    let home = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}/*"}}"#;
    let home_default = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username, 'shared'}/*"}}"#;
    let old_version = r#"{"Version": "2008-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}/*"}}"#;
    let literal_star = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::photos/${*}${?}${$}"}}"#;
    let deny_others = r#"{"Version": "2012-10-17", "Statement": {"Sid": "OwnHomeOnly", "Effect": "Deny", "Action": "s3:*", "NotResource": "arn:aws:s3:::home/${aws:username}/*"}}"#;
    let p0 = identity_name(0);
    let p1 = identity_name(1);
    let allowed = Some((p0.as_str(), "#0"));
    let username: &[(&str, &[&str])] = &[("aws:username", &["alice"])];
    let case = |what, identity, resource, context, effect, decided_by| Case {
        what,
        identity,
        bucket: None,
        principal: alice(),
        action: "s3:GetObject",
        resource,
        context,
        effect,
        decided_by,
    };
    check(&[
        case("own home", &[home], "arn:aws:s3:::home/alice/a", username, Effect::Allow, allowed),
        case("someone else's home", &[home], "arn:aws:s3:::home/bob/a", username, Effect::ImplicitDeny, None),
        case("no username, no match", &[home], "arn:aws:s3:::home/alice/a", &[], Effect::ImplicitDeny, None),
        case("default used when absent", &[home_default], "arn:aws:s3:::home/shared/a", &[], Effect::Allow, allowed),
        case(
            "default unused when present",
            &[home_default],
            "arn:aws:s3:::home/shared/a",
            username,
            Effect::ImplicitDeny,
            None,
        ),
        case(
            "2008 keeps ${} literal",
            &[old_version],
            "arn:aws:s3:::home/${aws:username}/a",
            username,
            Effect::Allow,
            allowed,
        ),
        case(
            "2008 does not substitute",
            &[old_version],
            "arn:aws:s3:::home/alice/a",
            username,
            Effect::ImplicitDeny,
            None,
        ),
        case("escapes are literal", &[literal_star], "arn:aws:s3:::photos/*?$", &[], Effect::Allow, allowed),
        case(
            "escaped star is no wildcard",
            &[literal_star],
            "arn:aws:s3:::photos/ab$",
            &[],
            Effect::ImplicitDeny,
            None,
        ),
        case(
            "deny outside own home",
            &[EVERYTHING, deny_others],
            "arn:aws:s3:::home/bob/a",
            username,
            Effect::ExplicitDeny,
            Some((p1.as_str(), "OwnHomeOnly")),
        ),
        case(
            "no deny inside own home",
            &[EVERYTHING, deny_others],
            "arn:aws:s3:::home/alice/a",
            username,
            Effect::Allow,
            Some((&p0, "All")),
        ),
    ]);
}

#[test]
fn principal_keys_fill_the_username_variable() {
    let home = Policy::parse_identity(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::home/${aws:username}/*"}}"#,
    )
    .unwrap();
    let principal = alice();
    let mut context = Context::new();
    context.insert_principal_keys(&principal);
    assert_eq!(context.get("AWS:PrincipalArn").unwrap(), ["arn:aws:iam::123456789012:user/alice"]);
    assert_eq!(context.get("aws:principaltype").unwrap(), ["User"]);
    let request = Request {
        principal: &principal,
        action: "s3:GetObject",
        resource: "arn:aws:s3:::home/alice/x",
        context: &context,
    };
    let decision = authorize(&request, &[NamedPolicy { name: "p", policy: &home }], None);
    assert!(decision.is_allowed());
}

#[test]
fn bucket_policy_conditions_gate_statements() {
    let tls_only = r#"{"Statement": [
        {"Sid": "TlsOnly", "Principal": "*", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::photos/*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Sid": "Office", "Principal": "*", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*",
         "Condition": {"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}]}"#;
    let case = |what, principal, context, effect, decided_by| Case {
        what,
        identity: &[],
        bucket: Some(tls_only),
        principal,
        action: "s3:GetObject",
        resource: PHOTO,
        context,
        effect,
        decided_by,
    };
    let office_tls: &[(&str, &[&str])] = &[("aws:SecureTransport", &["true"]), ("aws:SourceIp", &["192.0.2.10"])];
    let office_plain: &[(&str, &[&str])] = &[("aws:SecureTransport", &["false"]), ("aws:SourceIp", &["192.0.2.10"])];
    let home_tls: &[(&str, &[&str])] = &[("aws:SecureTransport", &["true"]), ("aws:SourceIp", &["198.51.100.1"])];
    check(&[
        case("office over TLS", Principal::Anonymous, office_tls, Effect::Allow, Some((BUCKET_POLICY_NAME, "Office"))),
        case(
            "office in plain text",
            Principal::Anonymous,
            office_plain,
            Effect::ExplicitDeny,
            Some((BUCKET_POLICY_NAME, "TlsOnly")),
        ),
        case("root in plain text", root(), office_plain, Effect::ExplicitDeny, Some((BUCKET_POLICY_NAME, "TlsOnly"))),
        case("elsewhere", Principal::Anonymous, home_tls, Effect::ImplicitDeny, None),
        case("no context at all", Principal::Anonymous, &[], Effect::ImplicitDeny, None),
    ]);
}

/// Whether an identity policy allowing s3:GetObject on everything under `condition` allows a
/// request carrying `context`.
fn condition_allows(condition: &str, context: &[(&str, &[&str])]) -> bool {
    let json = format!(
        r#"{{"Version": "2012-10-17", "Statement": {{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {condition}}}}}"#
    );
    let policy = Policy::parse_identity(&json).unwrap_or_else(|error| panic!("{error}: {json}"));
    let context = context_of(context);
    let principal = alice();
    let request = Request { principal: &principal, action: "s3:GetObject", resource: PHOTO, context: &context };
    let decision = authorize(&request, &[NamedPolicy { name: "p", policy: &policy }], None);
    assert_ne!(decision.effect, Effect::ExplicitDeny);
    decision.is_allowed()
}

type ConditionCase<'a> = (&'a str, &'a [(&'a str, &'a [&'a str])], bool);

fn check_conditions(cases: &[ConditionCase<'_>]) {
    for (condition, context, expected) in cases {
        assert_eq!(condition_allows(condition, context), *expected, "{condition} with {context:?}");
    }
}

#[test]
fn string_operators() {
    check_conditions(&[
        (r#"{"StringEquals": {"s3:prefix": "home/"}}"#, &[("s3:prefix", &["home/"])], true),
        (r#"{"StringEquals": {"s3:prefix": "home/"}}"#, &[("s3:prefix", &["Home/"])], false),
        (r#"{"StringEquals": {"s3:prefix": "home/"}}"#, &[], false),
        (r#"{"StringEquals": {"s3:prefix": ["a", "b"]}}"#, &[("s3:prefix", &["b"])], true),
        (r#"{"StringEquals": {"s3:prefix": "a*"}}"#, &[("s3:prefix", &["ab"])], false),
        (r#"{"StringEquals": {"s3:prefix": "a*"}}"#, &[("s3:prefix", &["a*"])], true),
        (r#"{"StringEquals": {"S3:Prefix": "a"}}"#, &[("s3:PREFIX", &["a"])], true),
        (r#"{"StringEquals": {"s3:max-keys": 10}}"#, &[("s3:max-keys", &["10"])], true),
        (r#"{"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}}"#, &[("s3:prefix", &["a"])], false),
        (
            r#"{"StringEquals": {"s3:prefix": "a", "s3:delimiter": "/"}}"#,
            &[("s3:prefix", &["a"]), ("s3:delimiter", &["/"])],
            true,
        ),
        (
            r#"{"StringEquals": {"s3:prefix": "a"}, "StringLike": {"s3:delimiter": "?"}}"#,
            &[("s3:prefix", &["a"]), ("s3:delimiter", &["//"])],
            false,
        ),
        (r#"{"StringEquals": {"s3:prefix": "a"}}"#, &[("s3:prefix", &["b", "a"])], true),
        (r#"{"StringNotEquals": {"s3:prefix": "a"}}"#, &[("s3:prefix", &["b"])], true),
        (r#"{"StringNotEquals": {"s3:prefix": "a"}}"#, &[("s3:prefix", &["a"])], false),
        (r#"{"StringNotEquals": {"s3:prefix": "a"}}"#, &[], true),
        (r#"{"StringNotEquals": {"s3:prefix": ["a", "b"]}}"#, &[("s3:prefix", &["b"])], false),
        (r#"{"StringEqualsIgnoreCase": {"s3:prefix": "HOME/"}}"#, &[("s3:prefix", &["home/"])], true),
        (r#"{"StringEqualsIgnoreCase": {"s3:prefix": "HOME/"}}"#, &[("s3:prefix", &["work/"])], false),
        (r#"{"StringNotEqualsIgnoreCase": {"s3:prefix": "HOME/"}}"#, &[("s3:prefix", &["home/"])], false),
        (r#"{"StringNotEqualsIgnoreCase": {"s3:prefix": "HOME/"}}"#, &[("s3:prefix", &["work/"])], true),
        (r#"{"StringLike": {"s3:prefix": "home/*"}}"#, &[("s3:prefix", &["home/a/b"])], true),
        (r#"{"StringLike": {"s3:prefix": "h?me/"}}"#, &[("s3:prefix", &["hame/"])], true),
        (r#"{"StringLike": {"s3:prefix": "home/*"}}"#, &[("s3:prefix", &["work/"])], false),
        (r#"{"StringLike": {"s3:prefix": "home/*"}}"#, &[("s3:prefix", &["Home/a"])], false),
        (r#"{"StringNotLike": {"s3:prefix": "home/*"}}"#, &[("s3:prefix", &["work/"])], true),
        (r#"{"StringNotLike": {"s3:prefix": "home/*"}}"#, &[("s3:prefix", &["home/x"])], false),
        (r#"{"StringNotLike": {"s3:prefix": "home/*"}}"#, &[], true),
    ]);
}

#[test]
fn numeric_operators() {
    let keys: &[(&str, &[&str])] = &[("s3:max-keys", &["10"])];
    check_conditions(&[
        (r#"{"NumericEquals": {"s3:max-keys": 10}}"#, keys, true),
        (r#"{"NumericEquals": {"s3:max-keys": "10.0"}}"#, keys, true),
        (r#"{"NumericEquals": {"s3:max-keys": "11"}}"#, keys, false),
        (r#"{"NumericEquals": {"s3:max-keys": "10"}}"#, &[("s3:max-keys", &["ten"])], false),
        (r#"{"NumericEquals": {"s3:max-keys": "10"}}"#, &[], false),
        (r#"{"NumericNotEquals": {"s3:max-keys": "11"}}"#, keys, true),
        (r#"{"NumericNotEquals": {"s3:max-keys": "10"}}"#, keys, false),
        (r#"{"NumericNotEquals": {"s3:max-keys": "10"}}"#, &[], true),
        (r#"{"NumericLessThan": {"s3:max-keys": "11"}}"#, keys, true),
        (r#"{"NumericLessThan": {"s3:max-keys": "10"}}"#, keys, false),
        (r#"{"NumericLessThan": {"s3:max-keys": 10.5}}"#, keys, true),
        (r#"{"NumericLessThanEquals": {"s3:max-keys": "10"}}"#, keys, true),
        (r#"{"NumericLessThanEquals": {"s3:max-keys": "9"}}"#, keys, false),
        (r#"{"NumericGreaterThan": {"s3:max-keys": "9"}}"#, keys, true),
        (r#"{"NumericGreaterThan": {"s3:max-keys": "10"}}"#, keys, false),
        (r#"{"NumericGreaterThanEquals": {"s3:max-keys": "10"}}"#, keys, true),
        (r#"{"NumericGreaterThanEquals": {"s3:max-keys": "1e2"}}"#, keys, false),
        (r#"{"NumericLessThan": {"s3:max-keys": "-1"}}"#, &[("s3:max-keys", &["-2"])], true),
    ]);
}

#[test]
fn date_operators() {
    let new_year: &[(&str, &[&str])] = &[("aws:CurrentTime", &["2026-01-01T00:00:00Z"])];
    let eve: &[(&str, &[&str])] = &[("aws:CurrentTime", &["2025-12-31T23:59:59Z"])];
    check_conditions(&[
        (r#"{"DateEquals": {"aws:CurrentTime": "2026-01-01"}}"#, new_year, true),
        (r#"{"DateEquals": {"aws:CurrentTime": "2026-01-01T01:00:00+01:00"}}"#, new_year, true),
        (r#"{"DateEquals": {"aws:CurrentTime": 1767225600}}"#, new_year, true),
        (r#"{"DateEquals": {"aws:CurrentTime": "2026-01-01"}}"#, eve, false),
        (r#"{"DateNotEquals": {"aws:CurrentTime": "2026-01-01"}}"#, eve, true),
        (r#"{"DateNotEquals": {"aws:CurrentTime": "2026-01-01"}}"#, new_year, false),
        (r#"{"DateLessThan": {"aws:CurrentTime": "2026-01-01"}}"#, eve, true),
        (r#"{"DateLessThan": {"aws:CurrentTime": "2026-01-01"}}"#, new_year, false),
        (r#"{"DateLessThanEquals": {"aws:CurrentTime": "2026-01-01"}}"#, new_year, true),
        (r#"{"DateLessThanEquals": {"aws:CurrentTime": "2025-12-31T23:59:58Z"}}"#, eve, false),
        (r#"{"DateGreaterThan": {"aws:CurrentTime": "2025-12-31T23:59:59Z"}}"#, new_year, true),
        (r#"{"DateGreaterThan": {"aws:EpochTime": "2026-01-01"}}"#, &[("aws:EpochTime", &["1767225601"])], true),
        (r#"{"DateGreaterThan": {"aws:CurrentTime": "2026-01-01"}}"#, new_year, false),
        (r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2026-01-01"}}"#, new_year, true),
        (r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2026-01-01"}}"#, eve, false),
        (r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2026-01-01"}}"#, &[("aws:CurrentTime", &["soon"])], false),
        (r#"{"DateLessThan": {"aws:CurrentTime": "2026-01-01"}}"#, &[], false),
    ]);
}

#[test]
fn bool_binary_ip_and_arn_operators() {
    let hello: &[(&str, &[&str])] = &[("s3:blob", &["aGVsbG8="])];
    let arn: &[(&str, &[&str])] = &[("aws:SourceArn", &["arn:aws:sns:us-east-1:123456789012:topic"])];
    check_conditions(&[
        (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[("aws:SecureTransport", &["true"])], true),
        (r#"{"Bool": {"aws:SecureTransport": true}}"#, &[("aws:SecureTransport", &["TRUE"])], true),
        (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[("aws:SecureTransport", &["false"])], false),
        (r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[("aws:SecureTransport", &["yes"])], false),
        (r#"{"Bool": {"aws:SecureTransport": "false"}}"#, &[], false),
        (r#"{"BinaryEquals": {"s3:blob": "aGVsbG8="}}"#, hello, true),
        (r#"{"BinaryEquals": {"s3:blob": "d29ybGQ="}}"#, hello, false),
        (r#"{"BinaryEquals": {"s3:blob": "aGVsbG8="}}"#, &[("s3:blob", &["not base64!"])], false),
        (
            r#"{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}"#,
            &[("aws:SourceIp", &["10.1.2.3"])],
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}"#,
            &[("aws:SourceIp", &["2001:db8::1"])],
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}"#,
            &[("aws:SourceIp", &["192.168.0.1"])],
            false,
        ),
        (r#"{"IpAddress": {"aws:SourceIp": "192.0.2.7"}}"#, &[("aws:SourceIp", &["192.0.2.7"])], true),
        (r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("aws:SourceIp", &["garbage"])], false),
        (r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[], false),
        (r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("aws:SourceIp", &["192.168.0.1"])], true),
        (r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("aws:SourceIp", &["10.1.1.1"])], false),
        (r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[], true),
        (r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:topic"}}"#, arn, true),
        (r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:*:123456789012:topic"}}"#, arn, true),
        (r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:other"}}"#, arn, false),
        (r#"{"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:top?c"}}"#, arn, true),
        (r#"{"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:topic:*"}}"#, arn, false),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:*"}}"#,
            &[("aws:SourceArn", &["topic"])],
            false,
        ),
        (r#"{"ArnNotEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:123456789012:other"}}"#, arn, true),
        (r#"{"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}"#, arn, false),
        (r#"{"ArnNotLike": {"aws:SourceArn": "arn:aws:sns:*:*:*"}}"#, &[], true),
    ]);
}

#[test]
fn null_if_exists_and_set_operators() {
    let tags_ca: &[(&str, &[&str])] = &[("aws:TagKeys", &["c", "a"])];
    let tags_ab: &[(&str, &[&str])] = &[("aws:TagKeys", &["a", "b"])];
    let tags_c: &[(&str, &[&str])] = &[("aws:TagKeys", &["c"])];
    let sse: &[(&str, &[&str])] = &[("s3:x-amz-server-side-encryption", &["AES256"])];
    check_conditions(&[
        (r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#, &[], true),
        (r#"{"Null": {"s3:x-amz-server-side-encryption": "true"}}"#, sse, false),
        (r#"{"Null": {"s3:x-amz-server-side-encryption": false}}"#, sse, true),
        (r#"{"Null": {"s3:x-amz-server-side-encryption": "false"}}"#, &[], false),
        (r#"{"StringEqualsIfExists": {"s3:x-amz-server-side-encryption": "AES256"}}"#, &[], true),
        (r#"{"StringEqualsIfExists": {"s3:x-amz-server-side-encryption": "AES256"}}"#, sse, true),
        (r#"{"StringEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}"#, sse, false),
        (r#"{"NumericLessThanIfExists": {"s3:max-keys": "5"}}"#, &[], true),
        (r#"{"NumericLessThanIfExists": {"s3:max-keys": "5"}}"#, &[("s3:max-keys", &["6"])], false),
        (r#"{"NotIpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}"#, &[("aws:SourceIp", &["10.0.0.1"])], false),
        (r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, tags_ca, true),
        (r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, tags_c, false),
        (r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, &[], false),
        (r#"{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": ["a", "b"]}}"#, &[], true),
        (r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}}"#, tags_ab, true),
        (r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": "a"}}"#, &[("aws:TagKeys", &["a"])], false),
        (r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, tags_ab, true),
        (r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, tags_ca, false),
        (r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}"#, &[], true),
        (r#"{"ForAllValues:StringLike": {"aws:TagKeys": "a*"}}"#, &[("aws:TagKeys", &["ab", "ac"])], true),
        (r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": "a"}}"#, &[("aws:TagKeys", &["b", "c"])], true),
        (r#"{"ForAllValues:StringNotEquals": {"aws:TagKeys": "a"}}"#, tags_ab, false),
        (r#"{"ForAnyValue:NumericGreaterThan": {"s3:sizes": "5"}}"#, &[("s3:sizes", &["1", "9"])], true),
        (r#"{"ForAllValues:NumericGreaterThan": {"s3:sizes": "5"}}"#, &[("s3:sizes", &["1", "9"])], false),
    ]);
}

#[test]
fn variables_in_condition_values() {
    let alice_prefix: &[(&str, &[&str])] = &[("aws:username", &["alice"]), ("s3:prefix", &["home/alice/x"])];
    let bob_prefix: &[(&str, &[&str])] = &[("aws:username", &["alice"]), ("s3:prefix", &["home/bob/x"])];
    let nobody: &[(&str, &[&str])] = &[("s3:prefix", &["home/alice/x"])];
    check_conditions(&[
        (r#"{"StringLike": {"s3:prefix": "home/${aws:username}/*"}}"#, alice_prefix, true),
        (r#"{"StringLike": {"s3:prefix": "home/${aws:username}/*"}}"#, bob_prefix, false),
        (r#"{"StringLike": {"s3:prefix": "home/${aws:username}/*"}}"#, nobody, false),
        (r#"{"StringNotLike": {"s3:prefix": "home/${aws:username}/*"}}"#, nobody, true),
        (r#"{"StringEquals": {"s3:prefix": "${aws:username, 'guest'}"}}"#, &[("s3:prefix", &["guest"])], true),
        (
            r#"{"StringEquals": {"s3:prefix": "${aws:username, 'guest'}"}}"#,
            &[("s3:prefix", &["guest"]), ("aws:username", &["alice"])],
            false,
        ),
        (r#"{"StringEquals": {"s3:prefix": "${*}"}}"#, &[("s3:prefix", &["*"])], true),
        (r#"{"StringLike": {"s3:prefix": "${*}"}}"#, &[("s3:prefix", &["x"])], false),
        (
            r#"{"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:user/${aws:username}"}}"#,
            &[("aws:username", &["alice"]), ("aws:PrincipalArn", &["arn:aws:iam::123456789012:user/alice"])],
            true,
        ),
    ]);
}
