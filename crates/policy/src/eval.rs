//! The authorization decision for one request within one account.
//!
//! Order, as AWS documents it for a single account:
//! 1. Any statement that applies and says Deny — in an identity policy of the requesting user or in
//!    the bucket policy — decides: explicit deny. Nothing can override it.
//! 2. The account's root is allowed everything else: it is not subject to identity policies (the
//!    integrator should pass none; any passed are ignored), only to bucket-policy denies.
//! 3. A statement that applies and says Allow, in an identity policy of the user or in the bucket
//!    policy (whose statements must name the requester), allows.
//! 4. Otherwise: implicit deny.
//!
//! Anonymous requesters have no identity policies (any passed are ignored), so only a bucket-policy
//! statement whose principal covers everyone can allow them.
//!
//! Both passes walk identity policies in the order given, then the bucket policy, statements in
//! document order, and report the first statement that decided. The *effect* does not depend on
//! that order; only which statement is named does.

use crate::policy::{Statement, StatementEffect};
use crate::{Decider, Decision, Effect, NamedPolicy, Principal, Request};

/// Decides `request` against the requester's identity policies and the bucket's policy.
pub fn authorize(request: &Request<'_>, identity: &[NamedPolicy<'_>], bucket: Option<NamedPolicy<'_>>) -> Decision {
    let action = request.action.to_lowercase();
    let identity = match request.principal {
        Principal::User { .. } => identity,
        Principal::Root { .. } | Principal::Anonymous => &[],
    };
    let sources = identity.iter().map(|named| (named, false)).chain(bucket.as_ref().map(|named| (named, true)));
    let first_applying = |effect: StatementEffect| {
        sources.clone().find_map(|(named, in_bucket_policy)| {
            named
                .policy
                .statements()
                .iter()
                .find(|statement| statement.effect == effect && statement.applies(request, &action, in_bucket_policy))
                .map(|statement| decider(named, statement))
        })
    };
    if let Some(decided_by) = first_applying(StatementEffect::Deny) {
        return Decision { effect: Effect::ExplicitDeny, decided_by: Some(decided_by) };
    }
    if let Principal::Root { .. } = request.principal {
        return Decision { effect: Effect::Allow, decided_by: None };
    }
    match first_applying(StatementEffect::Allow) {
        Some(decided_by) => Decision { effect: Effect::Allow, decided_by: Some(decided_by) },
        None => Decision { effect: Effect::ImplicitDeny, decided_by: None },
    }
}

fn decider(named: &NamedPolicy<'_>, statement: &Statement) -> Decider {
    Decider { policy: named.name.to_owned(), statement: statement.label.clone() }
}
