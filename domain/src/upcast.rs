//! Reading old event versions: every stored event passes [`upcast`] before it is parsed.
//!
//! Each event type's current version is the one its `DomainEvent::event_version` gives. A
//! stored version below it is rewritten, one step at a time, by the upcasters listed in
//! [`UPCASTERS`]; a version above it was written by a newer Sealpost and is refused rather
//! than misread. Changing an event's shape means: bump its version, add an upcaster from the
//! old version here, and add a golden file for the new version (see `tests/golden.rs`).

use serde_json::Value;

/// One step: turns `event_type` at `from` into `from + 1`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The event type.
    pub event_type: &'static str,
    /// The version it reads.
    pub from: u32,
    /// The rewrite.
    pub apply: fn(Value) -> Value,
}

/// Every upcaster.
pub const UPCASTERS: &[Upcaster] = &[Upcaster {
    // v2 seals the transport's envelope id beside the ciphertext; v1 events have none.
    event_type: "InboundMessageReceived",
    from: 1,
    apply: |mut v| {
        // Stored payloads are externally tagged: `{"InboundMessageReceived": {...}}`.
        if let Some(o) = v
            .get_mut("InboundMessageReceived")
            .and_then(Value::as_object_mut)
        {
            o.entry("envelope").or_insert(Value::Null);
        }
        v
    },
}];

/// Why a stored event could not be brought to its current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// Written by a newer release than this one: refuse to guess (upgrade this process).
    #[error("event version {found} is newer than this release understands ({current})")]
    FromTheFuture {
        /// The stored version.
        found: u32,
        /// The newest this release knows.
        current: u32,
    },
    /// An old version with no upcaster path: a release bug.
    #[error("no upcaster from event version {0}")]
    NoPath(u32),
}

/// Brings a stored payload from `version` to `current`, the type's current version.
pub fn upcast_with(
    upcasters: &[Upcaster],
    event_type: &str,
    version: u32,
    current: u32,
    mut payload: Value,
) -> Result<Value, UpcastError> {
    if version > current {
        return Err(UpcastError::FromTheFuture {
            found: version,
            current,
        });
    }
    let mut v = version;
    while v < current {
        let step = upcasters
            .iter()
            .find(|u| u.event_type == event_type && u.from == v)
            .ok_or(UpcastError::NoPath(v))?;
        payload = (step.apply)(payload);
        v += 1;
    }
    Ok(payload)
}

/// [`upcast_with`] over [`UPCASTERS`].
pub fn upcast(
    event_type: &str,
    version: u32,
    current: u32,
    payload: Value,
) -> Result<Value, UpcastError> {
    upcast_with(UPCASTERS, event_type, version, current, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_body_to_text(mut v: Value) -> Value {
        if let Some(obj) = v.as_object_mut() {
            if let Some(body) = obj.remove("body") {
                obj.insert("text".into(), body);
            }
        }
        v
    }

    fn add_kind(mut v: Value) -> Value {
        if let Some(obj) = v.as_object_mut() {
            obj.insert("kind".into(), json!("text"));
        }
        v
    }

    const CHAIN: &[Upcaster] = &[
        Upcaster {
            event_type: "Noted",
            from: 1,
            apply: rename_body_to_text,
        },
        Upcaster {
            event_type: "Noted",
            from: 2,
            apply: add_kind,
        },
    ];

    #[test]
    fn old_versions_are_rewritten_step_by_step() {
        let v1 = json!({"body": "x"});
        assert_eq!(
            upcast_with(CHAIN, "Noted", 1, 3, v1),
            Ok(json!({"text": "x", "kind": "text"}))
        );
        assert_eq!(
            upcast_with(CHAIN, "Noted", 2, 3, json!({"text": "y"})),
            Ok(json!({"text": "y", "kind": "text"}))
        );
        assert_eq!(
            upcast_with(CHAIN, "Noted", 3, 3, json!({"a": 1})),
            Ok(json!({"a": 1}))
        );
    }

    #[test]
    fn newer_or_unreachable_versions_are_refused() {
        assert_eq!(
            upcast_with(CHAIN, "Noted", 4, 3, json!({})),
            Err(UpcastError::FromTheFuture {
                found: 4,
                current: 3
            })
        );
        assert_eq!(
            upcast_with(CHAIN, "Other", 1, 2, json!({})),
            Err(UpcastError::NoPath(1))
        );
        assert_eq!(
            upcast("MessageSent", 2, 1, json!({})),
            Err(UpcastError::FromTheFuture {
                found: 2,
                current: 1
            })
        );
    }
}
