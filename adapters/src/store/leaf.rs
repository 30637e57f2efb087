//! The tamper-evident log's leaf of a row, which the appenders record in the row's own
//! transaction (ADR 0013): a leaf depends on its row alone, so recording it takes no lock beyond
//! the append's. The tree above the leaves is the audit sequencer's (`sealpost-audit`).

use super::RowHeader;
use sha2::{Digest, Sha256};

/// The bytes a row's leaf commits to: every header field, length-prefixed, then the SHA-256 of
/// the sealed payload. The position is not among them: it is the leaf's index in the tree.
pub fn leaf_data(header: &RowHeader, payload_sha256: &[u8; 32]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"sealpost-row-v1");
    field(&mut out, header.stream.kind.as_bytes());
    field(&mut out, header.stream.id.as_bytes());
    out.extend_from_slice(&header.sequence.to_be_bytes());
    field(&mut out, header.event_type.as_bytes());
    out.extend_from_slice(&header.event_version.to_be_bytes());
    field(&mut out, header.business_id.as_bytes());
    field(&mut out, header.region.as_bytes());
    match header.epoch {
        Some(e) => {
            out.push(1);
            out.extend_from_slice(&e.to_be_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&header.recorded_at.to_be_bytes());
    out.extend_from_slice(payload_sha256);
    out
}

/// The RFC 6962 leaf hash of a row, `SHA-256(0x00 ‖ leaf_data)`: never plaintext, only the
/// plaintext header and the hash of the sealed payload.
pub fn row_leaf(header: &RowHeader, payload: &[u8]) -> [u8; 32] {
    let payload_sha256: [u8; 32] = Sha256::digest(payload).into();
    Sha256::new()
        .chain_update([0x00])
        .chain_update(leaf_data(header, &payload_sha256))
        .finalize()
        .into()
}
