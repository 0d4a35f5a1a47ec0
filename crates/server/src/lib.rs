//! Composition root: turns a [`Config`] into drives, sets, the object store
//! and the S3 service, and serves it over HTTP until asked to stop.
//!
//! This is the only crate that spawns the listener and reads the
//! environment; everything below it is plain library code.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bulwark_object::{ErasureSet, ObjectStore, SetConfig};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

pub mod config;
pub mod credentials;
mod http;
mod metrics;
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
}

/// A server that has opened its drives and bound its port.
pub struct Server {
    listener: TcpListener,
    service: s3s::service::S3Service,
    store: Arc<ObjectStore>,
}

impl Server {
    pub async fn start(config: &Config, credentials: Credentials) -> Result<Server, ServerError> {
        config.validate()?;
        let sets = topology::open_sets(config)?;
        let set_config = SetConfig {
            data: config.erasure.data,
            parity: config.erasure.parity,
            write_quorum: config.write_quorum(),
            strict_facility: config.erasure.strict_facility,
        };
        let sets = sets
            .into_iter()
            .map(|drives| ErasureSet::new(drives, set_config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let store = Arc::new(ObjectStore::open(sets).await?);
        let owner = bulwark_s3::Owner { id: credentials.owner_id(), display_name: credentials.access_key.clone() };
        let s3 = bulwark_s3::Bulwark::new(store.clone(), owner, config.region.clone());
        let mut builder = S3ServiceBuilder::new(s3);
        builder.set_auth(bulwark_s3::auth::RootAuth::new(
            credentials.access_key.clone(),
            credentials.secret_key.expose().to_owned(),
        ));
        builder.set_route(bulwark_s3::admin::AdminRoute::new(store.clone(), credentials.access_key.clone()));
        store.start_background(config.healer.clone());
        let service = builder.build();
        let listener = TcpListener::bind(config.address)
            .await
            .map_err(|source| ServerError::Listen { address: config.address, source })?;
        Ok(Server { listener, service, store })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn store(&self) -> &Arc<ObjectStore> {
        &self.store
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets open
    /// requests finish.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        http::serve(self.listener, self.service, self.store, shutdown).await;
    }
}
