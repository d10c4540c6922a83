//! Redis Cluster hash slots: which of the 16384 slots a key belongs to (CRC16/XMODEM of
//! the key, or of its `{hash tag}` when it has a non-empty one), so a transaction can be
//! split into groups that each live on one slot.

/// The number of hash slots in a Redis Cluster.
const SLOTS: u16 = 16384;

/// The cluster hash slot of `key`.
pub(crate) fn of(key: &[u8]) -> u16 {
    crc16(hashed_part(key)) % SLOTS
}

/// The part of the key that is hashed: the content of the first `{...}` if non-empty.
fn hashed_part(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|byte| *byte == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|byte| *byte == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, byte| {
        (0..8).fold(crc ^ (u16::from(*byte) << 8), |crc, _| {
            if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(of(b"foo"), 12182);
        assert_eq!(of(b"somekey"), 11058);
        assert_eq!(of(b"{user1000}.following"), of(b"{user1000}.followers"));
        assert_eq!(of(b"{user1000}.following"), of(b"user1000"));
        // An empty tag hashes the whole key.
        assert_eq!(of(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(of(b"foo{{bar}}zap"), of(b"{bar"));
    }
}
