//! The DNS-SD records a Dapr sidecar publishes over mDNS, and reading them back, with
//! upstream's naming (which comes from the Go `zeroconf` library it uses):
//!
//! - service: `<app-id>.local.` (the app id itself is the service type);
//! - instance: `<host>:<pid>.<app-id>.local.`;
//! - PTR `<app-id>.local.` -> instance, SRV instance -> `<host>.local.`:`<internal gRPC
//!   port>`, TXT instance = one string, the app id; A/AAAA `<host>.local.` -> the
//!   sidecar's address; PTR `_services._dns-sd._udp.local.` -> the service;
//! - TTL 3200s, 120s for A/AAAA; a TTL of 0 withdraws the instance ("goodbye").
//!
//! An answer counts only when its TXT's first string is the app id, as upstream checks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use simple_dns::rdata::{A, AAAA, PTR, RData, SRV, TXT};
use simple_dns::{CLASS, Label, Name, Packet, PacketFlag, QTYPE, Question, ResourceRecord, TYPE};

/// The mDNS domain.
const DOMAIN: &str = "local";
/// TTL of the PTR, SRV and TXT records (upstream's).
const SERVICE_TTL: u32 = 3200;
/// TTL of the A/AAAA records (upstream's, as RFC 6762 recommends).
const ADDRESS_TTL: u32 = 120;
/// The standard mDNS port, also the source port of every multicast message.
pub(super) const MDNS_PORT: u16 = 5353;

/// Why a name could not be used in a DNS record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NameError {
    /// A label is empty or longer than 63 bytes.
    #[error("{0:?} cannot be used as a DNS label (1 to 63 bytes)")]
    BadLabel(String),
    /// The message could not be encoded.
    #[error("failed to encode an mDNS message: {0}")]
    Encode(String),
}

/// Builds a name from raw labels (no escaping: `host:123` stays one label).
fn name(labels: &[&str]) -> Result<Name<'static>, NameError> {
    let labels = labels
        .iter()
        .map(|label| {
            if label.is_empty() || label.len() > 63 {
                Err(NameError::BadLabel((*label).to_owned()))
            } else {
                Ok(Label::new_unchecked(label.as_bytes().to_vec()))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Name::new_with_labels(&labels))
}

fn encode(packet: &Packet<'_>) -> Result<Vec<u8>, NameError> {
    packet
        .build_bytes_vec_compressed()
        .map_err(|error| NameError::Encode(error.to_string()))
}

/// The PTR query for an app id's instances, as upstream's browser sends it.
pub(super) fn browse_query(app_id: &str) -> Result<Vec<u8>, NameError> {
    let mut packet = Packet::new_query(0);
    packet.questions.push(Question::new(
        name(&[app_id, DOMAIN])?,
        TYPE::PTR.into(),
        CLASS::IN.into(),
        false,
    ));
    encode(&packet)
}

/// This sidecar's published records.
#[derive(Debug, Clone)]
pub(super) struct Announcement {
    app_id: String,
    service: Name<'static>,
    instance: Name<'static>,
    host: Name<'static>,
    services_meta: Name<'static>,
    port: u16,
    address: IpAddr,
}

/// A reply to a query and where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reply {
    /// The encoded message.
    pub message: Vec<u8>,
    /// Send to the querier's address instead of the multicast group.
    pub unicast: bool,
}

impl Announcement {
    /// Records for `app_id` served by instance `instance_label` on host `host_label` at
    /// `address:port`.
    pub fn new(
        app_id: &str,
        instance_label: &str,
        host_label: &str,
        address: IpAddr,
        port: u16,
    ) -> Result<Self, NameError> {
        Ok(Self {
            app_id: app_id.to_owned(),
            service: name(&[app_id, DOMAIN])?,
            instance: name(&[instance_label, app_id, DOMAIN])?,
            host: name(&[host_label, DOMAIN])?,
            services_meta: name(&["_services", "_dns-sd", "_udp", DOMAIN])?,
            port,
            address,
        })
    }

    fn record(
        &self,
        owner: &Name<'static>,
        ttl: u32,
        flush: bool,
        rdata: RData<'static>,
    ) -> ResourceRecord<'static> {
        ResourceRecord::new(owner.clone(), CLASS::IN, ttl, rdata).with_cache_flush(flush)
    }

    fn ptr(&self, ttl: u32) -> ResourceRecord<'static> {
        self.record(
            &self.service,
            ttl,
            false,
            RData::PTR(PTR(self.instance.clone())),
        )
    }

    fn services_ptr(&self, ttl: u32) -> ResourceRecord<'static> {
        self.record(
            &self.services_meta,
            ttl,
            false,
            RData::PTR(PTR(self.service.clone())),
        )
    }

    fn srv(&self, ttl: u32, flush: bool) -> ResourceRecord<'static> {
        let srv = SRV {
            priority: 0,
            weight: 0,
            port: self.port,
            target: self.host.clone(),
        };
        self.record(&self.instance, ttl, flush, RData::SRV(srv))
    }

    fn txt(&self, ttl: u32, flush: bool) -> ResourceRecord<'static> {
        let mut txt = TXT::new();
        if let Ok(app_id) = self.app_id.as_str().try_into() {
            txt.add_char_string(app_id);
        }
        self.record(&self.instance, ttl, flush, RData::TXT(txt.into_owned()))
    }

    fn address_record(&self, ttl: u32, flush: bool) -> ResourceRecord<'static> {
        let ttl = ttl.min(ADDRESS_TTL);
        let rdata = match self.address {
            IpAddr::V4(address) => RData::A(A {
                address: address.into(),
            }),
            IpAddr::V6(address) => RData::AAAA(AAAA {
                address: address.into(),
            }),
        };
        self.record(&self.host, ttl, flush, rdata)
    }

    /// The full record set, sent unasked at start (`withdraw: false`) and with TTL 0 on
    /// close (`withdraw: true`).
    pub fn unsolicited(&self, withdraw: bool) -> Result<Vec<u8>, NameError> {
        let ttl = if withdraw { 0 } else { SERVICE_TTL };
        let mut packet = Packet::new_reply(0);
        packet.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
        packet.answers = vec![
            self.srv(ttl, true),
            self.txt(ttl, true),
            self.ptr(ttl),
            self.services_ptr(ttl),
            self.address_record(ttl, true),
        ];
        encode(&packet)
    }

    /// The reply to a query received from `from`, if it asks about this instance.
    /// Browsing (PTR for the service) gets the PTR with SRV, TXT and address as additional
    /// records; a lookup of the instance name gets everything as answers; the DNS-SD
    /// service enumeration gets the service. Probes (queries with authority records) and
    /// PTR questions that already list this instance with enough TTL get nothing.
    pub fn reply_to(
        &self,
        query: &Packet<'_>,
        from: SocketAddr,
    ) -> Result<Option<Reply>, NameError> {
        if query.has_flags(PacketFlag::RESPONSE) || !query.name_servers.is_empty() {
            return Ok(None);
        }
        let mut answers = Vec::new();
        let mut additional = Vec::new();
        let mut unicast = from.port() != MDNS_PORT;
        for question in &query.questions {
            let asks_ptr = matches!(question.qtype, QTYPE::ANY | QTYPE::TYPE(TYPE::PTR));
            let before = answers.len();
            if question.qname == self.service && asks_ptr {
                if !self.known_answer(query) {
                    answers.push(self.ptr(SERVICE_TTL));
                    additional.extend([self.srv(SERVICE_TTL, false), self.txt(SERVICE_TTL, false)]);
                    additional.push(self.address_record(SERVICE_TTL, false));
                }
            } else if question.qname == self.instance {
                answers.extend([
                    self.srv(SERVICE_TTL, false),
                    self.txt(SERVICE_TTL, false),
                    self.ptr(SERVICE_TTL),
                    self.services_ptr(SERVICE_TTL),
                    self.address_record(SERVICE_TTL, false),
                ]);
            } else if question.qname == self.services_meta && asks_ptr {
                answers.push(self.services_ptr(SERVICE_TTL));
            }
            if answers.len() > before && question.unicast_response {
                unicast = true;
            }
        }
        if answers.is_empty() {
            return Ok(None);
        }
        let legacy = from.port() != MDNS_PORT;
        let mut packet = Packet::new_reply(if legacy { query.id() } else { 0 });
        packet.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
        if legacy {
            packet.questions = query
                .questions
                .iter()
                .map(|question| question.clone().into_owned())
                .collect();
        }
        packet.answers = answers;
        packet.additional_records = additional;
        Ok(Some(Reply {
            message: encode(&packet)?,
            unicast,
        }))
    }

    /// RFC 6762 known-answer suppression for the PTR, as upstream does it.
    fn known_answer(&self, query: &Packet<'_>) -> bool {
        query.answers.iter().any(|known| {
            known.name == self.service
                && known.ttl >= SERVICE_TTL / 2
                && matches!(&known.rdata, RData::PTR(PTR(target)) if *target == self.instance)
        })
    }
}

/// An instance found in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Discovered {
    /// The app id (the service).
    pub app_id: String,
    /// The instance's full name, identifying it across messages.
    pub instance: String,
    /// What the message says about it.
    pub change: Change,
}

/// What a response says about an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// Reachable at this address (IPv4 preferred when both are given).
    Available(SocketAddr),
    /// Withdrawn (TTL 0).
    Withdrawn,
}

#[derive(Default)]
struct Pieces {
    app_id: String,
    withdrawn: bool,
    target: Option<String>,
    port: u16,
    txt_matches: bool,
    ipv4: Option<IpAddr>,
    ipv6: Option<IpAddr>,
}

/// Which names a record's owner may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// `<app>.local`.
    Service,
    /// `<instance>.<app>.local`, where the instance may span several labels (a host name
    /// with dots).
    Instance,
}

/// The app id a name belongs to, if it has the expected shape and `wanted` says so.
fn app_of(name: &Name<'_>, owner: Owner, wanted: &dyn Fn(&str) -> bool) -> Option<String> {
    let labels = name.get_labels();
    let shape_ok = match owner {
        Owner::Service => labels.len() == 2,
        Owner::Instance => labels.len() >= 3,
    };
    let [.., app_id, domain] = labels else {
        return None;
    };
    if !shape_ok || !domain.as_ref().eq_ignore_ascii_case(DOMAIN.as_bytes()) {
        return None;
    }
    let app_id = std::str::from_utf8(app_id.as_ref()).ok()?;
    wanted(app_id).then(|| app_id.to_owned())
}

/// Instances of wanted app ids described by a response (answers, authority and
/// additional records together, as upstream reads them).
pub(super) fn discover(packet: &Packet<'_>, wanted: &dyn Fn(&str) -> bool) -> Vec<Discovered> {
    if !packet.has_flags(PacketFlag::RESPONSE) {
        return Vec::new();
    }
    let records: Vec<&ResourceRecord<'_>> = packet
        .answers
        .iter()
        .chain(&packet.name_servers)
        .chain(&packet.additional_records)
        .collect();
    let mut instances: HashMap<String, Pieces> = HashMap::new();
    for record in &records {
        match &record.rdata {
            RData::PTR(PTR(target)) => {
                if let Some(app_id) = app_of(&record.name, Owner::Service, wanted) {
                    let pieces = instances.entry(target.to_string()).or_default();
                    pieces.app_id = app_id;
                    pieces.withdrawn |= record.ttl == 0;
                }
            }
            RData::SRV(srv) => {
                if let Some(app_id) = app_of(&record.name, Owner::Instance, wanted) {
                    let pieces = instances.entry(record.name.to_string()).or_default();
                    pieces.app_id = app_id;
                    pieces.withdrawn |= record.ttl == 0;
                    pieces.target = Some(srv.target.to_string());
                    pieces.port = srv.port;
                }
            }
            RData::TXT(txt) => {
                if let Some(app_id) = app_of(&record.name, Owner::Instance, wanted) {
                    let first = txt.iter_raw().next();
                    let pieces = instances.entry(record.name.to_string()).or_default();
                    pieces.txt_matches =
                        matches!(first, Some((text, None)) if text == app_id.as_bytes());
                    pieces.app_id = app_id;
                }
            }
            _ => {}
        }
    }
    for record in &records {
        let address = match &record.rdata {
            RData::A(a) => IpAddr::from(std::net::Ipv4Addr::from(a.address)),
            RData::AAAA(aaaa) => IpAddr::from(std::net::Ipv6Addr::from(aaaa.address)),
            _ => continue,
        };
        let owner = record.name.to_string();
        for pieces in instances.values_mut() {
            if pieces
                .target
                .as_deref()
                .is_some_and(|target| target.eq_ignore_ascii_case(&owner))
            {
                let slot = if address.is_ipv4() {
                    &mut pieces.ipv4
                } else {
                    &mut pieces.ipv6
                };
                slot.get_or_insert(address);
            }
        }
    }
    instances
        .into_iter()
        .filter_map(|(instance, pieces)| {
            let change = if pieces.withdrawn {
                Change::Withdrawn
            } else {
                let address = pieces.ipv4.or(pieces.ipv6)?;
                if !pieces.txt_matches || pieces.port == 0 {
                    return None;
                }
                Change::Available(SocketAddr::new(address, pieces.port))
            };
            Some(Discovered {
                app_id: pieces.app_id,
                instance,
                change,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn announcement() -> Announcement {
        Announcement::new(
            "orders",
            "box:42",
            "box",
            IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            50001,
        )
        .unwrap()
    }

    fn any_app(_: &str) -> bool {
        true
    }

    fn from_mdns_port() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 9, 9, 9), MDNS_PORT))
    }

    #[test]
    fn browse_replies_carry_upstreams_names_and_are_readable() {
        let query_bytes = browse_query("orders").unwrap();
        let query = Packet::parse(&query_bytes).unwrap();
        assert_eq!(query.questions[0].qname.to_string(), "orders.local");
        assert!(!query.has_flags(PacketFlag::RECURSION_DESIRED));

        let reply = announcement()
            .reply_to(&query, from_mdns_port())
            .unwrap()
            .unwrap();
        assert!(!reply.unicast);
        let packet = Packet::parse(&reply.message).unwrap();
        assert_eq!(packet.answers.len(), 1);
        let RData::PTR(PTR(instance)) = &packet.answers[0].rdata else {
            panic!("not a PTR")
        };
        assert_eq!(instance.to_string(), "box:42.orders.local");
        assert_eq!(packet.answers[0].ttl, 3200);
        let srv = packet
            .additional_records
            .iter()
            .find_map(|record| match &record.rdata {
                RData::SRV(srv) => Some(srv.clone()),
                _ => None,
            });
        let srv = srv.unwrap();
        assert_eq!(
            (srv.target.to_string().as_str(), srv.port),
            ("box.local", 50001)
        );

        let found = discover(&packet, &any_app);
        assert_eq!(
            found,
            vec![Discovered {
                app_id: "orders".into(),
                instance: "box:42.orders.local".into(),
                change: Change::Available("10.1.2.3:50001".parse().unwrap()),
            }]
        );
        assert!(discover(&packet, &|app: &str| app == "payments").is_empty());
    }

    #[test]
    fn other_questions_get_no_reply_and_known_answers_are_suppressed() {
        let bytes = browse_query("payments").unwrap();
        let query = Packet::parse(&bytes).unwrap();
        assert_eq!(
            announcement().reply_to(&query, from_mdns_port()).unwrap(),
            None
        );

        let bytes = browse_query("orders").unwrap();
        let mut query = Packet::parse(&bytes).unwrap();
        query.answers.push(announcement().ptr(3000));
        assert_eq!(
            announcement().reply_to(&query, from_mdns_port()).unwrap(),
            None
        );
        query.answers[0].ttl = 100;
        assert!(
            announcement()
                .reply_to(&query, from_mdns_port())
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn queries_from_other_ports_get_a_unicast_reply_with_the_question() {
        let bytes = browse_query("orders").unwrap();
        let query = Packet::parse(&bytes).unwrap();
        let reply = announcement()
            .reply_to(&query, SocketAddr::from((Ipv4Addr::LOCALHOST, 40000)))
            .unwrap()
            .unwrap();
        assert!(reply.unicast);
        assert_eq!(Packet::parse(&reply.message).unwrap().questions.len(), 1);
    }

    #[test]
    fn goodbye_withdraws_the_instance() {
        let bytes = announcement().unsolicited(true).unwrap();
        let packet = Packet::parse(&bytes).unwrap();
        assert!(packet.answers.iter().all(|record| record.ttl == 0));
        let found = discover(&packet, &any_app);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].change, Change::Withdrawn);

        let bytes = announcement().unsolicited(false).unwrap();
        let found = discover(&Packet::parse(&bytes).unwrap(), &any_app);
        assert_eq!(
            found[0].change,
            Change::Available("10.1.2.3:50001".parse().unwrap())
        );
    }

    #[test]
    fn answers_whose_txt_is_not_the_app_id_are_ignored() {
        let mut other = announcement();
        other.app_id = "something-else".into();
        let found = discover(
            &Packet::parse(&other.unsolicited(false).unwrap()).unwrap(),
            &any_app,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn instances_named_after_a_dotted_host_are_understood() {
        // Go's zeroconf writes "<host>:<pid>" as text, so a host name with dots becomes
        // several labels.
        let service = Name::new_unchecked("orders.local");
        let instance = Name::new_unchecked("box.example.com:7.orders.local");
        let host = Name::new_unchecked("box.example.com.local");
        let mut packet = Packet::new_reply(0);
        packet.answers.push(ResourceRecord::new(
            service,
            CLASS::IN,
            3200,
            RData::PTR(PTR(instance.clone())),
        ));
        let srv = SRV {
            priority: 0,
            weight: 0,
            port: 50007,
            target: host.clone(),
        };
        packet.additional_records.push(ResourceRecord::new(
            instance.clone(),
            CLASS::IN,
            3200,
            RData::SRV(srv),
        ));
        let txt = TXT::new().with_string("orders").unwrap();
        packet.additional_records.push(ResourceRecord::new(
            instance,
            CLASS::IN,
            3200,
            RData::TXT(txt),
        ));
        let a = A {
            address: Ipv4Addr::new(10, 0, 0, 7).into(),
        };
        packet
            .additional_records
            .push(ResourceRecord::new(host, CLASS::IN, 120, RData::A(a)));
        let bytes = packet.build_bytes_vec_compressed().unwrap();
        let found = discover(&Packet::parse(&bytes).unwrap(), &any_app);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].change,
            Change::Available("10.0.0.7:50007".parse().unwrap())
        );
    }

    #[test]
    fn overlong_labels_are_rejected() {
        let long = "a".repeat(64);
        let error = Announcement::new(&long, "box:1", "box", IpAddr::V4(Ipv4Addr::LOCALHOST), 1)
            .unwrap_err();
        assert!(matches!(error, NameError::BadLabel(_)));
    }
}
