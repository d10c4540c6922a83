//! Every test multicasts on the loopback interface only (`interface: lo`).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::json;
use simple_dns::rdata::{A, PTR, RData, SRV, TXT};
use simple_dns::{CLASS, Name, Packet, PacketFlag, ResourceRecord};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::time::Instant;

use super::*;
use crate::nameresolution::build;

fn loopback() -> MdnsConfig {
    MdnsConfig {
        interfaces: vec!["lo".into()],
    }
}

fn instance(app_id: &str, port: u16) -> Instance {
    Instance {
        app_id: app_id.into(),
        host_address: "127.0.0.1".into(),
        internal_grpc_port: port,
        ..Instance::default()
    }
}

fn request(app_id: &str) -> ResolveRequest {
    ResolveRequest {
        app_id: app_id.into(),
        namespace: String::new(),
        port: 50001,
    }
}

async fn start(app_id: &str, port: u16) -> MdnsResolver {
    MdnsResolver::start(loopback(), instance(app_id, port))
        .await
        .unwrap()
}

/// A plain UDP socket in the mDNS group on loopback, standing in for an upstream sidecar.
fn loopback_peer_socket(port: u16) -> tokio::net::UdpSocket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket
        .bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
        .unwrap();
    socket.set_multicast_all_v4(false).unwrap();
    socket
        .join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 251), &Ipv4Addr::LOCALHOST)
        .unwrap();
    socket.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    socket.set_nonblocking(true).unwrap();
    tokio::net::UdpSocket::from_std(socket.into()).unwrap()
}

fn group() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(224, 0, 0, 251), 5353))
}

#[tokio::test]
async fn two_instances_on_loopback_resolve_each_other() {
    let orders = start("mdns-orders", 50101).await;
    let payments = start("mdns-payments", 50102).await;

    assert_eq!(
        orders.resolve(&request("mdns-payments")).await.unwrap(),
        "127.0.0.1:50102"
    );
    assert_eq!(
        payments.resolve(&request("mdns-orders")).await.unwrap(),
        "127.0.0.1:50101"
    );
    assert_eq!(
        orders.resolve(&request("mdns-orders")).await.unwrap(),
        "127.0.0.1:50101"
    );

    orders.close().await.unwrap();
    payments.close().await.unwrap();
}

#[tokio::test]
async fn several_instances_of_an_app_are_used_in_turn() {
    let first = start("mdns-inventory", 50111).await;
    let second = start("mdns-inventory", 50112).await;
    let client = start("mdns-client", 50113).await;

    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "only saw {seen:?}");
        seen.insert(client.resolve(&request("mdns-inventory")).await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen,
        HashSet::from(["127.0.0.1:50111".to_owned(), "127.0.0.1:50112".to_owned()])
    );
    for resolver in [first, second, client] {
        resolver.close().await.unwrap();
    }
}

#[tokio::test]
async fn close_withdraws_the_instance_at_once() {
    let orders = start("mdns-withdraw-orders", 50121).await;
    let payments = start("mdns-withdraw-payments", 50122).await;
    assert_eq!(
        orders
            .resolve(&request("mdns-withdraw-payments"))
            .await
            .unwrap(),
        "127.0.0.1:50122"
    );

    payments.close().await.unwrap();
    payments.close().await.unwrap();
    // The goodbye (TTL 0) empties the cache: the next lookup browses and finds nobody.
    let started = Instant::now();
    let error = loop {
        match orders.resolve(&request("mdns-withdraw-payments")).await {
            Err(error) => break error,
            Ok(_) => {
                assert!(
                    started.elapsed() < Duration::from_secs(3),
                    "still resolvable after close"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(
        error.to_string(),
        "couldn't find service: mdns-withdraw-payments"
    );
    assert_eq!(
        payments
            .resolve(&request("mdns-withdraw-orders"))
            .await
            .unwrap_err(),
        ResolveError::Closed { component: "mdns" }
    );
    orders.close().await.unwrap();
}

#[tokio::test]
async fn unknown_apps_fail_after_the_browse_timeout() {
    let orders = start("mdns-lonely", 50131).await;
    let started = Instant::now();
    let error = orders.resolve(&request("mdns-nobody")).await.unwrap_err();
    assert_eq!(
        error,
        ResolveError::ServiceNotFound {
            app_id: "mdns-nobody".into()
        }
    );
    assert_eq!(error.app_id(), Some("mdns-nobody"));
    assert!(started.elapsed() >= BROWSE_TIMEOUT);
    orders.close().await.unwrap();
}

#[tokio::test]
async fn a_zeroconf_style_browser_reads_our_answer() {
    let orders = start("mdns-wire-orders", 50141).await;
    // Upstream's browser: a PTR question for "<app-id>.local." from port 5353, answered to
    // the group. This one asks from another port, so the answer comes back by unicast.
    let browser = loopback_peer_socket(0);
    let mut query = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["mdns-wire-orders", "local"] {
        query.push(u8::try_from(label.len()).unwrap());
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 12, 0, 1]);
    browser.send_to(&query, group()).await.unwrap();

    let mut buffer = vec![0u8; 9000];
    let (length, _) = tokio::time::timeout(Duration::from_secs(2), browser.recv_from(&mut buffer))
        .await
        .expect("no answer")
        .unwrap();
    let answer = Packet::parse(&buffer[..length]).unwrap();
    assert!(answer.has_flags(PacketFlag::RESPONSE));
    let RData::PTR(PTR(instance)) = &answer.answers[0].rdata else {
        panic!("first answer is not a PTR")
    };
    assert_eq!(answer.answers[0].name.to_string(), "mdns-wire-orders.local");
    let instance = instance.to_string();
    // "<host>:<pid>" (with "-<n>" for later resolvers of this process).
    let label = instance.strip_suffix(".mdns-wire-orders.local").unwrap();
    let pid = std::process::id().to_string();
    let (_, after_host) = label.split_once(':').unwrap();
    assert_eq!(
        after_host.split('-').next(),
        Some(pid.as_str()),
        "{instance}"
    );
    let mut port = None;
    let mut txt = None;
    let mut address = None;
    for record in &answer.additional_records {
        match &record.rdata {
            RData::SRV(srv) => port = Some(srv.port),
            RData::TXT(text) => txt = text.iter_raw().next().map(|(key, _)| key.to_vec()),
            RData::A(a) => address = Some(Ipv4Addr::from(a.address)),
            _ => {}
        }
    }
    assert_eq!(port, Some(50141));
    assert_eq!(txt.as_deref(), Some(b"mdns-wire-orders".as_slice()));
    assert_eq!(address, Some(Ipv4Addr::LOCALHOST));
    orders.close().await.unwrap();
}

#[tokio::test]
async fn answers_in_upstreams_layout_resolve() {
    let client = start("mdns-wire-client", 50151).await;
    // A responder that answers like upstream's zeroconf: PTR as the answer, SRV, TXT and
    // A as additional records, sent to the group from port 5353.
    let responder = loopback_peer_socket(5353);
    let responding = tokio::spawn(async move {
        let mut buffer = vec![0u8; 9000];
        loop {
            let (length, _) = responder.recv_from(&mut buffer).await.unwrap();
            let Ok(query) = Packet::parse(&buffer[..length]) else {
                continue;
            };
            let asked = query
                .questions
                .iter()
                .any(|question| question.qname.to_string() == "mdns-upstream-app.local");
            if query.has_flags(PacketFlag::RESPONSE) || !asked {
                continue;
            }
            let service = Name::new_unchecked("mdns-upstream-app.local");
            let instance = Name::new_unchecked("otherhost:999.mdns-upstream-app.local");
            let host = Name::new_unchecked("otherhost.local");
            let mut reply = Packet::new_reply(0);
            reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
            reply.answers.push(ResourceRecord::new(
                service,
                CLASS::IN,
                3200,
                RData::PTR(PTR(instance.clone())),
            ));
            let srv = SRV {
                priority: 0,
                weight: 0,
                port: 50199,
                target: host.clone(),
            };
            reply.additional_records.push(ResourceRecord::new(
                instance.clone(),
                CLASS::IN,
                3200,
                RData::SRV(srv),
            ));
            let txt = TXT::new().with_string("mdns-upstream-app").unwrap();
            reply.additional_records.push(ResourceRecord::new(
                instance,
                CLASS::IN,
                3200,
                RData::TXT(txt),
            ));
            let a = A {
                address: Ipv4Addr::LOCALHOST.into(),
            };
            reply
                .additional_records
                .push(ResourceRecord::new(host, CLASS::IN, 120, RData::A(a)));
            let bytes = reply.build_bytes_vec_compressed().unwrap();
            responder.send_to(&bytes, group()).await.unwrap();
        }
    });

    assert_eq!(
        client.resolve(&request("mdns-upstream-app")).await.unwrap(),
        "127.0.0.1:50199"
    );
    responding.abort();
    client.close().await.unwrap();
}

#[tokio::test]
async fn build_uses_the_interface_setting() {
    let resolver = build(
        "mdns",
        "v1",
        &json!({"interface": "lo"}),
        instance("mdns-built", 50161),
    )
    .await
    .unwrap();
    assert_eq!(resolver.component(), "mdns");
    assert_eq!(
        resolver.resolve(&request("mdns-built")).await.unwrap(),
        "127.0.0.1:50161"
    );
    resolver.close().await.unwrap();
}

#[test]
fn interface_setting_wins_over_the_environment() {
    let config =
        MdnsConfig::from_json_or(&json!({"interface": "lo, eth1"}), Some("eth0".into())).unwrap();
    assert_eq!(config.interfaces, vec!["lo".to_owned(), "eth1".to_owned()]);
    let config = MdnsConfig::from_json_or(&json!(null), Some("lo".into())).unwrap();
    assert_eq!(config.interfaces, vec!["lo".to_owned()]);
    let config = MdnsConfig::from_json_or(&json!({"interface": ""}), None).unwrap();
    assert!(config.interfaces.is_empty());
}

#[test]
fn named_interfaces_map_to_their_ipv4_address() {
    assert_eq!(
        loopback().interface_addresses().unwrap(),
        vec![Ipv4Addr::LOCALHOST]
    );
    let error = MdnsConfig {
        interfaces: vec!["no-such-if0".into()],
    }
    .interface_addresses()
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "name resolver mdns: invalid configuration: network interface \"no-such-if0\" not found or has no IPv4 address"
    );
}

#[tokio::test]
async fn bad_instances_and_settings_are_clear_errors() {
    let error = MdnsResolver::start(
        loopback(),
        Instance {
            host_address: "sidecar.example".into(),
            ..instance("a", 1)
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(
        error.to_string(),
        "name resolver mdns: host address \"sidecar.example\" is not an IP address"
    );
    let long_id = "x".repeat(64);
    let error = MdnsResolver::start(loopback(), instance(&long_id, 1))
        .await
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("cannot be used as a DNS label"),
        "{error}"
    );
    let error = MdnsConfig::from_json(&json!({"interface": ["lo"]})).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("value of 'interface' must be a string"),
        "{error}"
    );
}
