//! The multicast side: one UDP socket on port 5353 joined to 224.0.0.251 on the chosen
//! interfaces only, and one task that answers queries about this sidecar, sends this
//! sidecar's queries, feeds responses into the cache and announces/withdraws the instance.
//!
//! Every multicast message is sent once per chosen interface with `IP_MULTICAST_IF` set to
//! it, so nothing leaves on an interface that was not chosen; on Linux `IP_MULTICAST_ALL`
//! is off, so only traffic of the groups this socket joined on those interfaces arrives.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use simple_dns::Packet;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::cache::AddressCache;
use super::records::{Announcement, MDNS_PORT, browse_query, discover};

/// The IPv4 mDNS group.
const MDNS_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// How often every looked-up app id is queried again (upstream's refresh interval).
const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Delay of the second unsolicited announcement (RFC 6762: at least two, 1s apart).
const SECOND_ANNOUNCEMENT: Duration = Duration::from_secs(1);
/// Largest mDNS message accepted.
const MAX_MESSAGE: usize = 9000;

/// State shared between the resolver's callers and the task.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Learned addresses.
    pub cache: Mutex<AddressCache>,
    /// Woken whenever an address is added or renewed.
    pub updated: Notify,
}

impl Shared {
    /// Runs `work` with the cache locked.
    pub fn with_cache<T>(&self, work: impl FnOnce(&mut AddressCache) -> T) -> T {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        work(&mut cache)
    }
}

/// Requests from the resolver to the task.
pub(super) enum Command {
    /// Send a browse query for this app id.
    Query(String),
    /// Withdraw the instance, then stop; the sender is told when done.
    Close(oneshot::Sender<()>),
}

/// Opens the socket: port 5353 shared with other responders on this host, the group joined
/// on each interface address, loopback of our own messages on (so sidecars on one host
/// hear each other), TTL 255 as RFC 6762 asks. Interfaces whose join fails are skipped
/// with a warning; the ones joined are returned with the socket.
pub(super) fn open_socket(interfaces: &[Ipv4Addr]) -> io::Result<(UdpSocket, Vec<Ipv4Addr>)> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(all(
        unix,
        not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))
    ))]
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, MDNS_PORT)).into())?;
    #[cfg(target_os = "linux")]
    socket.set_multicast_all_v4(false)?;
    let mut joined = Vec::with_capacity(interfaces.len());
    let mut last_error = None;
    for interface in interfaces {
        match socket.join_multicast_v4(&MDNS_GROUP, interface) {
            Ok(()) => joined.push(*interface),
            Err(error) => {
                tracing::warn!(%interface, %error, "cannot join the mDNS group on this interface; skipping it");
                last_error = Some(error);
            }
        }
    }
    let Some(first) = joined.first() else {
        return Err(last_error
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no interface given")));
    };
    socket.set_multicast_if_v4(first)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_multicast_ttl_v4(255)?;
    socket.set_nonblocking(true)?;
    Ok((UdpSocket::from_std(socket.into())?, joined))
}

/// The task's state.
pub(super) struct Engine {
    pub socket: UdpSocket,
    pub interfaces: Vec<Ipv4Addr>,
    pub announcement: Announcement,
    pub shared: Arc<Shared>,
    pub commands: mpsc::UnboundedReceiver<Command>,
}

impl Engine {
    /// Announces the instance, then serves until closed (or until the resolver is dropped),
    /// withdrawing the instance before it returns.
    pub async fn run(mut self) {
        self.announce(false).await;
        let second_announcement = tokio::time::sleep(SECOND_ANNOUNCEMENT);
        tokio::pin!(second_announcement);
        let mut announced_twice = false;
        let mut refresh =
            tokio::time::interval_at(Instant::now() + REFRESH_INTERVAL, REFRESH_INTERVAL);
        refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut buffer = vec![0u8; MAX_MESSAGE];
        loop {
            tokio::select! {
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((length, from)) => self.handle(&buffer[..length], from).await,
                    Err(error) => tracing::debug!(%error, "mDNS receive failed"),
                },
                command = self.commands.recv() => match command {
                    Some(Command::Query(app_id)) => self.query(&app_id).await,
                    Some(Command::Close(done)) => {
                        self.announce(true).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.announce(true).await;
                        return;
                    }
                },
                _ = &mut second_announcement, if !announced_twice => {
                    announced_twice = true;
                    self.announce(false).await;
                }
                _ = refresh.tick() => {
                    let app_ids = self.shared.with_cache(|cache| cache.wanted());
                    for app_id in app_ids {
                        self.query(&app_id).await;
                    }
                }
            }
        }
    }

    async fn handle(&self, message: &[u8], from: SocketAddr) {
        let packet = match Packet::parse(message) {
            Ok(packet) => packet,
            Err(error) => {
                tracing::debug!(%from, %error, "ignoring an unreadable mDNS message");
                return;
            }
        };
        match self.announcement.reply_to(&packet, from) {
            Ok(Some(reply)) if reply.unicast => self.send_to(&reply.message, from).await,
            Ok(Some(reply)) => self.multicast(&reply.message).await,
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "failed to answer an mDNS query"),
        }
        let added = self.shared.with_cache(|cache| {
            let found = discover(&packet, &|app_id| cache.is_wanted(app_id));
            !found.is_empty() && cache.apply(found, Instant::now())
        });
        if added {
            self.shared.updated.notify_waiters();
        }
    }

    async fn query(&self, app_id: &str) {
        match browse_query(app_id) {
            Ok(message) => self.multicast(&message).await,
            Err(error) => tracing::warn!(%app_id, %error, "cannot query mDNS for this app id"),
        }
    }

    async fn announce(&self, withdraw: bool) {
        match self.announcement.unsolicited(withdraw) {
            Ok(message) => self.multicast(&message).await,
            Err(error) => tracing::warn!(%error, "failed to build the mDNS announcement"),
        }
    }

    /// Sends to the group once per chosen interface.
    async fn multicast(&self, message: &[u8]) {
        let group = SocketAddr::V4(SocketAddrV4::new(MDNS_GROUP, MDNS_PORT));
        for interface in &self.interfaces {
            if let Err(error) = SockRef::from(&self.socket).set_multicast_if_v4(interface) {
                tracing::warn!(%interface, %error, "cannot select the mDNS interface");
                continue;
            }
            self.send_to(message, group).await;
        }
    }

    async fn send_to(&self, message: &[u8], to: SocketAddr) {
        if let Err(error) = self.socket.send_to(message, to).await {
            tracing::debug!(%to, %error, "mDNS send failed");
        }
    }
}
