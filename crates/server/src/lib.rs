//! Composition root: turns a [`Config`] into drives, sets, the object store
//! and the S3 service, and serves it over HTTP until asked to stop.
//!
//! This is the only crate that spawns the listener and reads the
//! environment; everything below it is plain library code.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bulwark_object::{ErasureSet, ObjectStore, SetConfig};
use bulwark_storage::Drive;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

pub mod config;
pub mod credentials;
mod http;
mod metrics;
pub mod root_key;
mod sigv4;
pub mod tls;
pub mod topology;

pub use config::Config;
pub use credentials::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("topology: {0}")]
    Topology(String),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("object store: {0}")]
    Store(#[from] bulwark_object::Error),
    #[error("tls: {0}")]
    Tls(String),
    #[error("identities: {0}")]
    Identities(String),
    #[error("kms: {0}")]
    Kms(String),
}

/// How often offline drive slots are checked for a blank replacement.
const REPLACEMENT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Watches offline slots; a blank directory appearing there is formatted,
/// swapped in, and a scan is started so healing rebuilds it at once.
fn spawn_replacement_monitor(slots: Vec<topology::Slot>, store: Arc<ObjectStore>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(REPLACEMENT_CHECK_INTERVAL).await;
            let mut replaced = false;
            for slot in &slots {
                if !slot.drive.is_online() {
                    replaced |= tokio::task::block_in_place(|| topology::replace_if_blank(slot));
                }
            }
            if replaced {
                let store = store.clone();
                tokio::spawn(async move { store.scan_pass(false, 0, None).await });
            }
        }
    });
}

/// SIGHUP re-reads the TLS certificate and key; open connections stay.
fn spawn_reload_on_sighup(reloader: Arc<tls::TlsReloader>) {
    tokio::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; certificate reload disabled");
            return;
        };
        while hangups.recv().await.is_some() {
            match reloader.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one"),
            }
        }
    });
}

/// A server that has opened its drives and bound its port.
pub struct Server {
    listener: TcpListener,
    service: s3s::service::S3Service,
    store: Arc<ObjectStore>,
    kms: Arc<bulwark_kms::Kms>,
    kms_endpoint: Arc<http::KmsEndpoint>,
    tls: Option<Arc<tls::TlsReloader>>,
    metrics_token: Option<http::MetricsToken>,
    hosts: bulwark_s3::hosts::VirtualHosts,
}

/// The bearer token `GET /metrics` then needs (`Authorization: Bearer …`, as
/// Prometheus sends it from `authorization.credentials_file`); without it the
/// metrics are served to anyone who reaches the port.
pub const ENV_METRICS_TOKEN: &str = "BULWARK_METRICS_TOKEN";

impl Server {
    pub async fn start(
        config: &Config,
        credentials: Credentials,
        root_key: bulwark_crypto::Key32,
    ) -> Result<Server, ServerError> {
        config.validate()?;
        let slots = topology::open_sets(config)?;
        let set_config = SetConfig {
            data: config.erasure.data,
            parity: config.erasure.parity,
            write_quorum: config.write_quorum(),
            strict_facility: config.erasure.strict_facility,
        };
        let sets = slots
            .iter()
            .map(|slots| {
                // Every call on a drive has a deadline: a hung disk fails
                // its part of a request instead of holding the request.
                let drives = slots
                    .iter()
                    .map(|s| {
                        let slot = s.drive.clone() as Arc<dyn bulwark_storage::Drive>;
                        Arc::new(bulwark_storage::timed::TimedDrive::new(slot, config.drive_timeout))
                            as Arc<dyn bulwark_storage::Drive>
                    })
                    .collect();
                ErasureSet::new(drives, set_config.clone())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let store = Arc::new(ObjectStore::open(sets).await?);
        spawn_replacement_monitor(slots.into_iter().flatten().collect(), store.clone());
        let root = bulwark_access::Root {
            access_key: credentials.access_key.clone(),
            secret_key: credentials.secret_key.expose().to_owned(),
        };
        let sealing = bulwark_crypto::derive_key(&root_key, b"iam/secret-keys");
        let identities =
            bulwark_access::Identities::open(store.clone(), sealing, root, bulwark_access::ACCOUNT_ID.into())
                .await
                .map_err(|e| ServerError::Identities(e.to_string()))?;
        let identities = Arc::new(identities);
        let authorizer = Arc::new(bulwark_access::Authorizer::new(identities.clone()));
        // The KMS opens its keystore with the root key; a wrong root key
        // stops the server here rather than orphan every ciphertext.
        let kms_config = bulwark_kms::KmsConfig {
            region: config.region.clone(),
            account: bulwark_access::ACCOUNT_ID.into(),
            audit_path: config.state_dir.join("kms-audit.log"),
            sse_s3_rotation_days: 365,
        };
        let kms = bulwark_kms::Kms::open(store.clone(), &root_key, authorizer.clone(), kms_config)
            .await
            .map_err(|e| ServerError::Kms(e.to_string()))?;
        let kms = Arc::new(kms);
        kms.start_background();
        let kms_endpoint = Arc::new(http::KmsEndpoint {
            kms: kms.clone(),
            identities: identities.clone(),
            region: config.region.clone(),
        });
        let owner = bulwark_s3::Owner { id: credentials.owner_id(), display_name: credentials.access_key.clone() };
        let mut s3 = bulwark_s3::Bulwark::new(store.clone(), owner, config.region.clone());
        s3.set_kms(kms.clone());
        let mut builder = S3ServiceBuilder::new(s3);
        builder.set_auth(bulwark_s3::auth::IamAuth::new(identities.clone()));
        let access = bulwark_s3::access::PolicyAccess::new(authorizer, store.clone());
        let mut admin = bulwark_s3::admin::AdminRoute::new(store.clone(), identities);
        admin.set_kms(kms.clone());
        let encryption =
            bulwark_s3::routes::BucketEncryptionRoute::new(store.clone(), Some(kms.clone()), access.clone());
        builder.set_access(access);
        let hosts = bulwark_s3::hosts::VirtualHosts::new(&config.domains)
            .map_err(|e| ServerError::Config(crate::config::ConfigError::Invalid(format!("domains: {e}"))))?;
        builder.set_host(hosts.clone());
        builder.set_route(bulwark_s3::routes::Routes::new(admin, encryption, hosts.clone()));
        store.start_background(config.healer.clone());
        let service = builder.build();
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(tls::TlsReloader::new(files.clone()).map_err(ServerError::Tls)?)),
            None => None,
        };
        let listener = TcpListener::bind(config.address)
            .await
            .map_err(|source| ServerError::Listen { address: config.address, source })?;
        let metrics_token =
            std::env::var(ENV_METRICS_TOKEN).ok().filter(|t| !t.is_empty()).map(http::MetricsToken::new);
        Ok(Server { listener, service, store, kms, kms_endpoint, tls, metrics_token, hosts })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn store(&self) -> &Arc<ObjectStore> {
        &self.store
    }

    /// The built-in KMS.
    pub fn kms(&self) -> &Arc<bulwark_kms::Kms> {
        &self.kms
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets open
    /// requests finish.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        if let Some(reloader) = &self.tls {
            spawn_reload_on_sighup(reloader.clone());
        }
        let endpoints =
            http::Endpoints { kms: Some(self.kms_endpoint), metrics_token: self.metrics_token, hosts: self.hosts };
        http::serve(self.listener, self.service, self.store, endpoints, self.tls, shutdown).await;
    }
}
