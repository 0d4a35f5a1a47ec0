//! Policy documents from PutBucketPolicy and the IAM API: parsing arbitrary text must fail cleanly
//! or yield a policy that evaluation handles without panicking, whatever it says.
#![no_main]
use bulwark_policy::{Context, Effect, NamedPolicy, Policy, Principal, Request, authorize};
use libfuzzer_sys::fuzz_target;

const ACCOUNT: &str = "123456789012";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let identity = Policy::parse_identity(&text).ok();
    let bucket = Policy::parse_bucket(&text, "photos", ACCOUNT).ok();
    if identity.is_none() && bucket.is_none() {
        return;
    }
    let mut context = Context::new();
    context.insert("aws:SourceIp", "10.1.2.3");
    context.insert("aws:CurrentTime", "2026-01-01T00:00:00Z");
    context.insert("s3:prefix", "home/alice/");
    context.insert_many("aws:TagKeys", vec!["team".to_owned(), "env".to_owned()]);
    let user = Principal::User { account: ACCOUNT.to_owned(), name: "alice".to_owned() };
    context.insert_principal_keys(&user);
    let identity_policies: Vec<NamedPolicy<'_>> =
        identity.iter().map(|policy| NamedPolicy { name: "identity", policy }).collect();
    for principal in [user.clone(), Principal::Root { account: ACCOUNT.to_owned() }, Principal::Anonymous] {
        let request = Request {
            principal: &principal,
            action: "s3:GetObject",
            resource: "arn:aws:s3:::photos/home/alice/cat.jpg",
            context: &context,
        };
        let bucket_policy = bucket.as_ref().map(|policy| NamedPolicy { name: "bucket", policy });
        let decision = authorize(&request, &identity_policies, bucket_policy);
        // Only an explicit deny or a statement's allow names a statement; root's allow does not.
        let names_a_statement = match decision.effect {
            Effect::ExplicitDeny => true,
            Effect::Allow => !matches!(principal, Principal::Root { .. }),
            Effect::ImplicitDeny => false,
        };
        assert_eq!(decision.decided_by.is_some(), names_a_statement);
    }
    if let Some(policy) = &bucket {
        let _ = policy.is_public();
        assert_eq!(policy.source(), text);
    }
});
