//! What an upload may be: MIME types media messages carry, and whether the bytes are what the
//! declared type says (ADR 0008), judged from the object's first bytes.

/// Whether a MIME type is syntactically `type/subtype` of a kind media messages carry.
pub fn acceptable_mime(mime: &str) -> bool {
    let Some((top, sub)) = mime.split_once('/') else {
        return false;
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    matches!(top, "image" | "audio" | "video" | "application" | "text") && token(sub)
}

/// What the first bytes of an object must show for a declared type.
#[derive(Debug, Clone, Copy)]
enum Magic {
    /// The signature `infer` knows for this MIME type.
    Sniffed(&'static str),
    /// An ISO base media file (`ftyp` box first): MP4, 3GPP, M4A. `infer` knows only some of
    /// their brands.
    IsoMedia,
}

impl Magic {
    fn matches(self, bytes: &[u8]) -> bool {
        match self {
            Magic::Sniffed(mime) => infer::is_mime(bytes, mime),
            Magic::IsoMedia => bytes.get(4..8) == Some(b"ftyp".as_slice()),
        }
    }
}

/// The signatures a declared type may show: the Cloud API's media types and their aliases.
fn magic_of(declared: &str) -> Option<&'static [Magic]> {
    use Magic::{IsoMedia, Sniffed};
    Some(match declared {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => &[Sniffed("image/jpeg")],
        "image/png" => &[Sniffed("image/png")],
        "image/webp" => &[Sniffed("image/webp")],
        "video/mp4" | "video/3gpp" | "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "audio/3gpp" => {
            &[IsoMedia]
        }
        "audio/aac" | "audio/x-aac" => &[Sniffed("audio/aac"), IsoMedia],
        "audio/mpeg" | "audio/mp3" => &[Sniffed("audio/mpeg")],
        "audio/amr" => &[Sniffed("audio/amr")],
        "audio/ogg" | "audio/opus" => &[Sniffed("audio/ogg")],
        "application/pdf" => &[Sniffed("application/pdf")],
        // Office 97-2003: an OLE compound file (which application wrote it is not sniffed).
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" => {
            &[Sniffed("application/x-ole-storage")]
        }
        // Office Open XML is a ZIP container; `infer` recognises only some layouts of it.
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => &[
            Sniffed("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            Sniffed("application/zip"),
        ],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => &[
            Sniffed("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            Sniffed("application/zip"),
        ],
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => &[
            Sniffed("application/vnd.openxmlformats-officedocument.presentationml.presentation"),
            Sniffed("application/zip"),
        ],
        _ => return None,
    })
}

/// Programs: never media, whatever the upload says it is. (`infer`'s weaker two-byte
/// signatures of object files and bitcode are left out: text and other data can start so.)
const EXECUTABLES: [&str; 7] = [
    "application/vnd.microsoft.portable-executable",
    "application/x-executable",
    "application/x-mach-binary",
    "application/java",
    "application/vnd.android.dex",
    "application/vnd.android.dey",
    "application/wasm",
];

/// Whether the bytes read as text: UTF-8 without control characters other than whitespace.
/// Programs and archives always hold bytes that text does not.
fn looks_like_text(bytes: &[u8]) -> bool {
    const PREFIX: usize = 8 * 1024;
    let head = &bytes[..bytes.len().min(PREFIX)];
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A character cut off by the prefix is fine; anything else is not UTF-8.
        Err(e) if e.error_len().is_none() && bytes.len() > PREFIX => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// Whether an upload's bytes can be what its declared MIME type says, by their magic number.
/// A type with a signature (the Cloud API's images, video, audio, PDF and Office documents,
/// and whatever else `infer` knows) must show it; a type without one (`text/plain`,
/// `text/csv` …) takes anything but bytes that sniff as a program, an archive or an office
/// document of another type. A program is refused under every declaration.
pub fn content_matches(declared: &str, bytes: &[u8]) -> bool {
    let declared = declared.to_ascii_lowercase();
    let sniffed = infer::get(bytes);
    let program = sniffed.is_some_and(|t| EXECUTABLES.contains(&t.mime_type()));
    if let Some(magic) = magic_of(&declared) {
        return !program && magic.iter().any(|m| m.matches(bytes));
    }
    let has_magic = infer::is_mime_supported(&declared)
        && !declared.starts_with("text/")
        && declared != "application/octet-stream";
    if has_magic {
        return !program && infer::is_mime(bytes, &declared);
    }
    if looks_like_text(bytes) {
        return true;
    }
    !sniffed.is_some_and(|t| {
        program
            || (t.mime_type() != declared
                && matches!(
                    t.matcher_type(),
                    infer::MatcherType::Archive | infer::MatcherType::Doc
                ))
    })
}

const MIB: u64 = 1024 * 1024;

/// The largest object of any kind: a document, as the Cloud API takes them (100 MB).
pub const MAX_MEDIA_BYTES: u64 = 100 * MIB;

/// What a MIME type is sent as, and the largest object of that kind the Cloud API takes:
/// images 5 MB, stickers (WebP) 500 KB, audio and video 16 MB, documents 100 MB (counted in
/// MiB, so a file the Cloud API takes is never refused here).
pub fn limit_of(mime: &str) -> (&'static str, u64) {
    let mime = mime.to_ascii_lowercase();
    match mime.split_once('/').map(|(top, _)| top) {
        _ if mime == "image/webp" => ("sticker", 500 * 1024),
        Some("image") => ("image", 5 * MIB),
        Some("audio") => ("audio", 16 * MIB),
        Some("video") => ("video", 16 * MIB),
        _ => ("document", MAX_MEDIA_BYTES),
    }
}
