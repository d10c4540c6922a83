//! What every Dapr resource kind has in common: its identity as a Kubernetes
//! custom resource (group `dapr.io`), its name and its app scopes.

use k8s_openapi::NamespaceResourceScope;

/// API group of every Dapr custom resource.
pub const GROUP: &str = "dapr.io";

/// Behaviour shared by every Dapr resource kind.
///
/// The [`kube::Resource`] supertrait gives the kind, API version and plural
/// (`Component::kind(&())`, ...) and access to `metadata`, so these types work
/// with `kube::Api` when a client is available.
pub trait DaprResource: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope> {
    /// `metadata.name`, or `""` when it is not set.
    fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// App IDs this resource is restricted to; empty means every app.
    fn scopes(&self) -> &[String];

    /// Whether the app `app_id` may use this resource: true when the scopes
    /// are empty or list `app_id`.
    fn is_in_scope(&self, app_id: &str) -> bool {
        let scopes = self.scopes();
        scopes.is_empty() || scopes.iter().any(|scope| scope == app_id)
    }
}

/// Implements [`kube::Resource`], `Default` (with `apiVersion` and `kind`
/// filled in) and a `new(name, spec)` constructor for a root resource type
/// whose fields are `api_version`, `kind`, `metadata`, `spec` and the fields
/// listed in `extra`.
macro_rules! dapr_custom_resource {
    (
        $ty:ident,
        $spec:ty,
        version = $version:literal,
        kind = $kind:literal,
        plural = $plural:literal,
        extra = [$($extra:ident),*]
    ) => {
        impl $ty {
            /// `apiVersion` of this kind.
            pub const API_VERSION: &'static str = concat!("dapr.io/", $version);
            /// `kind` of this kind.
            pub const KIND: &'static str = $kind;

            /// A resource with the given name and spec and every other field empty.
            pub fn new(name: &str, spec: $spec) -> Self {
                Self {
                    metadata: ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.to_owned()),
                        ..Default::default()
                    },
                    spec,
                    ..Default::default()
                }
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self {
                    api_version: Self::API_VERSION.to_owned(),
                    kind: Self::KIND.to_owned(),
                    metadata: Default::default(),
                    spec: Default::default(),
                    $($extra: Default::default(),)*
                }
            }
        }

        impl ::kube::Resource for $ty {
            type DynamicType = ();
            type Scope = ::k8s_openapi::NamespaceResourceScope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                $kind.into()
            }

            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                $crate::resource::GROUP.into()
            }

            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                $version.into()
            }

            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                $plural.into()
            }

            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }

            fn meta_mut(
                &mut self,
            ) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

pub(crate) use dapr_custom_resource;
