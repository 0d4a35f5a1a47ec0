//! Credentials: who may sign requests. For now the root identity only;
//! issue 7 adds users, keys and policies behind the same trait.

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};
use subtle::ConstantTimeEq;

/// The root identity's access key and secret.
pub struct RootAuth {
    access_key: String,
    secret_key: SecretKey,
}

impl RootAuth {
    pub fn new(access_key: String, secret_key: String) -> RootAuth {
        RootAuth { access_key, secret_key: SecretKey::from(secret_key) }
    }
}

#[async_trait::async_trait]
impl S3Auth for RootAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        // The access key is not secret, but comparing in constant time costs nothing.
        if bool::from(access_key.as_bytes().ct_eq(self.access_key.as_bytes())) {
            Ok(self.secret_key.clone())
        } else {
            Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
        }
    }
}
