//! Credentials: who may sign requests. The root identity and every active
//! access key of an enabled user (see `bulwark_access::Identities`); a
//! disabled or deleted key is unknown from the next request on, which also
//! revokes the presigned URLs it signed.

use std::sync::Arc;

use bulwark_access::Identities;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

pub struct IamAuth {
    identities: Arc<Identities>,
}

impl IamAuth {
    pub fn new(identities: Arc<Identities>) -> IamAuth {
        IamAuth { identities }
    }
}

#[async_trait::async_trait]
impl S3Auth for IamAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.identities.secret_for(access_key) {
            Some((secret, _)) => Ok(SecretKey::from(secret)),
            None => {
                Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided does not exist in our records."))
            }
        }
    }
}
