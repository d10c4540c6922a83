//! The wire contracts: our own `.proto` files for every gRPC package Dapr speaks, compiled
//! into prost messages and tonic clients/servers. Package, service, method and message
//! names and field numbers match upstream exactly so that official SDKs and upstream
//! control-plane services interoperate; `cargo xtask proto-check` proves it.
#![allow(missing_docs, clippy::all)]

/// The encoded `google.protobuf.FileDescriptorSet` of every file compiled here, for
/// gRPC reflection and for comparing our contracts with upstream's.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

/// Dapr's own packages, laid out as their protobuf package names (`dapr.proto.*.v1`).
pub mod dapr {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.common.v1");
            }
        }
        pub mod runtime {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.runtime.v1");
            }
        }
        pub mod internals {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.internals.v1");
            }
        }
        pub mod operator {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.operator.v1");
            }
        }
        pub mod placement {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.placement.v1");
            }
        }
        pub mod sentry {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.sentry.v1");
            }
        }
        pub mod scheduler {
            pub mod v1 {
                tonic::include_proto!("dapr.proto.scheduler.v1");
            }
        }
    }
}

/// The `google.rpc` error model (`Status`) that the search and vector messages embed.
pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// The durabletask orchestration protocol workflow SDKs speak (`TaskHubSidecarService`).
/// Its main files have no protobuf package, so they live at this module's root; the
/// backend package nests below it as generated paths expect.
pub mod taskhub {
    include!(concat!(env!("OUT_DIR"), "/_.rs"));

    pub mod durabletask {
        pub mod protos {
            pub mod backend {
                pub mod v1 {
                    tonic::include_proto!("durabletask.protos.backend.v1");
                }
            }
        }
    }
}

/// Short aliases for the packages the runtime uses most.
pub use dapr::proto::{common::v1 as common, internals::v1 as internals, runtime::v1 as runtime};
