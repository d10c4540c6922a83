//! Addresses learned from mDNS responses, per app id: each kept for a minute unless seen
//! again (upstream's address TTL), removed at once when withdrawn, handed out in turn with
//! IPv4 addresses preferred over IPv6 ones (as upstream does).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::records::{Change, Discovered};

/// How long an address stays usable without being seen again.
pub(super) const ADDRESS_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct CachedAddress {
    instance: String,
    address: SocketAddr,
    expires_at: Instant,
}

#[derive(Debug, Default)]
struct AppAddresses {
    addresses: Vec<CachedAddress>,
    turn: usize,
}

/// The app ids this sidecar looks up and what it knows about them.
#[derive(Debug, Default)]
pub(super) struct AddressCache {
    wanted: HashSet<String>,
    apps: HashMap<String, AppAddresses>,
}

impl AddressCache {
    /// Records interest in an app id, so responses about it are kept from now on.
    pub fn want(&mut self, app_id: &str) {
        if !self.wanted.contains(app_id) {
            self.wanted.insert(app_id.to_owned());
        }
    }

    /// Whether responses about `app_id` are kept.
    pub fn is_wanted(&self, app_id: &str) -> bool {
        self.wanted.contains(app_id)
    }

    /// Every app id looked up so far (refreshed periodically).
    pub fn wanted(&self) -> Vec<String> {
        self.wanted.iter().cloned().collect()
    }

    /// Applies what a response said; returns whether an address was added or renewed.
    pub fn apply(&mut self, discovered: Vec<Discovered>, now: Instant) -> bool {
        let mut added = false;
        for Discovered {
            app_id,
            instance,
            change,
        } in discovered
        {
            if !self.wanted.contains(&app_id) {
                continue;
            }
            let app = self.apps.entry(app_id).or_default();
            match change {
                Change::Withdrawn => app.addresses.retain(|cached| cached.instance != instance),
                Change::Available(address) => {
                    let expires_at = now + ADDRESS_LIFETIME;
                    match app
                        .addresses
                        .iter_mut()
                        .find(|cached| cached.instance == instance)
                    {
                        Some(cached) => {
                            cached.address = address;
                            cached.expires_at = expires_at;
                        }
                        None => app.addresses.push(CachedAddress {
                            instance,
                            address,
                            expires_at,
                        }),
                    }
                    added = true;
                }
            }
        }
        added
    }

    /// The next address of `app_id` in turn, dropping expired ones first.
    pub fn pick(&mut self, app_id: &str, now: Instant) -> Option<SocketAddr> {
        let app = self.apps.get_mut(app_id)?;
        app.addresses.retain(|cached| cached.expires_at > now);
        let prefer_ipv4 = app.addresses.iter().any(|cached| cached.address.is_ipv4());
        let candidates: Vec<SocketAddr> = app
            .addresses
            .iter()
            .map(|cached| cached.address)
            .filter(|address| address.is_ipv4() || !prefer_ipv4)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let address = candidates[app.turn % candidates.len()];
        app.turn = app.turn.wrapping_add(1);
        Some(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available(app_id: &str, instance: &str, address: &str) -> Discovered {
        Discovered {
            app_id: app_id.into(),
            instance: instance.into(),
            change: Change::Available(address.parse().unwrap()),
        }
    }

    #[test]
    fn only_wanted_apps_are_kept_and_addresses_rotate() {
        let now = Instant::now();
        let mut cache = AddressCache::default();
        assert!(!cache.apply(vec![available("orders", "a", "10.0.0.1:1")], now));
        cache.want("orders");
        assert!(cache.apply(
            vec![
                available("orders", "a", "10.0.0.1:1"),
                available("orders", "b", "10.0.0.2:1")
            ],
            now
        ));
        let picks: Vec<SocketAddr> = (0..4).map(|_| cache.pick("orders", now).unwrap()).collect();
        let expected: Vec<SocketAddr> = ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.1:1", "10.0.0.2:1"]
            .iter()
            .map(|address| address.parse().unwrap())
            .collect();
        assert_eq!(picks, expected);
        assert_eq!(cache.pick("payments", now), None);
    }

    #[test]
    fn ipv4_is_preferred_and_entries_expire_or_are_withdrawn() {
        let now = Instant::now();
        let mut cache = AddressCache::default();
        cache.want("orders");
        cache.apply(
            vec![
                available("orders", "v6", "[fd00::1]:1"),
                available("orders", "v4", "10.0.0.1:1"),
            ],
            now,
        );
        assert_eq!(
            cache.pick("orders", now),
            Some("10.0.0.1:1".parse().unwrap())
        );
        assert_eq!(
            cache.pick("orders", now),
            Some("10.0.0.1:1".parse().unwrap())
        );

        let withdrawn = Discovered {
            app_id: "orders".into(),
            instance: "v4".into(),
            change: Change::Withdrawn,
        };
        cache.apply(vec![withdrawn], now);
        assert_eq!(
            cache.pick("orders", now),
            Some("[fd00::1]:1".parse().unwrap())
        );
        assert_eq!(cache.pick("orders", now + ADDRESS_LIFETIME), None);
    }
}
