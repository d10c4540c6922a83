//! The on-stream layout of a message and the stream commands' replies.
//!
//! Upstream writes each message as a stream entry with a `data` field (the payload) and a
//! `metadata` field (the publish metadata as a JSON object, keys sorted and HTML
//! characters escaped, as Go's encoder writes it). Entries written by either daprd, or by
//! hand with only a `data` field, read back the same way.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use redis::Value;

use crate::pubsub::{Message, PubSubError};

/// The entry field holding the payload.
pub(crate) const DATA_FIELD: &str = "data";
/// The entry field holding the JSON publish metadata.
pub(crate) const METADATA_FIELD: &str = "metadata";

/// One stream entry as a read or claim returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The entry id (`<millis>-<seq>`).
    pub id: String,
    /// Its field/value pairs; `None` when the entry was deleted but is still pending.
    pub fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// One line of an extended `XPENDING` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    /// The entry id.
    pub id: String,
    /// Time since the entry was last delivered.
    pub idle: Duration,
}

/// A stream reply that does not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected redis stream reply: {0}")]
pub(crate) struct BadReply(String);

/// Serializes publish metadata the way Go's `json.Marshal` does for a string map.
pub(crate) fn encode_metadata(metadata: &HashMap<String, String>) -> Result<String, PubSubError> {
    let sorted: BTreeMap<&String, &String> = metadata.iter().collect();
    let json = serde_json::to_string(&sorted)
        .map_err(|error| PubSubError::InvalidRequest(error.to_string()))?;
    let mut escaped = String::with_capacity(json.len());
    for character in json.chars() {
        match character {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            other => escaped.push(other),
        }
    }
    Ok(escaped)
}

/// Turns an entry's fields into the message handed to the subscriber.
pub(crate) fn message(topic: &str, id: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Message {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key.as_slice() == name.as_bytes())
            .map(|(_, value)| value)
    };
    let metadata = match field(METADATA_FIELD) {
        None => HashMap::new(),
        Some(json) => serde_json::from_slice(json).unwrap_or_else(|error| {
            tracing::warn!(
                topic,
                id,
                %error,
                "redis streams: could not read the metadata of a message"
            );
            HashMap::new()
        }),
    };
    Message {
        topic: topic.to_owned(),
        data: field(DATA_FIELD)
            .map(|data| Bytes::copy_from_slice(data))
            .unwrap_or_default(),
        metadata,
        content_type: None,
    }
}

/// Reads an `XREADGROUP` reply for one stream: nil (nothing arrived) or
/// `[[stream, [entry, ...]]]` (a map of streams under RESP3).
pub(crate) fn read_reply(reply: Value) -> Result<Vec<Entry>, BadReply> {
    let streams = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => Ok(pair.swap_remove(1)),
                other => Err(BadReply(format!("stream {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(streams) => streams.into_iter().map(|(_, entries)| entries).collect(),
        other => return Err(BadReply(format!("{other:?}"))),
    };
    let mut entries = Vec::new();
    for stream in streams {
        entries.extend(entry_list(stream)?.into_iter().flatten());
    }
    Ok(entries)
}

/// Reads an `XCLAIM` (or entry range) reply: one item per entry, `None` where Redis 6
/// answers nil for a pending entry that was deleted.
pub(crate) fn entry_list(reply: Value) -> Result<Vec<Option<Entry>>, BadReply> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Nil => Ok(None),
                other => entry(other).map(Some),
            })
            .collect(),
        other => Err(BadReply(format!("{other:?}"))),
    }
}

/// Reads an extended `XPENDING` reply: `[[id, consumer, idle-ms, deliveries], ...]`.
pub(crate) fn pending_reply(reply: Value) -> Result<Vec<Pending>, BadReply> {
    let Value::Array(items) = reply else {
        return match reply {
            Value::Nil => Ok(Vec::new()),
            other => Err(BadReply(format!("{other:?}"))),
        };
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Array(parts) if parts.len() >= 3 => {
                let id = text(&parts[0])?;
                let Value::Int(idle) = parts[2] else {
                    return Err(BadReply(format!("pending idle time {:?}", parts[2])));
                };
                Ok(Pending {
                    id,
                    idle: Duration::from_millis(u64::try_from(idle).unwrap_or(0)),
                })
            }
            other => Err(BadReply(format!("pending entry {other:?}"))),
        })
        .collect()
}

fn entry(value: Value) -> Result<Entry, BadReply> {
    let Value::Array(mut parts) = value else {
        return Err(BadReply(format!("entry {value:?}")));
    };
    if parts.len() != 2 {
        return Err(BadReply(format!("entry {parts:?}")));
    }
    let fields = parts.swap_remove(1);
    let id = text(&parts[0])?;
    let fields = match fields {
        Value::Nil => None,
        Value::Array(flat) => {
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
                pairs.push((bytes(name)?, bytes(value)?));
            }
            Some(pairs)
        }
        Value::Map(map) => Some(
            map.into_iter()
                .map(|(name, value)| Ok((bytes(name)?, bytes(value)?)))
                .collect::<Result<_, BadReply>>()?,
        ),
        other => return Err(BadReply(format!("entry fields {other:?}"))),
    };
    Ok(Entry { id, fields })
}

fn bytes(value: Value) -> Result<Vec<u8>, BadReply> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        Value::Int(number) => Ok(number.to_string().into_bytes()),
        other => Err(BadReply(format!("field {other:?}"))),
    }
}

fn text(value: &Value) -> Result<String, BadReply> {
    match value {
        Value::BulkString(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Ok(text.clone()),
        other => Err(BadReply(format!("id {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn metadata_is_encoded_like_go() {
        let metadata = HashMap::from([
            ("z".to_owned(), "<b>&".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(
            encode_metadata(&metadata).unwrap(),
            r#"{"a":"1","z":"\u003cb\u003e\u0026"}"#
        );
        assert_eq!(encode_metadata(&HashMap::new()).unwrap(), "{}");
    }

    #[test]
    fn entries_become_messages() {
        let fields = vec![
            (b"data".to_vec(), b"hello".to_vec()),
            (b"metadata".to_vec(), br#"{"k":"v"}"#.to_vec()),
        ];
        let message = message("orders", "1-0", &fields);
        assert_eq!(message.topic, "orders");
        assert_eq!(message.data, Bytes::from_static(b"hello"));
        assert_eq!(message.metadata, HashMap::from([("k".into(), "v".into())]));

        let broken = vec![(b"metadata".to_vec(), b"not json".to_vec())];
        let message = super::message("orders", "1-0", &broken);
        assert!(message.data.is_empty());
        assert!(message.metadata.is_empty());
    }

    #[test]
    fn replies_are_parsed() {
        let entry = Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("data"), bulk("x")]),
        ]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("orders"),
            Value::Array(vec![entry.clone()]),
        ])]);
        assert_eq!(
            read_reply(reply).unwrap(),
            vec![Entry {
                id: "1-0".into(),
                fields: Some(vec![(b"data".to_vec(), b"x".to_vec())]),
            }]
        );
        assert!(read_reply(Value::Nil).unwrap().is_empty());

        let claimed = entry_list(Value::Array(vec![
            Value::Nil,
            Value::Array(vec![bulk("2-0"), Value::Nil]),
        ]))
        .unwrap();
        assert_eq!(
            claimed,
            vec![
                None,
                Some(Entry {
                    id: "2-0".into(),
                    fields: None
                })
            ]
        );

        let pending = pending_reply(Value::Array(vec![Value::Array(vec![
            bulk("3-0"),
            bulk("app"),
            Value::Int(1500),
            Value::Int(2),
        ])]))
        .unwrap();
        assert_eq!(
            pending,
            vec![Pending {
                id: "3-0".into(),
                idle: Duration::from_millis(1500)
            }]
        );
        assert!(pending_reply(bulk("nonsense")).is_err());
    }
}
