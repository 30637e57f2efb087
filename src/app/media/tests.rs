use super::*;

/// A 1x1 grayscale PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3a, 0x7e, 0x9b,
    0x55, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x01, 0x48, 0xaf, 0xa4, 0x71, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

/// The start of a Windows program (DOS header, then zeros).
fn exe() -> Vec<u8> {
    [
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00".as_slice(),
        &[0; 64],
    ]
    .concat()
}

fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
        .to_vec()
}

fn zip() -> Vec<u8> {
    [b"PK\x03\x04\x14\x00\x00\x00\x08\x00".as_slice(), &[0; 40]].concat()
}

fn iso(brand: &[u8; 4]) -> Vec<u8> {
    [
        b"\x00\x00\x00\x18ftyp".as_slice(),
        brand,
        b"\x00\x00\x00\x00isommp42",
    ]
    .concat()
}

#[test]
fn a_declared_type_with_a_signature_must_show_it() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("image/png", PNG.to_vec()),
        ("IMAGE/PNG", PNG.to_vec()),
        (
            "image/jpeg",
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01".to_vec(),
        ),
        ("image/webp", b"RIFF\x24\x00\x00\x00WEBPVP8 ".to_vec()),
        ("video/mp4", iso(b"isom")),
        ("video/3gpp", iso(b"3gp4")),
        ("audio/mp4", iso(b"M4A ")),
        ("audio/aac", b"\xff\xf1\x50\x80\x02\x1f\xfc".to_vec()),
        ("audio/mpeg", b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec()),
        ("audio/amr", b"#!AMR\n\x3c\x00\x00\x00\x00\x00".to_vec()),
        ("audio/ogg", b"OggS\x00\x02\x00\x00\x00\x00".to_vec()),
        ("application/pdf", pdf()),
        (
            "application/msword",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00".to_vec(),
        ),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            zip(),
        ),
    ];
    for (mime, bytes) in cases {
        assert!(content_matches(mime, &bytes), "{mime} with its own bytes");
    }
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("image/png", exe()),
        ("image/png", pdf()),
        ("image/png", b"not a picture".to_vec()),
        ("image/jpeg", PNG.to_vec()),
        ("image/webp", PNG.to_vec()),
        ("video/mp4", exe()),
        ("audio/ogg", zip()),
        ("application/pdf", PNG.to_vec()),
        // A program with a PDF header inside its first kilobyte is still a program.
        ("application/pdf", [exe(), pdf()].concat()),
        ("application/vnd.ms-excel", zip()),
        ("image/gif", PNG.to_vec()),
        ("application/vnd.microsoft.portable-executable", exe()),
    ];
    for (mime, bytes) in refused {
        assert!(!content_matches(mime, &bytes), "{mime} refuses other bytes");
    }
}

#[test]
fn a_type_without_a_signature_refuses_only_programs_and_archives() {
    assert!(content_matches("text/plain", b"hello\r\nworld\t!\n"));
    // Text that begins with a weak two-byte signature ("MZ", "BC") is still text.
    assert!(content_matches("text/csv", b"MZ Holdings,42\nBC Hydro,7\n"));
    assert!(content_matches("text/plain", "Grüße 👍".as_bytes()));
    assert!(
        content_matches("text/plain", PNG),
        "a picture is no program"
    );
    assert!(!content_matches("text/plain", &exe()));
    assert!(!content_matches("text/csv", &zip()));
    assert!(!content_matches("text/plain", &pdf()));
    assert!(!content_matches("application/octet-stream", &exe()));
    assert!(!content_matches("application/x-msdownload", &exe()));
    assert!(content_matches("application/octet-stream", &[0, 1, 2, 3]));
    // Past the sniffed prefix a cut character does not make text binary.
    let long = format!("a{}", "é".repeat(5_000));
    assert!(content_matches("text/plain", long.as_bytes()));
}
