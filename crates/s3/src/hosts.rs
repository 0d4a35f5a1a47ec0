//! Virtual-hosted-style addressing: `Host: <bucket>.<domain>` names the
//! bucket, as S3's default addressing does, for the domains the server is
//! configured with (`localhost` by default). Any other host (an IP address,
//! the domain itself, a name that is not under a configured domain) leaves
//! the bucket to the path, so path-style requests work on every address.

use std::borrow::Cow;

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The domains under which a host's first label is the bucket.
#[derive(Debug, Clone)]
pub struct VirtualHosts {
    /// Lower case, without a port; the longest first, so `s3.example.com`
    /// wins over `example.com` for `b.s3.example.com`.
    domains: Vec<String>,
}

/// Why a configured domain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{domain:?} is not a domain name (letters, digits, '-' and '.', no port)")]
pub struct InvalidDomain {
    pub domain: String,
}

impl VirtualHosts {
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(domains: I) -> Result<VirtualHosts, InvalidDomain> {
        let mut checked = Vec::new();
        for domain in domains {
            let domain = domain.as_ref().trim_end_matches('.').to_ascii_lowercase();
            let valid = !domain.is_empty()
                && domain.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            // A last label of digits only is an IP address, never a domain.
            let numeric = domain.rsplit('.').next().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()));
            if !valid || numeric {
                return Err(InvalidDomain { domain });
            }
            if !checked.contains(&domain) {
                checked.push(domain);
            }
        }
        checked.sort_by_key(|d| std::cmp::Reverse(d.len()));
        Ok(VirtualHosts { domains: checked })
    }

    /// The domains, longest first.
    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The bucket a `Host` header (with or without a port) names, if it is
    /// `<bucket>.<domain>` for a configured domain.
    pub fn bucket_of_host(&self, host: &str) -> Option<String> {
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        if self.domains.contains(&name) {
            return None; // a configured domain itself is path-style
        }
        self.domains.iter().find_map(|domain| {
            let bucket = name.strip_suffix(domain.as_str())?.strip_suffix('.')?;
            (!bucket.is_empty()).then(|| bucket.to_owned())
        })
    }

    /// The bucket the `Host` header of `headers` names (see [`Self::bucket_of_host`]).
    pub fn bucket_of_headers(&self, headers: &http::HeaderMap) -> Option<String> {
        let host = headers.get(http::header::HOST)?.to_str().ok()?;
        self.bucket_of_host(host)
    }
}

/// `host` without a trailing `:port` (an IPv6 literal keeps its brackets).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl S3Host for VirtualHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of_host(host) {
            Some(bucket) => VirtualHost::new(host).with_bucket(Cow::Owned(bucket)),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_under_a_configured_domain_names_the_bucket_and_any_other_host_leaves_it_to_the_path() {
        let hosts = VirtualHosts::new(["localhost", "S3.Example.com.", "example.com"]).expect("valid domains");
        assert_eq!(hosts.domains(), ["s3.example.com", "example.com", "localhost"], "normalised, longest first");
        for (host, bucket) in [
            ("photos.localhost:9000", Some("photos")),
            ("photos.localhost", Some("photos")),
            ("Photos.LOCALHOST:9000", Some("photos")),
            ("my.dotted.bucket.localhost:9000", Some("my.dotted.bucket")),
            ("logs.s3.example.com", Some("logs")),
            ("logs.example.com:443", Some("logs")),
            ("photos.localhost.:9000", Some("photos")),
            ("localhost:9000", None),
            ("s3.example.com", None),
            ("127.0.0.1:9000", None),
            ("[::1]:9000", None),
            ("[::1]", None),
            ("otherhost:9000", None),
            ("photos.otherlocalhost:9000", None),
            (".localhost", None),
        ] {
            assert_eq!(hosts.bucket_of_host(host).as_deref(), bucket, "{host}");
            let parsed = hosts.parse_host_header(host).expect("every host parses");
            assert_eq!(parsed.bucket(), bucket, "{host}");
        }
    }

    #[test]
    fn domains_that_are_not_domain_names_are_refused() {
        for bad in ["", "localhost:9000", "-bad.example", "a..b", "under_score.example", "bad-.example", "0.0.1", "10"]
        {
            assert!(VirtualHosts::new([bad]).is_err(), "{bad:?} accepted");
        }
        assert!(VirtualHosts::new(Vec::<String>::new()).is_ok(), "no domain: path-style only");
    }
}
