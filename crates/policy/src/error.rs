//! The one error type of this crate: why a policy document was refused.
//!
//! Every variant's message names what was wrong (the offending action, operator, field or value),
//! so that the S3 layer can hand it to the client inside `MalformedPolicy` unchanged. Variants that
//! AWS reports with a fixed text ("Invalid principal in policy", "Policy has invalid resource") keep
//! that text and carry the offending value for logs and `Debug` only.

/// A policy document that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The text is not JSON, or not a JSON object at the top.
    #[error("Invalid JSON: {0}")]
    InvalidJson(String),
    /// The document exceeds the size limit for its kind.
    #[error("Policy is larger than {limit} {unit}")]
    TooLarge { limit: usize, unit: &'static str },
    /// `Version` is neither "2012-10-17" nor "2008-10-17".
    #[error("Unsupported policy version: {0}")]
    UnsupportedVersion(String),
    /// A field the grammar requires is absent.
    #[error("Missing required field {0}")]
    MissingField(&'static str),
    /// A field this grammar does not know (`place` is "policy" or "statement").
    #[error("Unknown field in {place}: {field}")]
    UnknownField { place: &'static str, field: String },
    /// A field has the wrong JSON type or is empty.
    #[error("Invalid value for field {field}: expected {expected}")]
    InvalidFieldType { field: &'static str, expected: &'static str },
    /// A statement carries both a field and its negation (e.g. Action and NotAction).
    #[error("Statement cannot have both {0} and Not{0}")]
    BothFieldAndNegation(&'static str),
    /// `Effect` is not "Allow" or "Deny".
    #[error("Invalid effect: {0}")]
    InvalidEffect(String),
    /// Two statements share a Sid.
    #[error("Duplicate statement id: {0}")]
    DuplicateSid(String),
    /// An action with an unknown service prefix or an unknown S3 action name.
    #[error("Policy has invalid action: {0}")]
    InvalidAction(String),
    /// A resource that is not an ARN, or (bucket policies) not inside the bucket.
    #[error("Policy has invalid resource")]
    InvalidResource(String),
    /// A principal this server cannot represent: other accounts, services, canonical users.
    #[error("Invalid principal in policy")]
    InvalidPrincipal(String),
    /// Principal or NotPrincipal in a policy attached to a user or group.
    #[error("Statement must not have {0} in an identity policy")]
    PrincipalInIdentityPolicy(&'static str),
    /// A condition operator this evaluator does not implement.
    #[error("Unknown condition operator: {0}")]
    UnknownConditionOperator(String),
    /// A condition key not of the form `prefix:name` with a known prefix.
    #[error("Invalid condition key: {0}")]
    InvalidConditionKey(String),
    /// A condition value the operator cannot use (bad number, date, CIDR, base64, ARN, boolean).
    #[error("Invalid value for condition operator {operator}: {value}")]
    InvalidConditionValue { operator: String, value: String },
    /// A malformed `${...}` policy variable.
    #[error("Invalid policy variable in: {0}")]
    InvalidVariable(String),
}
