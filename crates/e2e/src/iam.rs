//! Users, keys and policies through `bulwark admin … --json`, as an operator
//! sets them up before a test exercises them.

use aws_sdk_s3::Client;

use crate::TestServer;

/// An access key of a user, as `bulwark admin key create` printed it (the
/// only time the secret is shown).
#[derive(Debug, Clone)]
pub struct UserKey {
    pub access_key: String,
    pub secret_key: String,
}

impl TestServer {
    /// Runs `bulwark admin --json <args…>` and parses its answer; panics if the
    /// command fails or prints no JSON.
    pub async fn admin_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let output = self.admin(&all).await;
        output.assert_success();
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|e| panic!("`bulwark admin {}` printed no JSON ({e}): {}", args.join(" "), output.stdout))
    }

    /// Creates user `name` and one access key for it.
    pub async fn create_user(&self, name: &str) -> UserKey {
        self.admin_json(&["user", "create", name]).await;
        let key = self.admin_json(&["key", "create", name]).await;
        UserKey {
            access_key: key["access_key"].as_str().expect("access_key").to_owned(),
            secret_key: key["secret_key"].as_str().expect("secret_key").to_owned(),
        }
    }

    /// Stores the IAM policy `document` as managed policy `name`.
    pub async fn put_policy(&self, name: &str, document: &serde_json::Value) {
        let path = self.scratch_dir().join(format!("{name}.json"));
        std::fs::write(&path, document.to_string()).expect("write the policy file");
        self.admin_json(&["policy", "put", name, path.to_str().expect("utf-8 path")]).await;
    }

    /// Attaches managed policy `policy` to a user (`flag` = `--user`) or a
    /// group (`--group`).
    pub async fn attach_policy(&self, policy: &str, flag: &str, target: &str) {
        self.admin_json(&["policy", "attach", policy, flag, target]).await;
    }

    /// An S3 client signing with a user's key.
    pub fn client_as(&self, key: &UserKey) -> Client {
        self.client_with_credentials(&key.access_key, &key.secret_key)
    }
}
