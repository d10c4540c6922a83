//! `GetConfiguration` (and `GetConfigurationAlpha1`) over gRPC, by the configuration core.

use dapr_proto::{common, runtime};
use tonic::{Request, Response, Status};

use crate::configuration;
use crate::runtime::Runtime;

/// `GetConfiguration`.
pub async fn get_configuration(
    runtime: &Runtime,
    request: Request<runtime::GetConfigurationRequest>,
) -> Result<Response<runtime::GetConfigurationResponse>, Status> {
    let request = request.into_inner();
    let items = configuration::get(
        runtime,
        &request.store_name,
        &request.keys,
        &request.metadata,
    )
    .await
    .map_err(|error| error.to_status())?;
    Ok(Response::new(runtime::GetConfigurationResponse {
        items: items
            .into_iter()
            .map(|(key, item)| {
                (
                    key,
                    common::ConfigurationItem {
                        value: item.value,
                        version: item.version,
                        metadata: item.metadata,
                    },
                )
            })
            .collect(),
    }))
}
