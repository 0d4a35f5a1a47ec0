//! The Condition element: operators, their values, and how they hold against a request context.
//!
//! Everything a policy says is parsed and checked here once — numbers, dates, CIDRs, base64 and
//! booleans are converted when the policy is stored, so a typo is a `PolicyError` naming the value
//! instead of a condition that silently never holds. Values that come from the *request* are only
//! parsed at evaluation, and one that cannot be parsed makes that comparison false.
//!
//! Semantics, for one key with context values `V` and policy values `P`:
//! - plain operator: the key's comparison holds when some `v` in `V` matches some `p` in `P`; a
//!   negated operator (`StringNotEquals`, `NotIpAddress`, …) is the exact complement of its positive
//!   form. With the key absent, positive operators are false and negated ones true.
//! - `ForAnyValue:` holds when some `v` satisfies the (possibly negated) operator; absent → false.
//! - `ForAllValues:` holds when every `v` does; absent → true.
//! - `…IfExists`: absent → true; otherwise as without the suffix.
//! - `Null`: `"true"` holds when the key is absent, `"false"` when it is present.
//!
//! Conditions of different operators and different keys are ANDed by the caller.

use std::cmp::Ordering;
use std::net::IpAddr;

use base64::Engine as _;
use serde_json::Value;
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

use crate::Context;
use crate::error::PolicyError;
use crate::pattern::{ARN_FIELDS, Template, arn_match, glob_match};

/// Prefixes a condition key (or policy variable) may have.
const KEY_PREFIXES: &[&str] = &["aws", "s3", "kms", "iam"];

/// Validates a condition key of the form `prefix:name` and returns it lowercased, which is how the
/// [`Context`] stores keys: condition keys are case-insensitive.
pub(crate) fn parse_condition_key(raw: &str) -> Result<String, PolicyError> {
    let lower = raw.to_lowercase();
    let valid = match lower.split_once(':') {
        Some((prefix, name)) => {
            KEY_PREFIXES.contains(&prefix)
                && !name.is_empty()
                && !name.chars().any(|c| c.is_control() || matches!(c, '$' | '{' | '}'))
        }
        None => false,
    };
    if valid { Ok(lower) } else { Err(PolicyError::InvalidConditionKey(raw.to_owned())) }
}

/// Keys whose fixed value makes an Allow-to-everyone statement non-public (see `Policy::is_public`).
const PINNING_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principalorgid",
    "aws:userid",
    "aws:username",
];

/// An IPv4 range must be at least this narrow to count as pinned (AWS treats wider ranges as public).
const PINNING_PREFIX_V4_MIN: u8 = 8;
/// The IPv6 counterpart of [`PINNING_PREFIX_V4_MIN`].
const PINNING_PREFIX_V6_MIN: u8 = 32;

/// How an ordered comparison (numbers, dates) relates the context value to the policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    fn holds(self, context_vs_policy: Option<Ordering>) -> bool {
        let Some(ordering) = context_vs_policy else { return false };
        match self {
            Comparison::Equal => ordering == Ordering::Equal,
            Comparison::Less => ordering == Ordering::Less,
            Comparison::LessOrEqual => ordering != Ordering::Greater,
            Comparison::Greater => ordering == Ordering::Greater,
            Comparison::GreaterOrEqual => ordering != Ordering::Less,
        }
    }
}

/// The positive form of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Comparison),
    Date(Comparison),
    Bool,
    BinaryEquals,
    IpAddress,
    /// ArnEquals and ArnLike behave the same in AWS: field-wise, with wildcards.
    Arn,
    Null,
}

/// Operator names (case-sensitive, as AWS spells them), their positive form and whether negated.
const OPERATORS: &[(&str, Base, bool)] = &[
    ("StringEquals", Base::StringEquals, false),
    ("StringNotEquals", Base::StringEquals, true),
    ("StringEqualsIgnoreCase", Base::StringEqualsIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Base::StringEqualsIgnoreCase, true),
    ("StringLike", Base::StringLike, false),
    ("StringNotLike", Base::StringLike, true),
    ("NumericEquals", Base::Numeric(Comparison::Equal), false),
    ("NumericNotEquals", Base::Numeric(Comparison::Equal), true),
    ("NumericLessThan", Base::Numeric(Comparison::Less), false),
    ("NumericLessThanEquals", Base::Numeric(Comparison::LessOrEqual), false),
    ("NumericGreaterThan", Base::Numeric(Comparison::Greater), false),
    ("NumericGreaterThanEquals", Base::Numeric(Comparison::GreaterOrEqual), false),
    ("DateEquals", Base::Date(Comparison::Equal), false),
    ("DateNotEquals", Base::Date(Comparison::Equal), true),
    ("DateLessThan", Base::Date(Comparison::Less), false),
    ("DateLessThanEquals", Base::Date(Comparison::LessOrEqual), false),
    ("DateGreaterThan", Base::Date(Comparison::Greater), false),
    ("DateGreaterThanEquals", Base::Date(Comparison::GreaterOrEqual), false),
    ("Bool", Base::Bool, false),
    ("BinaryEquals", Base::BinaryEquals, false),
    ("IpAddress", Base::IpAddress, false),
    ("NotIpAddress", Base::IpAddress, true),
    ("ArnEquals", Base::Arn, false),
    ("ArnLike", Base::Arn, false),
    ("ArnNotEquals", Base::Arn, true),
    ("ArnNotLike", Base::Arn, true),
    ("Null", Base::Null, false),
];

/// The set qualifier in front of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantifier {
    /// No prefix.
    Plain,
    ForAnyValue,
    ForAllValues,
}

/// A number from a policy or a request: integers compare exactly, anything else as `f64`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Integer(i128),
    Float(f64),
}

impl Number {
    fn parse(text: &str) -> Option<Number> {
        if let Ok(integer) = text.parse::<i128>() {
            return Some(Number::Integer(integer));
        }
        let float = text.parse::<f64>().ok()?;
        float.is_finite().then_some(Number::Float(float))
    }

    fn as_f64(self) -> f64 {
        match self {
            Number::Integer(integer) => integer as f64,
            Number::Float(float) => float,
        }
    }

    fn compare(self, other: Number) -> Option<Ordering> {
        match (self, other) {
            (Number::Integer(a), Number::Integer(b)) => Some(a.cmp(&b)),
            _ => self.as_f64().partial_cmp(&other.as_f64()),
        }
    }
}

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A date as nanoseconds since the Unix epoch. Accepted: all-digit epoch seconds (optionally
/// negative), RFC 3339, ISO 8601 with or without an offset (none means UTC), and a bare date
/// (midnight UTC).
fn parse_date(text: &str) -> Option<i128> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<i64>().ok().map(|seconds| i128::from(seconds) * NANOS_PER_SECOND);
    }
    if let Ok(moment) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(moment.unix_timestamp_nanos());
    }
    if let Ok(moment) = OffsetDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(moment.unix_timestamp_nanos());
    }
    if let Ok(moment) = PrimitiveDateTime::parse(text, &Iso8601::DEFAULT) {
        return Some(moment.assume_utc().unix_timestamp_nanos());
    }
    let date = Date::parse(text, &Iso8601::DEFAULT).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp_nanos())
}

/// `true`/`false`, any case.
fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// An address range: a network address with its host bits cleared, and the prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// `a.b.c.d/n`, `x::y/n`, or a single address (a full-length prefix). Host bits set in the
    /// written address are ignored, as AWS does.
    fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix_len) = match text.split_once('/') {
            Some((address, len)) if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) => {
                (address.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?))
            }
            Some(_) => return None,
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = prefix_len.unwrap_or(bits);
        if prefix_len > bits {
            return None;
        }
        Some(Cidr { network: mask(address, prefix_len), prefix_len })
    }

    fn contains(&self, address: IpAddr) -> bool {
        // A client reaching a dual-stack listener over IPv4 shows up as ::ffff:a.b.c.d.
        let address = address.to_canonical();
        address.is_ipv4() == self.network.is_ipv4() && mask(address, self.prefix_len) == self.network
    }

    fn is_narrow(&self) -> bool {
        let min = if self.network.is_ipv4() { PINNING_PREFIX_V4_MIN } else { PINNING_PREFIX_V6_MIN };
        self.prefix_len >= min
    }
}

fn mask(address: IpAddr, prefix_len: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = if prefix_len == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix_len))) };
            IpAddr::V4(kept.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = if prefix_len == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix_len))) };
            IpAddr::V6(kept.into())
        }
    }
}

/// The policy values of one condition, already converted for its operator.
#[derive(Debug, Clone, PartialEq)]
enum Values {
    /// String and ARN operators: may contain wildcards and variables.
    Text(Vec<Template>),
    Number(Vec<Number>),
    Date(Vec<i128>),
    Bool(Vec<bool>),
    Binary(Vec<Vec<u8>>),
    Ip(Vec<Cidr>),
    /// `Null`: `true` expects the key absent.
    Null(Vec<bool>),
}

/// One operator applied to one key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    base: Base,
    negated: bool,
    quantifier: Quantifier,
    if_exists: bool,
    /// Lowercased.
    key: String,
    values: Values,
}

impl Condition {
    /// The condition key, lowercased.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

/// Parses a Condition element: `{"Operator": {"key": value | [values], …}, …}`.
pub(crate) fn parse_conditions(block: &Value, variables: bool) -> Result<Vec<Condition>, PolicyError> {
    let wrong_shape = || PolicyError::InvalidFieldType {
        field: "Condition",
        expected: "an object mapping operators to objects of keys and values",
    };
    let operators = block.as_object().ok_or_else(wrong_shape)?;
    let mut conditions = Vec::new();
    for (operator, keys) in operators {
        let (base, negated, quantifier, if_exists) = parse_operator(operator)?;
        let keys = keys.as_object().filter(|keys| !keys.is_empty()).ok_or_else(wrong_shape)?;
        for (key, raw_values) in keys {
            let key = parse_condition_key(key)?;
            let texts = value_texts(operator, raw_values)?;
            let values = convert_values(operator, base, &texts, variables)?;
            conditions.push(Condition { base, negated, quantifier, if_exists, key, values });
        }
    }
    Ok(conditions)
}

fn parse_operator(name: &str) -> Result<(Base, bool, Quantifier, bool), PolicyError> {
    let unknown = || PolicyError::UnknownConditionOperator(name.to_owned());
    let (quantifier, rest) = if let Some(rest) = name.strip_prefix("ForAnyValue:") {
        (Quantifier::ForAnyValue, rest)
    } else if let Some(rest) = name.strip_prefix("ForAllValues:") {
        (Quantifier::ForAllValues, rest)
    } else {
        (Quantifier::Plain, name)
    };
    let (if_exists, rest) = match rest.strip_suffix("IfExists") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let &(_, base, negated) = OPERATORS.iter().find(|(known, _, _)| *known == rest).ok_or_else(unknown)?;
    // Null asks about existence itself, so neither a quantifier nor IfExists means anything there.
    if base == Base::Null && (if_exists || quantifier != Quantifier::Plain) {
        return Err(unknown());
    }
    Ok((base, negated, quantifier, if_exists))
}

/// A condition's value(s) as text: strings as they are, numbers and booleans in JSON spelling.
fn value_texts(operator: &str, raw: &Value) -> Result<Vec<String>, PolicyError> {
    let invalid = || PolicyError::InvalidConditionValue { operator: operator.to_owned(), value: raw.to_string() };
    let scalar = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    };
    match raw {
        Value::Array(items) if !items.is_empty() => items.iter().map(|item| scalar(item).ok_or_else(invalid)).collect(),
        Value::Array(_) => Err(invalid()),
        other => Ok(vec![scalar(other).ok_or_else(invalid)?]),
    }
}

fn convert_values(operator: &str, base: Base, texts: &[String], variables: bool) -> Result<Values, PolicyError> {
    fn each<T>(operator: &str, texts: &[String], convert: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, PolicyError> {
        texts
            .iter()
            .map(|text| {
                convert(text).ok_or_else(|| PolicyError::InvalidConditionValue {
                    operator: operator.to_owned(),
                    value: text.clone(),
                })
            })
            .collect()
    }
    Ok(match base {
        Base::StringEquals | Base::StringEqualsIgnoreCase | Base::StringLike => {
            Values::Text(texts.iter().map(|text| Template::parse(text, variables)).collect::<Result<_, _>>()?)
        }
        Base::Arn => {
            each(operator, texts, |text| {
                (text.starts_with("arn:") && text.split(':').count() >= ARN_FIELDS).then_some(())
            })?;
            Values::Text(texts.iter().map(|text| Template::parse(text, variables)).collect::<Result<_, _>>()?)
        }
        Base::Numeric(_) => Values::Number(each(operator, texts, Number::parse)?),
        Base::Date(_) => Values::Date(each(operator, texts, parse_date)?),
        Base::Bool => Values::Bool(each(operator, texts, parse_bool)?),
        Base::BinaryEquals => {
            Values::Binary(each(operator, texts, |text| base64::engine::general_purpose::STANDARD.decode(text).ok())?)
        }
        Base::IpAddress => Values::Ip(each(operator, texts, Cidr::parse)?),
        Base::Null => Values::Null(each(operator, texts, parse_bool)?),
    })
}

impl Condition {
    /// Whether this condition holds for the request described by `context`.
    pub(crate) fn holds(&self, context: &Context) -> bool {
        let present = context.get(&self.key);
        if let Values::Null(expect_absent) = &self.values {
            let absent = present.is_none();
            return expect_absent.contains(&absent);
        }
        let Some(values) = present else {
            return self.if_exists
                || match self.quantifier {
                    Quantifier::Plain => self.negated,
                    Quantifier::ForAnyValue => false,
                    Quantifier::ForAllValues => true,
                };
        };
        match self.quantifier {
            Quantifier::Plain => values.iter().any(|value| self.matches(value, context)) != self.negated,
            Quantifier::ForAnyValue => values.iter().any(|value| self.matches(value, context) != self.negated),
            Quantifier::ForAllValues => values.iter().all(|value| self.matches(value, context) != self.negated),
        }
    }

    /// The positive comparison: does the context value `value` match any policy value?
    fn matches(&self, value: &str, context: &Context) -> bool {
        match (&self.values, self.base) {
            (Values::Text(templates), Base::StringEquals) => {
                templates.iter().any(|template| template.to_text(context).is_some_and(|text| text == value))
            }
            (Values::Text(templates), Base::StringEqualsIgnoreCase) => {
                let value = value.to_lowercase();
                templates
                    .iter()
                    .any(|template| template.to_text(context).is_some_and(|text| text.to_lowercase() == value))
            }
            (Values::Text(templates), Base::StringLike) => templates
                .iter()
                .any(|template| template.to_pattern(context).is_some_and(|pattern| glob_match(&pattern, value))),
            (Values::Text(templates), _) => templates
                .iter()
                .any(|template| template.to_pattern(context).is_some_and(|pattern| arn_match(&pattern, value))),
            (Values::Number(numbers), Base::Numeric(comparison)) => Number::parse(value)
                .is_some_and(|value| numbers.iter().any(|number| comparison.holds(value.compare(*number)))),
            (Values::Date(dates), Base::Date(comparison)) => {
                parse_date(value).is_some_and(|value| dates.iter().any(|date| comparison.holds(Some(value.cmp(date)))))
            }
            (Values::Bool(flags), _) => parse_bool(value).is_some_and(|value| flags.contains(&value)),
            (Values::Binary(blobs), _) => {
                base64::engine::general_purpose::STANDARD.decode(value).is_ok_and(|value| blobs.contains(&value))
            }
            (Values::Ip(ranges), _) => {
                value.parse::<IpAddr>().is_ok_and(|address| ranges.iter().any(|range| range.contains(address)))
            }
            // Numbers and dates always pair with their own base; Null never gets here.
            (Values::Number(_) | Values::Date(_) | Values::Null(_), _) => false,
        }
    }

    /// Whether this condition restricts its statement to a fixed, known value of one of the keys
    /// that identify *who* or *where from* (source IP, VPC, account, principal, …). That is what
    /// keeps an Allow-to-everyone statement from being "public".
    pub(crate) fn pins_fixed_value(&self) -> bool {
        if !PINNING_KEYS.contains(&self.key.as_str())
            || self.negated
            || self.if_exists
            || self.quantifier == Quantifier::ForAllValues
        {
            return false;
        }
        match (&self.values, self.base) {
            (Values::Text(templates), Base::StringEquals | Base::StringEqualsIgnoreCase) => {
                templates.iter().all(|template| !template.has_variables())
            }
            (Values::Text(templates), Base::StringLike | Base::Arn) => {
                templates.iter().all(|template| !template.has_variables() && !template.has_wildcards())
            }
            (Values::Ip(ranges), _) => ranges.iter().all(Cidr::is_narrow),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dates_parse_in_every_accepted_form() {
        let midnight = 1_767_225_600 * NANOS_PER_SECOND; // 2026-01-01T00:00:00Z
        for text in [
            "2026-01-01",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T01:00:00+01:00",
            "2026-01-01T00:00:00",
            "1767225600",
        ] {
            assert_eq!(parse_date(text), Some(midnight), "{text}");
        }
        for text in ["", "yesterday", "2026-13-01", "-", "2026-01-01T25:00:00Z"] {
            assert_eq!(parse_date(text), None, "{text}");
        }
    }

    #[test]
    fn numbers_compare_integers_exactly_and_mix_with_floats() {
        let big = Number::parse("170141183460469231731687303715884105727").unwrap();
        let smaller = Number::parse("170141183460469231731687303715884105726").unwrap();
        assert_eq!(big.compare(smaller), Some(Ordering::Greater));
        assert_eq!(Number::parse("1.5").unwrap().compare(Number::parse("2").unwrap()), Some(Ordering::Less));
        assert_eq!(Number::parse("2.0").unwrap().compare(Number::parse("2").unwrap()), Some(Ordering::Equal));
        for text in ["", "NaN", "inf", "ten", "1,5"] {
            assert_eq!(Number::parse(text), None, "{text}");
        }
    }

    #[test]
    fn cidrs_contain_what_they_should() {
        let cases = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.1.2.3/8", "10.9.9.9", true),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("10.0.0.0/8", "::ffff:10.1.1.1", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "10.0.0.1", false),
        ];
        for (range, address, expected) in cases {
            let cidr = Cidr::parse(range).unwrap();
            assert_eq!(cidr.contains(address.parse().unwrap()), expected, "{range} ∋ {address}");
        }
        for text in ["10.0.0.0/33", "10.0.0.0/", "10.0.0/8", "::/129", "10.0.0.0/+8", "host"] {
            assert_eq!(Cidr::parse(text), None, "{text}");
        }
    }

    #[test]
    fn condition_keys_need_a_known_prefix() {
        assert_eq!(parse_condition_key("AWS:SourceIp").unwrap(), "aws:sourceip");
        assert_eq!(parse_condition_key("s3:ExistingObjectTag/Team Name").unwrap(), "s3:existingobjecttag/team name");
        for raw in ["SourceIp", "ec2:Region", "aws:", ":x", "aws:a${b}"] {
            assert!(parse_condition_key(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn null_and_quantifiers_reject_meaningless_combinations() {
        for name in ["NullIfExists", "ForAnyValue:Null", "StringEqualz", "stringequals", "ForSomeValues:StringLike"] {
            assert_eq!(parse_operator(name), Err(PolicyError::UnknownConditionOperator(name.to_owned())));
        }
        assert!(parse_operator("ForAllValues:StringNotLikeIfExists").is_ok());
    }
}
