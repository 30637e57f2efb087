//! Signal on the business's behalf, behind Sealpost's own port.
//!
//! The port, [`SignalEngine`] with its [`Account`], [`Session`] and [`Peer`], is declared in
//! `sealpost_domain::ports::signal` (ADR 0011) and re-exported here.
//!
//! [`Libsignal`] implements the port with the official protocol code
//! (`libsignal-protocol-syft`, a vendored copy of `libsignal-protocol` 0.85.3: PQXDH with a
//! mandatory Kyber1024 prekey, then the Double Ratchet). Its store traits are async and not
//! `Send`, but the in-memory stores used here never wait, so every call completes on the spot
//! (`now_or_never`) and the engine is an ordinary synchronous, thread-safe value.

mod libsignal;

pub use libsignal::Libsignal;
pub use sealpost_domain::ports::signal::{
    Account, Bundle, Decrypted, DirectoryEntry, Encrypted, Peer, Session, SignalEngine, SignalError,
};
