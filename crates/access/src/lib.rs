//! Access control: who is calling (identities and their access keys) and
//! whether they may do what they ask (identity and bucket policies,
//! evaluated by `bulwark-policy`).
//!
//! See `docs/design/access.md` for the model and the choices behind it.

mod authorize;
mod identities;

pub use authorize::{Authorizer, BucketView, Verdict};
pub use identities::{Attachment, Caller, GroupInfo, Identities, KeyInfo, NewKey, PolicyInfo, Root, UserInfo};

/// The account id in ARNs (`arn:aws:iam::<account>:user/<name>`): one
/// server, one account.
pub const ACCOUNT_ID: &str = "000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0} does not exist")]
    NoSuchEntity(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    MalformedPolicy(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("identity state: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] bulwark_object::Error),
}

pub type Result<T, E = AccessError> = std::result::Result<T, E>;
