//! Wildcard patterns and policy-variable templates.
//!
//! A [`Template`] is a Resource or condition value as written in the policy, cut into literal text,
//! the wildcards `*` and `?`, and (Version 2012-10-17 only) policy variables `${key}` /
//! `${key, 'default'}`. Rendering a template against a request [`Context`] gives either a plain
//! string (for equality operators) or a token pattern (for `Like` operators and Resource), or `None`
//! when a variable has no value — which callers treat as "this value does not match".
//!
//! Why tokens rather than a string with `*` in it: the escapes `${*}` and `${?}` and the *values*
//! of variables must stay literal characters, so "is this `*` a wildcard?" is decided once, when
//! the policy is parsed, and cannot be changed by what a request puts into a variable.
//!
//! [`glob_match`] is the classic greedy matcher that remembers only the last `*`: it runs in
//! O(pattern × text) time and constant space, so a hostile pattern cannot blow up evaluation.

use crate::Context;
use crate::condition::parse_condition_key;
use crate::error::PolicyError;

/// One position of a compiled wildcard pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Exactly this character.
    Char(char),
    /// Any one character (`?`).
    One,
    /// Any run of characters, including none and including `/` and `:` (`*`).
    Many,
}

/// Whether `text` matches `pattern` in full; case-sensitive.
pub(crate) fn glob_match(pattern: &[Tok], text: &str) -> bool {
    // Every token but `*` consumes one character. Refusing patterns with more of those than the
    // text has characters keeps the backtracking below at O((text + stars) × text), however long a
    // policy author made the pattern (say, by repeating a variable whose value the request sets).
    let consuming = pattern.iter().filter(|tok| **tok != Tok::Many).count();
    if consuming > text.chars().count() {
        return false;
    }
    let mut p = 0;
    let mut t = 0;
    // After a mismatch we resume just past the last `*`, letting it swallow one more character.
    let mut star: Option<(usize, usize)> = None;
    loop {
        let next = text[t..].chars().next();
        match (pattern.get(p), next) {
            (Some(Tok::Many), _) => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            (Some(Tok::One), Some(c)) => {
                p += 1;
                t += c.len_utf8();
                continue;
            }
            (Some(Tok::Char(expected)), Some(c)) if *expected == c => {
                p += 1;
                t += c.len_utf8();
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        let Some((star_p, star_t)) = star else { return false };
        let Some(swallowed) = text[star_t..].chars().next() else { return false };
        let resume_t = star_t + swallowed.len_utf8();
        star = Some((star_p, resume_t));
        p = star_p;
        t = resume_t;
    }
}

/// Number of colon-separated fields in an ARN: `arn:partition:service:region:account:resource`.
pub(crate) const ARN_FIELDS: usize = 6;

/// ARN matching as the `Arn*` condition operators do it: field by field, so that a wildcard in one
/// of the first five fields never spans a `:`; the resource field (the rest) may contain colons.
pub(crate) fn arn_match(pattern: &[Tok], text: &str) -> bool {
    let text_fields: Vec<&str> = text.splitn(ARN_FIELDS, ':').collect();
    if text_fields.len() != ARN_FIELDS {
        return false;
    }
    let mut pattern_fields: Vec<&[Tok]> = Vec::with_capacity(ARN_FIELDS);
    let mut rest = pattern;
    while pattern_fields.len() < ARN_FIELDS - 1 {
        let Some(colon) = rest.iter().position(|tok| *tok == Tok::Char(':')) else { return false };
        pattern_fields.push(&rest[..colon]);
        rest = &rest[colon + 1..];
    }
    pattern_fields.push(rest);
    pattern_fields.iter().zip(&text_fields).all(|(pattern, text)| glob_match(pattern, text))
}

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Literal characters (including those written as `${*}`, `${?}`, `${$}`).
    Text(String),
    /// An unescaped `*`.
    Star,
    /// An unescaped `?`.
    Question,
    /// `${key}` or `${key, 'default'}`; `key` is lowercased.
    Variable { key: String, default: Option<String> },
}

/// A Resource or string condition value with its wildcards and variables resolved at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `raw`; with `variables` false (Version 2008-10-17) `${...}` is plain text.
    pub(crate) fn parse(raw: &str, variables: bool) -> Result<Self, PolicyError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = raw;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let Some(end) = rest.find('}') else { return Err(PolicyError::InvalidVariable(raw.to_owned())) };
                let inner = &rest[2..end];
                rest = &rest[end + 1..];
                match inner {
                    "*" | "?" | "$" => text.push_str(inner),
                    _ => {
                        flush_text(&mut text, &mut parts);
                        parts.push(parse_variable(inner).ok_or_else(|| PolicyError::InvalidVariable(raw.to_owned()))?);
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' => {
                    flush_text(&mut text, &mut parts);
                    parts.push(Part::Star);
                }
                '?' => {
                    flush_text(&mut text, &mut parts);
                    parts.push(Part::Question);
                }
                _ => text.push(c),
            }
        }
        flush_text(&mut text, &mut parts);
        Ok(Template { parts })
    }

    /// The template that matches everything: a single `*`.
    pub(crate) fn any() -> Self {
        Template { parts: vec![Part::Star] }
    }

    pub(crate) fn has_variables(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Part::Variable { .. }))
    }

    pub(crate) fn has_wildcards(&self) -> bool {
        self.parts.iter().any(|part| matches!(part, Part::Star | Part::Question))
    }

    /// The template as a wildcard pattern for this request; `None` when a variable has no value.
    pub(crate) fn to_pattern(&self, context: &Context) -> Option<Vec<Tok>> {
        let mut pattern = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => pattern.extend(text.chars().map(Tok::Char)),
                Part::Star => pattern.push(Tok::Many),
                Part::Question => pattern.push(Tok::One),
                Part::Variable { key, default } => {
                    pattern.extend(resolve(context, key, default.as_deref())?.chars().map(Tok::Char));
                }
            }
        }
        Some(pattern)
    }

    /// The template as plain text for this request (`*` and `?` are ordinary characters here);
    /// `None` when a variable has no value.
    pub(crate) fn to_text(&self, context: &Context) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Star => out.push('*'),
                Part::Question => out.push('?'),
                Part::Variable { key, default } => out.push_str(resolve(context, key, default.as_deref())?),
            }
        }
        Some(out)
    }
}

fn flush_text(text: &mut String, parts: &mut Vec<Part>) {
    if !text.is_empty() {
        parts.push(Part::Text(std::mem::take(text)));
    }
}

/// `key` or `key, 'default'` (the text between `${` and `}`).
fn parse_variable(inner: &str) -> Option<Part> {
    let (key, default) = match inner.split_once(',') {
        None => (inner.trim(), None),
        Some((key, default)) => {
            let quoted = default.trim();
            let unquoted = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
            (key.trim(), Some(unquoted.to_owned()))
        }
    };
    let key = parse_condition_key(key).ok()?;
    Some(Part::Variable { key, default })
}

/// A variable's value: the key's single value, else the default. A multi-valued key has no single
/// value to substitute, so it resolves to nothing (the default is for *absent* keys only).
fn resolve<'a>(context: &'a Context, key: &str, default: Option<&'a str>) -> Option<&'a str> {
    match context.get(key) {
        Some([value]) => Some(value),
        Some(_) => None,
        None => default,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pattern(raw: &str) -> Vec<Tok> {
        Template::parse(raw, false).unwrap().to_pattern(&Context::new()).unwrap()
    }

    #[test]
    fn glob_matches_like_aws_wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("a*", "a", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("?", "é", true),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("bucket/*", "bucket/dir/key", true),
            ("bucket/*", "bucket", false),
            ("Bucket/*", "bucket/x", false),
            ("", "", true),
            ("", "x", false),
        ];
        for (raw, text, expected) in cases {
            assert_eq!(glob_match(&pattern(raw), text), expected, "{raw:?} vs {text:?}");
        }
    }

    #[test]
    fn arn_match_keeps_wildcards_inside_a_field() {
        let cases = [
            ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a:b", true),
            ("arn:aws:iam::*:user/*", "arn:aws:iam::123456789012:user/alice", true),
            ("arn:aws:iam::*", "arn:aws:iam::123:user/alice", false),
            ("arn:*:iam::123:root", "arn:aws:iam::123:root", true),
            ("arn:aws:iam::123:root", "not-an-arn", false),
        ];
        for (raw, text, expected) in cases {
            assert_eq!(arn_match(&pattern(raw), text), expected, "{raw:?} vs {text:?}");
        }
    }

    #[test]
    fn escapes_and_variable_values_stay_literal() {
        let mut context = Context::new();
        context.insert("aws:username", "a*");
        let template = Template::parse("x/${aws:username}/${*}${?}${$}*", true).unwrap();
        let pattern = template.to_pattern(&context).unwrap();
        assert!(glob_match(&pattern, "x/a*/*?$anything"));
        assert!(!glob_match(&pattern, "x/ab/*?$anything"));
        assert!(!glob_match(&pattern, "x/a*/ab$"));
        assert_eq!(template.to_text(&context).unwrap(), "x/a*/*?$*");
    }

    #[test]
    fn variables_resolve_to_value_default_or_nothing() {
        let mut context = Context::new();
        let template = Template::parse("${aws:userid, 'nobody'}-${s3:prefix}", true).unwrap();
        assert_eq!(template.to_text(&context), None);
        context.insert("S3:Prefix", "p");
        assert_eq!(template.to_text(&context).unwrap(), "nobody-p");
        context.insert_many("aws:userid", vec!["a".into(), "b".into()]);
        assert_eq!(template.to_text(&context), None);
    }

    #[test]
    fn old_version_keeps_dollar_braces_as_text() {
        let template = Template::parse("${aws:username}", false).unwrap();
        assert!(!template.has_variables());
        assert_eq!(template.to_text(&Context::new()).unwrap(), "${aws:username}");
    }

    #[test]
    fn malformed_variables_are_refused() {
        for raw in ["${aws:username", "${}", "${nokey}", "${aws:username, nobody}", "${aws:username, 'x}"] {
            assert!(Template::parse(raw, true).is_err(), "{raw:?}");
        }
    }
}
