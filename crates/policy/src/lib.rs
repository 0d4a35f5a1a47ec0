//! The AWS IAM policy language: parse, validate and evaluate identity and bucket policies.
//!
//! Contract: pure functions over text and values — no I/O, no clock, no async. The caller builds a
//! [`Request`] (who, which action, which resource ARN, and a [`Context`] of condition keys such as
//! `aws:SourceIp`, `aws:CurrentTime`, `aws:username`, `s3:prefix`) and asks [`authorize`] for a
//! [`Decision`] against the requester's identity policies and the bucket's policy.
//!
//! What is implemented, as the IAM documentation describes it:
//! - Versions 2012-10-17 (policy variables) and 2008-10-17 (none; also the default); Statement as an
//!   object or an array; Sid, Effect, Principal/NotPrincipal, Action/NotAction,
//!   Resource/NotResource, Condition.
//! - Action and Resource wildcards (`*`, `?`), policy variables `${key}`, `${key, 'default'}` and
//!   the escapes `${*}`, `${?}`, `${$}` in Resource and in String/Arn condition values.
//! - All String, Numeric, Date, Bool, BinaryEquals, IpAddress, Arn and Null condition operators,
//!   with `…IfExists` and `ForAnyValue:`/`ForAllValues:`.
//! - Explicit deny beats allow; the account root is allowed unless a bucket policy denies it;
//!   anonymous requests are allowed only by bucket-policy statements for everyone.
//! - The "is this bucket policy public" rule used by GetBucketPolicyStatus and Block Public Access.
//!
//! What it deliberately does not do: there is one account per server, so no cross-account access
//! (principals of other accounts are refused at parse time), and no roles, sessions, session
//! policies, permission boundaries, service control policies, ACLs or access points. Callers must
//! only pass principals of this server's account. Policies are validated strictly: anything this
//! evaluator would not honour exactly as written is refused with a [`PolicyError`] that says why.
#![forbid(unsafe_code)]

mod action;
mod condition;
mod error;
mod eval;
mod pattern;
mod policy;
mod principal;

use std::borrow::Cow;
use std::collections::BTreeMap;

pub use error::PolicyError;
pub use eval::authorize;
pub use policy::{
    BUCKET_POLICY_BYTES_MAX, IDENTITY_POLICY_BYTES_MAX, IDENTITY_POLICY_CHARS_MAX, KEY_POLICY_BYTES_MAX, Policy,
};

/// Who is making the request, always within this server's account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An unsigned request.
    Anonymous,
    /// The account itself (its root credentials).
    Root { account: String },
    /// An IAM user of the account.
    User { account: String, name: String },
}

/// The request's condition keys and their values.
///
/// Keys are case-insensitive (stored lowercased); values are case-sensitive strings. A key holds
/// one or more values; a key given no values is absent, which is what `Null` and `…IfExists` see.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct Context {
    values: BTreeMap<String, Vec<String>>,
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to the single `value`, replacing what it held.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_lowercase(), vec![value.into()]);
    }

    /// Sets `key` to `values`, replacing what it held; an empty list removes the key.
    pub fn insert_many(&mut self, key: &str, values: Vec<String>) {
        if values.is_empty() {
            self.values.remove(&key.to_lowercase());
        } else {
            self.values.insert(key.to_lowercase(), values);
        }
    }

    /// The values of `key` (any case), or `None` when the request does not carry it.
    pub fn get(&self, key: &str) -> Option<&[String]> {
        let key = if key.chars().any(char::is_uppercase) { Cow::Owned(key.to_lowercase()) } else { Cow::Borrowed(key) };
        self.values.get(key.as_ref()).map(Vec::as_slice)
    }

    /// Adds the keys AWS derives from the principal: `aws:PrincipalType` (`User`, `Account` or
    /// `Anonymous`), and for signed requests `aws:PrincipalAccount` and `aws:PrincipalArn`, and for
    /// users `aws:username` (what `${aws:username}` in a Resource refers to).
    pub fn insert_principal_keys(&mut self, principal: &Principal) {
        match principal {
            Principal::Anonymous => self.insert("aws:PrincipalType", "Anonymous"),
            Principal::Root { account } => {
                self.insert("aws:PrincipalType", "Account");
                self.insert("aws:PrincipalAccount", account.clone());
                self.insert("aws:PrincipalArn", format!("arn:aws:iam::{account}:root"));
            }
            Principal::User { account, name } => {
                self.insert("aws:PrincipalType", "User");
                self.insert("aws:PrincipalAccount", account.clone());
                self.insert("aws:PrincipalArn", format!("arn:aws:iam::{account}:user/{name}"));
                self.insert("aws:username", name.clone());
            }
        }
    }
}

/// One request to decide.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// E.g. `s3:GetObject`; matched case-insensitively.
    pub action: &'a str,
    /// E.g. `arn:aws:s3:::bucket/key`, `arn:aws:s3:::bucket`, or `arn:aws:s3:::*`; case-sensitive.
    pub resource: &'a str,
    pub context: &'a Context,
}

/// A policy with the name decisions report it by, e.g. `user:alice/policy:readonly` or
/// `bucket-policy:photos`.
#[derive(Debug, Clone, Copy)]
pub struct NamedPolicy<'a> {
    pub name: &'a str,
    pub policy: &'a Policy,
}

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    /// A Deny statement applied; nothing can override it.
    ExplicitDeny,
    /// Nothing allowed the request.
    ImplicitDeny,
}

/// The statement that decided a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decider {
    /// [`NamedPolicy::name`] of the policy holding the statement.
    pub policy: String,
    /// The statement's Sid, or `#<index>` (0-based) when it has none.
    pub statement: String,
}

/// An authorization decision and what made it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decision {
    pub effect: Effect,
    /// `None` for an implicit deny and for the root's implicit allow.
    pub decided_by: Option<Decider>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}
