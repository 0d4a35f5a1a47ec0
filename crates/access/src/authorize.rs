//! One access decision: the caller's identity policies and the bucket's
//! policy, evaluated together as AWS does, and logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bulwark_object::BucketRecord;
use bulwark_policy::{Context, Decision, Effect, NamedPolicy, Policy, Principal, Request};

use crate::identities::{Caller, Identities};

/// Actions the root identity may always take on a bucket it owns, whatever
/// the bucket policy says (as in S3, so a bad policy cannot lock out the
/// owner).
const OWNER_ALWAYS: &[&str] = &["s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"];

/// The bucket a request addresses, with its configuration.
#[derive(Clone, Copy)]
pub struct BucketView<'a> {
    pub name: &'a str,
    pub record: &'a BucketRecord,
}

/// The outcome and what decided it, for the access log and the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// `explicit deny by <policy> <statement>`, `allow by …`, `implicit deny`, `root`.
    pub reason: String,
}

/// A bucket's parsed policy and the record it was parsed from: (creation
/// time, generation). A bucket deleted and created again starts over at
/// generation 1, so the generation alone could hand the new bucket the old
/// bucket's policy.
type CachedPolicy = ((i64, u64), Option<Arc<Policy>>);

pub struct Authorizer {
    identities: Arc<Identities>,
    /// Parsed bucket policies by bucket, valid for one record generation.
    bucket_policies: Mutex<HashMap<String, CachedPolicy>>,
}

impl Authorizer {
    pub fn new(identities: Arc<Identities>) -> Authorizer {
        Authorizer { identities, bucket_policies: Mutex::new(HashMap::new()) }
    }

    pub fn identities(&self) -> &Arc<Identities> {
        &self.identities
    }

    pub fn principal(&self, caller: &Caller) -> Principal {
        let account = self.identities.account().to_owned();
        match caller {
            Caller::Root => Principal::Root { account },
            Caller::User { name, .. } => Principal::User { account, name: name.clone() },
            Caller::Anonymous => Principal::Anonymous,
        }
    }

    /// Adds the principal's condition keys (aws:username, aws:userid,
    /// aws:PrincipalType, aws:PrincipalArn, aws:PrincipalAccount).
    pub fn add_principal_keys(&self, caller: &Caller, ctx: &mut Context) {
        let account = self.identities.account();
        match caller {
            Caller::Root => {
                ctx.insert("aws:PrincipalType", "Account");
                ctx.insert("aws:userid", account);
                ctx.insert("aws:PrincipalArn", format!("arn:aws:iam::{account}:root"));
                ctx.insert("aws:PrincipalAccount", account);
            }
            Caller::User { name, .. } => {
                ctx.insert("aws:PrincipalType", "User");
                ctx.insert("aws:username", name.clone());
                ctx.insert("aws:userid", name.clone());
                ctx.insert("aws:PrincipalArn", self.identities.user_arn(name));
                ctx.insert("aws:PrincipalAccount", account);
            }
            Caller::Anonymous => {
                ctx.insert("aws:PrincipalType", "Anonymous");
            }
        }
    }

    /// The bucket's parsed policy (cached per record generation).
    pub fn bucket_policy(&self, bucket: BucketView<'_>) -> Option<Arc<Policy>> {
        let mut cache = self.bucket_policies.lock().unwrap_or_else(|e| e.into_inner());
        let version = (bucket.record.created_ns, bucket.record.generation);
        if let Some((cached, policy)) = cache.get(bucket.name)
            && *cached == version
        {
            return policy.clone();
        }
        let policy = bucket.record.policy.as_deref().and_then(|text| {
            match Policy::parse_bucket(text, bucket.name, self.identities.account()) {
                Ok(p) => Some(Arc::new(p)),
                Err(e) => {
                    // Validated when stored; never fall open if it stops parsing.
                    tracing::error!(bucket = %bucket.name, error = %e, "stored bucket policy no longer parses");
                    None
                }
            }
        });
        cache.insert(bucket.name.to_owned(), (version, policy.clone()));
        policy
    }

    /// Whether any policy that applies to `caller` here (identity policies,
    /// the bucket's policy) tests a condition key starting with `prefix`,
    /// e.g. one whose value is costly to look up.
    pub fn policies_test_key_prefix(&self, caller: &Caller, bucket: Option<BucketView<'_>>, prefix: &str) -> bool {
        self.identity_policies(caller).iter().any(|(_, p)| p.tests_condition_key_prefix(prefix))
            || bucket.and_then(|b| self.bucket_policy(b)).is_some_and(|p| p.tests_condition_key_prefix(prefix))
    }

    /// Decides one action on one resource and logs the decision.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        ctx: &Context,
        bucket: Option<BucketView<'_>>,
    ) -> Verdict {
        let verdict = self.decide(caller, action, resource, ctx, bucket);
        log(caller, action, resource, &verdict);
        verdict
    }

    /// Decides an action on a resource that carries its own policy (a KMS
    /// key policy): the caller's identity policies and `resource_policy`
    /// (named for the log), evaluated together as AWS does: an explicit Deny
    /// in either wins; root is otherwise allowed; a user needs an Allow in an
    /// identity policy or in the resource policy naming them.
    pub fn authorize_with(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        ctx: &Context,
        resource_policy: Option<(&str, &Policy)>,
    ) -> Verdict {
        let principal = self.principal(caller);
        let identity = self.identity_policies(caller);
        let named: Vec<NamedPolicy<'_>> =
            identity.iter().map(|(name, policy)| NamedPolicy { name, policy: policy.as_ref() }).collect();
        let resource_named = resource_policy.map(|(name, policy)| NamedPolicy { name, policy });
        let request = Request { principal: &principal, action, resource, context: ctx };
        let verdict = verdict_of(bulwark_policy::authorize(&request, &named, resource_named));
        log(caller, action, resource, &verdict);
        verdict
    }

    fn identity_policies(&self, caller: &Caller) -> Vec<(String, Arc<Policy>)> {
        match caller {
            Caller::User { name, .. } => self.identities.policies_of(name),
            Caller::Root | Caller::Anonymous => Vec::new(),
        }
    }

    fn decide(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        ctx: &Context,
        bucket: Option<BucketView<'_>>,
    ) -> Verdict {
        let principal = self.principal(caller);
        let identity = self.identity_policies(caller);
        let bucket_policy = bucket.and_then(|b| {
            let policy = self.bucket_policy(b)?;
            // RestrictPublicBuckets: a public policy grants nothing to
            // anyone outside the account.
            let restrict = b.record.public_access_block.is_some_and(|pab| pab.restrict_public_buckets);
            if restrict && policy.is_public() && *caller == Caller::Anonymous {
                return None;
            }
            Some((format!("bucket-policy:{}", b.name), policy))
        });
        let owner_override = *caller == Caller::Root && OWNER_ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(action));
        let named: Vec<NamedPolicy<'_>> =
            identity.iter().map(|(name, policy)| NamedPolicy { name, policy: policy.as_ref() }).collect();
        let bucket_named = bucket_policy
            .as_ref()
            .filter(|_| !owner_override)
            .map(|(name, policy)| NamedPolicy { name, policy: policy.as_ref() });
        let request = Request { principal: &principal, action, resource, context: ctx };
        verdict_of(bulwark_policy::authorize(&request, &named, bucket_named))
    }
}

fn log(caller: &Caller, action: &str, resource: &str, verdict: &Verdict) {
    if verdict.allowed {
        tracing::info!(target: "bulwark::access", principal = %caller.label(), action, resource, decision = "allow", by = %verdict.reason);
    } else {
        tracing::warn!(target: "bulwark::access", principal = %caller.label(), action, resource, decision = "deny", by = %verdict.reason);
    }
}

fn verdict_of(decision: Decision) -> Verdict {
    let by = decision.decided_by.as_ref().map(|d| format!("{} {}", d.policy, d.statement));
    match decision.effect {
        Effect::Allow => {
            Verdict { allowed: true, reason: by.map_or_else(|| "root".to_owned(), |b| format!("allow by {b}")) }
        }
        Effect::ExplicitDeny => {
            Verdict { allowed: false, reason: format!("explicit deny by {}", by.unwrap_or_default()) }
        }
        Effect::ImplicitDeny => Verdict { allowed: false, reason: "implicit deny".to_owned() },
    }
}
