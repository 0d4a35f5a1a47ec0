//! Properties of evaluation that must hold for any policy set and request, checked on random ones
//! drawn from a small vocabulary (so that statements actually overlap with requests).
#![allow(clippy::unwrap_used)]

use bulwark_policy::{Context, Decision, Effect, NamedPolicy, Policy, Principal, Request, authorize};
use proptest::prelude::*;
use serde_json::{Value, json};

const ACCOUNT: &str = "123456789012";
const BUCKET: &str = "photos";
const CASES: u32 = 256;

const ACTIONS: &[&str] = &["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"];
const ACTION_PATTERNS: &[&str] = &[
    "*",
    "s3:*",
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:Get*",
    "s3:*Object",
    "s3:List?ucket",
];
const RESOURCES: &[&str] =
    &["arn:aws:s3:::photos", "arn:aws:s3:::photos/a", "arn:aws:s3:::photos/b/c", "arn:aws:s3:::photos/b/d"];
const RESOURCE_PATTERNS: &[&str] = &[
    "arn:aws:s3:::photos",
    "arn:aws:s3:::photos/*",
    "arn:aws:s3:::photos/b/*",
    "arn:aws:s3:::photos/a",
    "arn:aws:s3:::photos/?",
    "arn:aws:s3:::photo*",
];
const PRINCIPAL_ENTRIES: &[&str] = &["*", "alice", "arn:aws:iam::123456789012:user/bob", "123456789012"];
const CONDITIONS: &[&str] = &[
    r#"{"StringEquals": {"s3:prefix": "x"}}"#,
    r#"{"StringNotEquals": {"s3:prefix": "x"}}"#,
    r#"{"StringLikeIfExists": {"s3:prefix": "?"}}"#,
    r#"{"Null": {"s3:prefix": "true"}}"#,
    r#"{"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
    r#"{"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}"#,
    r#"{"Bool": {"aws:SecureTransport": "true"}}"#,
];

fn principals() -> [Principal; 4] {
    [
        Principal::User { account: ACCOUNT.to_owned(), name: "alice".to_owned() },
        Principal::User { account: ACCOUNT.to_owned(), name: "bob".to_owned() },
        Principal::Root { account: ACCOUNT.to_owned() },
        Principal::Anonymous,
    ]
}

#[derive(Debug, Clone)]
struct StatementSpec {
    allow: bool,
    not_principal: bool,
    principals: Vec<usize>,
    not_action: bool,
    actions: Vec<usize>,
    not_resource: bool,
    resources: Vec<usize>,
    condition: Option<usize>,
}

impl StatementSpec {
    fn to_json(&self, sid: &str, bucket: bool) -> Value {
        let mut statement = json!({
            "Sid": sid,
            "Effect": if self.allow { "Allow" } else { "Deny" },
            (if self.not_action { "NotAction" } else { "Action" }):
                self.actions.iter().map(|i| ACTION_PATTERNS[*i]).collect::<Vec<_>>(),
            (if self.not_resource { "NotResource" } else { "Resource" }):
                self.resources.iter().map(|i| RESOURCE_PATTERNS[*i]).collect::<Vec<_>>(),
        });
        if bucket {
            let entries: Vec<&str> = self.principals.iter().map(|i| PRINCIPAL_ENTRIES[*i]).collect();
            statement[if self.not_principal { "NotPrincipal" } else { "Principal" }] = json!({ "AWS": entries });
        }
        if let Some(condition) = self.condition {
            statement["Condition"] = serde_json::from_str(CONDITIONS[condition]).unwrap();
        }
        statement
    }
}

fn statement_spec() -> impl Strategy<Value = StatementSpec> {
    let indexes = |len: usize| prop::collection::vec(0..len, 1..3);
    (
        any::<bool>(),
        any::<bool>(),
        indexes(PRINCIPAL_ENTRIES.len()),
        any::<bool>(),
        indexes(ACTION_PATTERNS.len()),
        any::<bool>(),
        indexes(RESOURCE_PATTERNS.len()),
        prop::option::of(0..CONDITIONS.len()),
    )
        .prop_map(|(allow, not_principal, principals, not_action, actions, not_resource, resources, condition)| {
            StatementSpec { allow, not_principal, principals, not_action, actions, not_resource, resources, condition }
        })
}

/// Statements of one policy; Sids are given by position at generation and travel with the
/// statement when it is reordered.
type PolicySpec = Vec<(String, StatementSpec)>;

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    prop::collection::vec(statement_spec(), 1..4)
        .prop_map(|statements| statements.into_iter().enumerate().map(|(i, s)| (format!("s{i}"), s)).collect())
}

#[derive(Debug, Clone)]
struct PolicySet {
    identity: Vec<PolicySpec>,
    bucket: Option<PolicySpec>,
}

fn policy_set() -> impl Strategy<Value = PolicySet> {
    (prop::collection::vec(policy_spec(), 0..3), prop::option::of(policy_spec()))
        .prop_map(|(identity, bucket)| PolicySet { identity, bucket })
}

#[derive(Debug, Clone)]
struct RequestSpec {
    principal: usize,
    action: usize,
    resource: usize,
    prefix: Option<&'static str>,
    source_ip: Option<&'static str>,
    secure: Option<&'static str>,
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    (
        0..4usize,
        0..ACTIONS.len(),
        0..RESOURCES.len(),
        prop::option::of(prop::sample::select(vec!["x", "y", "xy"])),
        prop::option::of(prop::sample::select(vec!["10.1.2.3", "192.168.1.1", "::1"])),
        prop::option::of(prop::sample::select(vec!["true", "false"])),
    )
        .prop_map(|(principal, action, resource, prefix, source_ip, secure)| RequestSpec {
            principal,
            action,
            resource,
            prefix,
            source_ip,
            secure,
        })
}

fn policy_json(spec: &PolicySpec, bucket: bool) -> String {
    let statements: Vec<Value> = spec.iter().map(|(sid, statement)| statement.to_json(sid, bucket)).collect();
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn decide(set: &PolicySet, request: &RequestSpec) -> Decision {
    let identity: Vec<Policy> =
        set.identity.iter().map(|spec| Policy::parse_identity(&policy_json(spec, false)).unwrap()).collect();
    let names: Vec<String> = (0..identity.len()).map(|i| format!("identity:{i}")).collect();
    let named: Vec<NamedPolicy<'_>> =
        identity.iter().zip(&names).map(|(policy, name)| NamedPolicy { name, policy }).collect();
    let bucket =
        set.bucket.as_ref().map(|spec| Policy::parse_bucket(&policy_json(spec, true), BUCKET, ACCOUNT).unwrap());
    let mut context = Context::new();
    for (key, value) in
        [("s3:prefix", request.prefix), ("aws:SourceIp", request.source_ip), ("aws:SecureTransport", request.secure)]
    {
        if let Some(value) = value {
            context.insert(key, value);
        }
    }
    let principals = principals();
    let request = Request {
        principal: &principals[request.principal],
        action: ACTIONS[request.action],
        resource: RESOURCES[request.resource],
        context: &context,
    };
    authorize(&request, &named, bucket.as_ref().map(|policy| NamedPolicy { name: "bucket", policy }))
}

/// A statement that denies exactly this request's action, on every resource, to everyone.
fn matching_deny(request: &RequestSpec) -> StatementSpec {
    let action = ACTION_PATTERNS.iter().position(|pattern| *pattern == ACTIONS[request.action]);
    let resource = RESOURCE_PATTERNS.iter().position(|pattern| *pattern == "arn:aws:s3:::photo*");
    StatementSpec {
        allow: false,
        not_principal: false,
        principals: vec![0],
        not_action: false,
        actions: vec![action.unwrap()],
        not_resource: false,
        resources: vec![resource.unwrap()],
        condition: None,
    }
}

/// Reference wildcard matcher: plain recursion, obviously right, exponential in the worst case.
fn reference_match(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| reference_match(rest, &text[skip..])),
        Some(('?', rest)) => !text.is_empty() && reference_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && reference_match(rest, &text[1..]),
    }
}

fn condition_allows(condition: &Value, context: &Context) -> bool {
    let json = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": condition}});
    let policy = Policy::parse_identity(&json.to_string()).unwrap();
    let principal = Principal::User { account: ACCOUNT.to_owned(), name: "alice".to_owned() };
    let request = Request { principal: &principal, action: "s3:GetObject", resource: "arn:aws:s3:::b/k", context };
    authorize(&request, &[NamedPolicy { name: "p", policy: &policy }], None).is_allowed()
}

fn values() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "A", "ab", "a*"]).prop_map(str::to_owned), 1..4)
}

fn context_with(key: &str, values: Option<Vec<String>>) -> Context {
    let mut context = Context::new();
    if let Some(values) = values {
        context.insert_many(key, values);
    }
    context
}

/// Valid policies rich in syntax, for the mangling property to damage.
const SAMPLES: &[&str] = &[
    r#"{"Version": "2012-10-17", "Id": "x", "Statement": [{"Sid": "A", "Principal": {"AWS": ["alice", "*"]}, "Effect": "Allow",
        "Action": ["s3:Get*", "s3:ListBucket"], "Resource": ["arn:aws:s3:::photos", "arn:aws:s3:::photos/${aws:username, 'x'}/*"],
        "Condition": {"StringLike": {"s3:prefix": "home/${aws:username}/${*}"}, "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "::1"]},
        "ForAllValues:StringEqualsIfExists": {"aws:TagKeys": ["team", 1, true]}, "Null": {"s3:x": "false"}}}]}"#,
    r#"{"Statement": {"NotPrincipal": {"AWS": "arn:aws:iam::123456789012:user/bob"}, "Effect": "Deny", "NotAction": "s3:Get*",
        "NotResource": "arn:aws:s3:::photos/?", "Condition": {"DateLessThan": {"aws:CurrentTime": "2026-01-01T00:00:00Z"},
        "NumericGreaterThanEquals": {"s3:max-keys": 5}, "BinaryEquals": {"s3:b": "aGVsbG8="}, "Bool": {"aws:SecureTransport": false},
        "ArnLike": {"aws:SourceArn": "arn:aws:sns:*:123456789012:t"}}}}"#,
    r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::*/${aws:userid}"}]}"#,
];

/// Characters that matter to JSON, wildcards and variables, plus a multi-byte one.
const MANGLING_CHARS: &[char] =
    &['{', '}', '[', ']', '"', ',', ':', '*', '?', '$', '\\', ' ', '0', 'a', '/', '\'', 'é'];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn a_matching_deny_always_wins(mut set in policy_set(), request in request_spec(), into_identity in any::<bool>()) {
        let deny = ("added".to_owned(), matching_deny(&request));
        let is_user = request.principal < 2;
        if is_user && into_identity {
            set.identity.push(vec![deny]);
        } else {
            set.bucket.get_or_insert_with(Vec::new).push(deny);
        }
        let decision = decide(&set, &request);
        prop_assert_eq!(decision.effect, Effect::ExplicitDeny);
    }

    #[test]
    fn allow_only_policies_never_deny_explicitly(mut set in policy_set(), request in request_spec()) {
        for policy in set.identity.iter_mut().chain(set.bucket.iter_mut()) {
            for (_, statement) in policy.iter_mut() {
                statement.allow = true;
            }
        }
        let decision = decide(&set, &request);
        prop_assert_ne!(decision.effect, Effect::ExplicitDeny);
        prop_assert_eq!(decision.effect == Effect::Allow && request.principal != 2, decision.decided_by.is_some());
    }

    #[test]
    fn statement_and_policy_order_do_not_change_the_effect(
        (set, shuffled) in policy_set().prop_flat_map(|set| {
            let identity = set.identity.iter().cloned().map(|policy| Just(policy).prop_shuffle()).collect::<Vec<_>>();
            let bucket = match set.bucket.clone() {
                Some(policy) => Just(policy).prop_shuffle().prop_map(Some).boxed(),
                None => Just(None).boxed(),
            };
            (Just(set), (identity, bucket).prop_map(|(mut identity, bucket)| {
                identity.reverse();
                PolicySet { identity, bucket }
            }))
        }),
        request in request_spec(),
    ) {
        prop_assert_eq!(decide(&set, &request).effect, decide(&shuffled, &request).effect);
    }

    #[test]
    fn wildcards_match_like_the_reference_matcher(
        pattern in prop::collection::vec(prop::sample::select(vec!['a', 'b', 'é', '/', ':', '*', '?']), 0..8),
        text in prop::collection::vec(prop::sample::select(vec!['a', 'b', 'é', '/', ':']), 0..10),
    ) {
        let pattern_text: String = pattern.iter().collect();
        let key: String = text.iter().collect();
        let json = json!({"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::b/{pattern_text}")}});
        let policy = Policy::parse_identity(&json.to_string()).unwrap();
        let principal = Principal::User { account: ACCOUNT.to_owned(), name: "alice".to_owned() };
        let resource = format!("arn:aws:s3:::b/{key}");
        let context = Context::new();
        let request = Request { principal: &principal, action: "s3:GetObject", resource: &resource, context: &context };
        let allowed = authorize(&request, &[NamedPolicy { name: "p", policy: &policy }], None).is_allowed();
        prop_assert_eq!(allowed, reference_match(&pattern, &text), "{} vs {}", pattern_text, key);
    }

    #[test]
    fn negated_string_operators_are_complements_when_the_key_is_present(
        policy_values in values(),
        context_values in values(),
        (positive, negated) in prop::sample::select(vec![
            ("StringEquals", "StringNotEquals"),
            ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"),
            ("StringLike", "StringNotLike"),
        ]),
    ) {
        let context = context_with("s3:prefix", Some(context_values));
        let holds = condition_allows(&json!({positive: {"s3:prefix": policy_values}}), &context);
        let complement = condition_allows(&json!({negated: {"s3:prefix": policy_values}}), &context);
        prop_assert_ne!(holds, complement);
    }

    #[test]
    fn for_all_values_is_the_complement_of_for_any_value_negated(
        policy_values in values(),
        context_values in values(),
    ) {
        let context = context_with("aws:TagKeys", Some(context_values));
        let all = condition_allows(&json!({"ForAllValues:StringEquals": {"aws:TagKeys": policy_values}}), &context);
        let any_not = condition_allows(&json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": policy_values}}), &context);
        prop_assert_ne!(all, any_not);
    }

    #[test]
    fn null_true_and_null_false_are_complements(present in prop::option::of(values())) {
        let context = context_with("s3:prefix", present);
        let absent = condition_allows(&json!({"Null": {"s3:prefix": "true"}}), &context);
        let exists = condition_allows(&json!({"Null": {"s3:prefix": "false"}}), &context);
        prop_assert_ne!(absent, exists);
    }

    #[test]
    fn if_exists_only_changes_the_absent_case(
        present in prop::option::of(values()),
        policy_values in values(),
        operator in prop::sample::select(vec!["StringEquals", "StringNotLike", "ForAnyValue:StringLike", "ForAllValues:StringEquals"]),
    ) {
        let context = context_with("s3:prefix", present.clone());
        let plain = condition_allows(&json!({operator: {"s3:prefix": policy_values}}), &context);
        let if_exists = condition_allows(&json!({format!("{operator}IfExists"): {"s3:prefix": policy_values}}), &context);
        if present.is_some() {
            prop_assert_eq!(plain, if_exists);
        } else {
            prop_assert!(if_exists);
        }
    }

    #[test]
    fn mangled_policies_are_refused_or_evaluated_without_panicking(
        sample in prop::sample::select(SAMPLES),
        edits in prop::collection::vec((any::<prop::sample::Index>(), prop::sample::select(MANGLING_CHARS), any::<bool>()), 1..6),
        request in request_spec(),
    ) {
        let mut chars: Vec<char> = sample.chars().collect();
        for (index, replacement, insert) in edits {
            let at = index.index(chars.len());
            if insert { chars.insert(at, replacement) } else { chars[at] = replacement }
        }
        let text: String = chars.into_iter().collect();
        let identity = Policy::parse_identity(&text);
        let bucket = Policy::parse_bucket(&text, BUCKET, ACCOUNT);
        for policy in identity.iter().chain(bucket.iter()) {
            prop_assert_eq!(policy.source(), text.as_str());
            let _ = policy.is_public();
            let principals = principals();
            let mut context = Context::new();
            context.insert_principal_keys(&principals[request.principal]);
            context.insert("s3:prefix", "home/alice/x");
            let request = Request {
                principal: &principals[request.principal],
                action: ACTIONS[request.action],
                resource: RESOURCES[request.resource],
                context: &context,
            };
            let named = NamedPolicy { name: "p", policy };
            let _ = authorize(&request, &[named], Some(named));
        }
    }
}
