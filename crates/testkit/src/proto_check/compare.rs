//! Comparing two descriptor sets by fully qualified names.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    MethodDescriptorProto, ServiceDescriptorProto,
};

/// How our API differs from the reference at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MismatchKind {
    /// The reference has it; we do not.
    Missing,
    /// Both have it, with a different attribute.
    Different,
    /// We have it; the reference does not (informational for most callers).
    Extra,
}

impl fmt::Display for MismatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "missing",
            Self::Different => "different",
            Self::Extra => "extra",
        })
    }
}

/// One difference between our descriptors and the reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mismatch {
    /// Fully qualified path, e.g. `dapr.proto.runtime.v1.GetStateRequest.key` or
    /// `dapr.proto.runtime.v1.Dapr.GetState`.
    pub path: String,
    /// What differs, e.g. `field missing` or `number: ours 3, reference 2`.
    pub what: String,
    /// The kind of difference.
    pub kind: MismatchKind,
}

impl Mismatch {
    /// Whether this only reports something we have in addition to the reference.
    pub fn is_extra(&self) -> bool {
        self.kind == MismatchKind::Extra
    }

    fn new(kind: MismatchKind, path: impl Into<String>, what: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            what: what.into(),
            kind,
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.kind, self.path, self.what)
    }
}

/// Compares every package of `reference` (or only those in `packages`, when given) with
/// `ours`, returning the differences sorted by path.
pub fn compare(
    ours: &FileDescriptorSet,
    reference: &FileDescriptorSet,
    packages: Option<&[&str]>,
) -> Vec<Mismatch> {
    let selected: BTreeSet<String> = reference
        .file
        .iter()
        .map(|file| file.package().to_owned())
        .filter(|package| packages.is_none_or(|wanted| wanted.contains(&package.as_str())))
        .collect();
    let ours = Index::of(ours, &selected);
    let reference = Index::of(reference, &selected);
    let mut out = Vec::new();
    compare_services(&ours, &reference, &mut out);
    compare_messages(&ours, &reference, &mut out);
    compare_enums(&ours, &reference, &mut out);
    out.sort();
    out
}

/// A message or enum with the full name of the message it is nested in.
struct Entry<'a, T> {
    item: &'a T,
    parent: Option<String>,
}

/// Every service, message and enum of the selected packages, by full name.
#[derive(Default)]
struct Index<'a> {
    services: BTreeMap<String, &'a ServiceDescriptorProto>,
    messages: BTreeMap<String, Entry<'a, DescriptorProto>>,
    enums: BTreeMap<String, Entry<'a, EnumDescriptorProto>>,
}

impl<'a> Index<'a> {
    fn of(set: &'a FileDescriptorSet, packages: &BTreeSet<String>) -> Self {
        let mut index = Self::default();
        for file in set.file.iter().filter(|f| packages.contains(f.package())) {
            let prefix = file.package();
            for service in &file.service {
                index.services.insert(join(prefix, service.name()), service);
            }
            for message in &file.message_type {
                index.add_message(prefix, None, message);
            }
            for enumeration in &file.enum_type {
                index.enums.insert(
                    join(prefix, enumeration.name()),
                    Entry {
                        item: enumeration,
                        parent: None,
                    },
                );
            }
        }
        index
    }

    fn add_message(&mut self, prefix: &str, parent: Option<String>, message: &'a DescriptorProto) {
        let name = join(prefix, message.name());
        for nested in &message.nested_type {
            self.add_message(&name, Some(name.clone()), nested);
        }
        for enumeration in &message.enum_type {
            self.enums.insert(
                join(&name, enumeration.name()),
                Entry {
                    item: enumeration,
                    parent: Some(name.clone()),
                },
            );
        }
        self.messages.insert(
            name,
            Entry {
                item: message,
                parent,
            },
        );
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Reports the entries of `side` that `other` lacks as `kind`, except those nested in a
/// message that `other_messages` lacks too (the report on that message covers them).
fn one_sided<T, U>(
    side: &BTreeMap<String, Entry<'_, T>>,
    other: &BTreeMap<String, Entry<'_, U>>,
    other_messages: &BTreeMap<String, Entry<'_, DescriptorProto>>,
    kind: MismatchKind,
    what: &str,
    out: &mut Vec<Mismatch>,
) {
    for (name, entry) in side {
        let covered_by_parent = entry
            .parent
            .as_ref()
            .is_some_and(|parent| !other_messages.contains_key(parent));
        if !other.contains_key(name) && !covered_by_parent {
            out.push(Mismatch::new(kind, name.clone(), what));
        }
    }
}

fn compare_services(ours: &Index<'_>, reference: &Index<'_>, out: &mut Vec<Mismatch>) {
    for (name, theirs) in &reference.services {
        let Some(mine) = ours.services.get(name) else {
            out.push(Mismatch::new(
                MismatchKind::Missing,
                name.clone(),
                "service missing",
            ));
            continue;
        };
        for method in &theirs.method {
            let path = join(name, method.name());
            match mine.method.iter().find(|m| m.name() == method.name()) {
                None => out.push(Mismatch::new(MismatchKind::Missing, path, "method missing")),
                Some(my_method) => compare_method(&path, my_method, method, out),
            }
        }
        for method in &mine.method {
            if !theirs.method.iter().any(|m| m.name() == method.name()) {
                out.push(Mismatch::new(
                    MismatchKind::Extra,
                    join(name, method.name()),
                    "method not in reference",
                ));
            }
        }
    }
    for name in ours.services.keys() {
        if !reference.services.contains_key(name) {
            out.push(Mismatch::new(
                MismatchKind::Extra,
                name.clone(),
                "service not in reference",
            ));
        }
    }
}

fn compare_method(
    path: &str,
    mine: &MethodDescriptorProto,
    theirs: &MethodDescriptorProto,
    out: &mut Vec<Mismatch>,
) {
    differ(
        path,
        "input type",
        mine.input_type(),
        theirs.input_type(),
        out,
    );
    differ(
        path,
        "output type",
        mine.output_type(),
        theirs.output_type(),
        out,
    );
    differ(
        path,
        "client streaming",
        mine.client_streaming(),
        theirs.client_streaming(),
        out,
    );
    differ(
        path,
        "server streaming",
        mine.server_streaming(),
        theirs.server_streaming(),
        out,
    );
}

fn compare_messages(ours: &Index<'_>, reference: &Index<'_>, out: &mut Vec<Mismatch>) {
    one_sided(
        &reference.messages,
        &ours.messages,
        &ours.messages,
        MismatchKind::Missing,
        "message missing",
        out,
    );
    one_sided(
        &ours.messages,
        &reference.messages,
        &reference.messages,
        MismatchKind::Extra,
        "message not in reference",
        out,
    );
    for (name, theirs) in &reference.messages {
        let Some(mine) = ours.messages.get(name) else {
            continue;
        };
        compare_fields(name, mine.item, theirs.item, out);
    }
}

fn compare_fields(
    message: &str,
    mine: &DescriptorProto,
    theirs: &DescriptorProto,
    out: &mut Vec<Mismatch>,
) {
    for field in &theirs.field {
        let path = join(message, field.name());
        match mine.field.iter().find(|f| f.name() == field.name()) {
            None => out.push(Mismatch::new(
                MismatchKind::Missing,
                path,
                format!("field missing (number {})", field.number()),
            )),
            Some(my_field) => compare_field(&path, (mine, my_field), (theirs, field), out),
        }
    }
    for field in &mine.field {
        if !theirs.field.iter().any(|f| f.name() == field.name()) {
            out.push(Mismatch::new(
                MismatchKind::Extra,
                join(message, field.name()),
                format!("field not in reference (number {})", field.number()),
            ));
        }
    }
}

fn compare_field(
    path: &str,
    (my_message, mine): (&DescriptorProto, &FieldDescriptorProto),
    (their_message, theirs): (&DescriptorProto, &FieldDescriptorProto),
    out: &mut Vec<Mismatch>,
) {
    differ(path, "number", mine.number(), theirs.number(), out);
    differ(path, "type", type_name(mine), type_name(theirs), out);
    differ(path, "label", label_name(mine), label_name(theirs), out);
    differ(path, "type name", mine.type_name(), theirs.type_name(), out);
    differ(
        path,
        "oneof",
        oneof_name(my_message, mine),
        oneof_name(their_message, theirs),
        out,
    );
    differ(
        path,
        "proto3 optional",
        mine.proto3_optional(),
        theirs.proto3_optional(),
        out,
    );
}

fn type_name(field: &FieldDescriptorProto) -> String {
    match field.r#type {
        Some(raw) => Type::try_from(raw)
            .map(|t| t.as_str_name().to_owned())
            .unwrap_or_else(|_| format!("type {raw}")),
        None => "(none)".into(),
    }
}

fn label_name(field: &FieldDescriptorProto) -> String {
    match field.label {
        Some(raw) => Label::try_from(raw)
            .map(|l| l.as_str_name().to_owned())
            .unwrap_or_else(|_| format!("label {raw}")),
        None => "(none)".into(),
    }
}

fn oneof_name(message: &DescriptorProto, field: &FieldDescriptorProto) -> String {
    field
        .oneof_index
        .and_then(|index| usize::try_from(index).ok())
        .and_then(|index| message.oneof_decl.get(index))
        .map(|oneof| oneof.name().to_owned())
        .unwrap_or_else(|| "(none)".into())
}

fn compare_enums(ours: &Index<'_>, reference: &Index<'_>, out: &mut Vec<Mismatch>) {
    one_sided(
        &reference.enums,
        &ours.enums,
        &ours.messages,
        MismatchKind::Missing,
        "enum missing",
        out,
    );
    one_sided(
        &ours.enums,
        &reference.enums,
        &reference.messages,
        MismatchKind::Extra,
        "enum not in reference",
        out,
    );
    for (name, theirs) in &reference.enums {
        let Some(mine) = ours.enums.get(name) else {
            continue;
        };
        for value in &theirs.item.value {
            let path = join(name, value.name());
            match mine.item.value.iter().find(|v| v.name() == value.name()) {
                None => out.push(Mismatch::new(
                    MismatchKind::Missing,
                    path,
                    format!("enum value missing (number {})", value.number()),
                )),
                Some(my_value) => differ(&path, "number", my_value.number(), value.number(), out),
            }
        }
        for value in &mine.item.value {
            if !theirs.item.value.iter().any(|v| v.name() == value.name()) {
                out.push(Mismatch::new(
                    MismatchKind::Extra,
                    join(name, value.name()),
                    format!("enum value not in reference (number {})", value.number()),
                ));
            }
        }
    }
}

/// Records a [`MismatchKind::Different`] when `mine != theirs`.
fn differ<T: PartialEq + fmt::Display>(
    path: &str,
    attribute: &str,
    mine: T,
    theirs: T,
    out: &mut Vec<Mismatch>,
) {
    if mine != theirs {
        out.push(Mismatch::new(
            MismatchKind::Different,
            path,
            format!("{attribute}: ours {mine}, reference {theirs}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{EnumValueDescriptorProto, FileDescriptorProto, OneofDescriptorProto};

    fn field(name: &str, number: i32, kind: Type) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            r#type: Some(kind as i32),
            label: Some(Label::Optional as i32),
            ..Default::default()
        }
    }

    fn message_field(name: &str, number: i32, type_name: &str) -> FieldDescriptorProto {
        FieldDescriptorProto {
            type_name: Some(type_name.into()),
            ..field(name, number, Type::Message)
        }
    }

    fn message(name: &str, fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
        DescriptorProto {
            name: Some(name.into()),
            field: fields,
            ..Default::default()
        }
    }

    fn method(
        name: &str,
        input: &str,
        output: &str,
        server_streaming: bool,
    ) -> MethodDescriptorProto {
        MethodDescriptorProto {
            name: Some(name.into()),
            input_type: Some(input.into()),
            output_type: Some(output.into()),
            client_streaming: Some(false),
            server_streaming: Some(server_streaming),
            ..Default::default()
        }
    }

    fn enumeration(name: &str, values: &[(&str, i32)]) -> EnumDescriptorProto {
        EnumDescriptorProto {
            name: Some(name.into()),
            value: values
                .iter()
                .map(|(value, number)| EnumValueDescriptorProto {
                    name: Some((*value).into()),
                    number: Some(*number),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The reference API: package `demo.v1` in one file.
    fn reference() -> FileDescriptorSet {
        let mut item = message(
            "Item",
            vec![
                field("key", 1, Type::String),
                field("value", 2, Type::Bytes),
                field("etag", 3, Type::String),
                message_field("meta", 4, ".demo.v1.Item.Meta"),
                field("text", 5, Type::String),
                field("blob", 6, Type::Bytes),
            ],
        );
        item.field[4].oneof_index = Some(0);
        item.field[5].oneof_index = Some(0);
        item.oneof_decl.push(OneofDescriptorProto {
            name: Some("payload".into()),
            ..Default::default()
        });
        item.nested_type
            .push(message("Meta", vec![field("owner", 1, Type::String)]));
        item.enum_type
            .push(enumeration("Mode", &[("MODE_A", 0), ("MODE_B", 1)]));
        FileDescriptorSet {
            file: vec![
                FileDescriptorProto {
                    name: Some("demo/v1/items.proto".into()),
                    package: Some("demo.v1".into()),
                    message_type: vec![
                        item,
                        message("GetRequest", vec![field("key", 1, Type::String)]),
                    ],
                    service: vec![ServiceDescriptorProto {
                        name: Some("Store".into()),
                        method: vec![
                            method("Get", ".demo.v1.GetRequest", ".demo.v1.Item", false),
                            method("Watch", ".demo.v1.GetRequest", ".demo.v1.Item", true),
                        ],
                        ..Default::default()
                    }],
                    enum_type: vec![enumeration("Color", &[("RED", 0), ("BLUE", 1)])],
                    ..Default::default()
                },
                FileDescriptorProto {
                    name: Some("other/v1/other.proto".into()),
                    package: Some("other.v1".into()),
                    message_type: vec![message("Lonely", vec![])],
                    ..Default::default()
                },
            ],
        }
    }

    /// The same API split across two files, as our layout might be.
    fn split_copy_of_reference() -> FileDescriptorSet {
        let mut set = reference();
        let mut services_file = set.file[0].clone();
        services_file.name = Some("demo/v1/service.proto".into());
        services_file.message_type.clear();
        services_file.enum_type.clear();
        set.file[0].service.clear();
        set.file.push(services_file);
        set
    }

    fn demo_file(set: &mut FileDescriptorSet) -> &mut FileDescriptorProto {
        &mut set.file[0]
    }

    fn item(set: &mut FileDescriptorSet) -> &mut DescriptorProto {
        &mut demo_file(set).message_type[0]
    }

    fn described(mismatches: &[Mismatch]) -> Vec<String> {
        mismatches.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn identical_apis_in_a_different_file_layout_match() {
        assert_eq!(
            compare(&split_copy_of_reference(), &reference(), None),
            vec![]
        );
    }

    #[test]
    fn missing_field_wrong_number_and_wrong_type_are_reported() {
        let mut ours = reference();
        item(&mut ours).field.retain(|f| f.name() != "etag");
        item(&mut ours).field[0].number = Some(9);
        item(&mut ours).field[1].r#type = Some(Type::String as i32);
        assert_eq!(
            described(&compare(&ours, &reference(), None)),
            vec![
                "missing: demo.v1.Item.etag: field missing (number 3)",
                "different: demo.v1.Item.key: number: ours 9, reference 1",
                "different: demo.v1.Item.value: type: ours TYPE_STRING, reference TYPE_BYTES",
            ]
        );
    }

    #[test]
    fn streaming_flip_and_wrong_method_types_are_reported() {
        let mut ours = split_copy_of_reference();
        let service = &mut ours.file[2].service[0];
        service.method[0].server_streaming = Some(true);
        service.method[1].output_type = Some(".demo.v1.GetRequest".into());
        assert_eq!(
            described(&compare(&ours, &reference(), None)),
            vec![
                "different: demo.v1.Store.Get: server streaming: ours true, reference false",
                "different: demo.v1.Store.Watch: output type: ours .demo.v1.GetRequest, reference .demo.v1.Item",
            ]
        );
    }

    #[test]
    fn extra_message_field_and_method_are_reported_as_extra() {
        let mut ours = reference();
        let mut extra = message("Extra", vec![field("x", 1, Type::Int32)]);
        extra.nested_type.push(message("Inner", vec![]));
        demo_file(&mut ours).message_type.push(extra);
        demo_file(&mut ours).message_type[1]
            .field
            .push(field("consistency", 2, Type::Int32));
        demo_file(&mut ours).service[0].method.push(method(
            "Delete",
            ".demo.v1.GetRequest",
            ".demo.v1.Item",
            false,
        ));
        let mismatches = compare(&ours, &reference(), None);
        assert!(mismatches.iter().all(Mismatch::is_extra));
        assert_eq!(
            described(&mismatches),
            vec![
                "extra: demo.v1.Extra: message not in reference",
                "extra: demo.v1.GetRequest.consistency: field not in reference (number 2)",
                "extra: demo.v1.Store.Delete: method not in reference",
            ]
        );
    }

    #[test]
    fn missing_messages_services_enums_and_nested_types_are_reported_once() {
        let mut ours = reference();
        item(&mut ours).nested_type.clear();
        item(&mut ours).enum_type.clear();
        demo_file(&mut ours).service.clear();
        demo_file(&mut ours).enum_type[0].value[1].number = Some(7);
        demo_file(&mut ours).enum_type[0]
            .value
            .push(EnumValueDescriptorProto {
                name: Some("GREEN".into()),
                number: Some(2),
                ..Default::default()
            });
        // Without Item (and its nested Meta and Mode) only Item itself is reported.
        let mut without_item = reference();
        demo_file(&mut without_item).message_type.remove(0);
        assert_eq!(
            described(&compare(&ours, &reference(), None)),
            vec![
                "different: demo.v1.Color.BLUE: number: ours 7, reference 1",
                "extra: demo.v1.Color.GREEN: enum value not in reference (number 2)",
                "missing: demo.v1.Item.Meta: message missing",
                "missing: demo.v1.Item.Mode: enum missing",
                "missing: demo.v1.Store: service missing",
            ]
        );
        assert_eq!(
            described(&compare(&without_item, &reference(), None)),
            vec!["missing: demo.v1.Item: message missing"]
        );
    }

    #[test]
    fn oneof_label_type_name_and_optional_changes_are_reported() {
        let mut ours = reference();
        let item = item(&mut ours);
        item.oneof_decl[0].name = Some("content".into());
        item.field[2].label = Some(Label::Repeated as i32);
        item.field[3].type_name = Some(".demo.v1.GetRequest".into());
        item.field[0].proto3_optional = Some(true);
        assert_eq!(
            described(&compare(&ours, &reference(), None)),
            vec![
                "different: demo.v1.Item.blob: oneof: ours content, reference payload",
                "different: demo.v1.Item.etag: label: ours LABEL_REPEATED, reference LABEL_OPTIONAL",
                "different: demo.v1.Item.key: proto3 optional: ours true, reference false",
                "different: demo.v1.Item.meta: type name: ours .demo.v1.GetRequest, reference .demo.v1.Item.Meta",
                "different: demo.v1.Item.text: oneof: ours content, reference payload",
            ]
        );
    }

    #[test]
    fn only_selected_packages_are_compared() {
        let mut ours = reference();
        ours.file.truncate(1);
        assert_eq!(
            described(&compare(&ours, &reference(), None)),
            vec!["missing: other.v1.Lonely: message missing"]
        );
        assert_eq!(compare(&ours, &reference(), Some(&["demo.v1"])), vec![]);
    }
}
