//! The `dapr.proto.runtime.v1.Dapr` methods behind each gRPC API group of the API lists
//! (`name.version`, e.g. `state.v1`), as upstream lists them.

/// Prefix of the methods of the `dapr.proto.runtime` services.
pub const RUNTIME_PREFIX: &str = "/dapr.proto.runtime.";

/// The `Dapr` methods of each gRPC API group (`name.version`), as upstream lists them.
const GRPC_GROUPS: &[(&str, &[&str])] = &[
    ("invoke.v1", &["InvokeService"]),
    (
        "state.v1",
        &[
            "GetState",
            "GetBulkState",
            "SaveState",
            "DeleteState",
            "DeleteBulkState",
            "ExecuteStateTransaction",
        ],
    ),
    ("state.v1alpha1", &["QueryStateAlpha1"]),
    ("publish.v1", &["PublishEvent", "BulkPublishEvent"]),
    ("publish.v1alpha1", &["BulkPublishEventAlpha1"]),
    ("bindings.v1", &["InvokeBinding"]),
    ("secrets.v1", &["GetSecret", "GetBulkSecret"]),
    (
        "actors.v1",
        &[
            "RegisterActorTimer",
            "UnregisterActorTimer",
            "RegisterActorReminder",
            "GetActorReminder",
            "UnregisterActorReminder",
            "UnregisterActorRemindersByType",
            "ListActorReminders",
            "GetActorState",
            "ExecuteActorStateTransaction",
            "InvokeActor",
        ],
    ),
    ("actors.v1alpha1", &["SubscribeActorEventsAlpha1"]),
    ("metadata.v1", &["GetMetadata", "SetMetadata"]),
    (
        "configuration.v1alpha1",
        &[
            "GetConfigurationAlpha1",
            "SubscribeConfigurationAlpha1",
            "UnsubscribeConfigurationAlpha1",
        ],
    ),
    (
        "configuration.v1",
        &[
            "GetConfiguration",
            "SubscribeConfiguration",
            "UnsubscribeConfiguration",
        ],
    ),
    ("lock.v1alpha1", &["TryLockAlpha1"]),
    ("unlock.v1alpha1", &["UnlockAlpha1"]),
    (
        "subtlecrypto.v1alpha1",
        &[
            "SubtleGetKeyAlpha1",
            "SubtleEncryptAlpha1",
            "SubtleDecryptAlpha1",
            "SubtleSignAlpha1",
            "SubtleVerifyAlpha1",
            "SubtleWrapKeyAlpha1",
            "SubtleUnwrapKeyAlpha1",
        ],
    ),
    ("crypto.v1alpha1", &["EncryptAlpha1", "DecryptAlpha1"]),
    (
        "workflows.v1alpha1",
        &[
            "StartWorkflowAlpha1",
            "GetWorkflowAlpha1",
            "TerminateWorkflowAlpha1",
            "RaiseEventWorkflowAlpha1",
            "PurgeWorkflowAlpha1",
            "PauseWorkflowAlpha1",
            "ResumeWorkflowAlpha1",
        ],
    ),
    (
        "workflows.v1beta1",
        &[
            "StartWorkflowBeta1",
            "GetWorkflowBeta1",
            "TerminateWorkflowBeta1",
            "RaiseEventWorkflowBeta1",
            "PurgeWorkflowBeta1",
            "PauseWorkflowBeta1",
            "ResumeWorkflowBeta1",
        ],
    ),
    (
        "jobs.v1alpha1",
        &[
            "ScheduleJobAlpha1",
            "DeleteJobAlpha1",
            "GetJobAlpha1",
            "DeleteJobsByPrefixAlpha1",
            "ListJobsAlpha1",
        ],
    ),
    (
        "jobs.v1",
        &[
            "ScheduleJob",
            "DeleteJob",
            "GetJob",
            "DeleteJobsByPrefix",
            "ListJobs",
        ],
    ),
    ("shutdown.v1", &["Shutdown"]),
    ("subscribe.v1alpha1", &["SubscribeTopicEventsAlpha1"]),
    ("conversation.v1alpha1", &["ConverseAlpha1"]),
    ("conversation.v1alpha2", &["ConverseAlpha2"]),
];

/// The full method paths (`/dapr.proto.runtime.v1.Dapr/GetState`) of group `name`
/// version `version`; none for an unknown group, which upstream ignores.
pub fn methods(name: &str, version: &str) -> impl Iterator<Item = String> {
    let group = format!("{name}.{version}");
    GRPC_GROUPS
        .iter()
        .find(|(candidate, _)| *candidate == group)
        .map(|(_, methods)| *methods)
        .unwrap_or_default()
        .iter()
        .map(|method| format!("{RUNTIME_PREFIX}v1.Dapr/{method}"))
}
