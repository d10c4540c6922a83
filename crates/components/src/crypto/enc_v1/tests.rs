//! The `dapr.io/enc/v1` format against upstream: its own encrypted test files (made by
//! dapr/kit with an identity key wrap, so the manifest's `wfk` is the file key itself)
//! decrypt here and are reproduced byte for byte from the same file key and nonce
//! prefix; a fixture derived step by step from the format's description; round trips of
//! every cipher and size; tampering of every kind; upstream's header errors; memory
//! bounded by one segment whatever the input size.

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine as _;
use bytes::Bytes;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::*;

/// Upstream's test messages (dapr/kit `schemes/enc/v1/scheme_test.go`).
fn upstream_message(name: &str) -> Vec<u8> {
    match name {
        "single-segment" | "single-segment-no-key-name" => b"hello world".to_vec(),
        "multi-segment" => [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 0].repeat(12 << 10),
        "one-full-segment" => [1u8, 2, 3, 4, 5, 6, 7, 8].repeat(8 << 10),
        "empty-message" => Vec::new(),
        other => panic!("no message {other}"),
    }
}

fn upstream_file(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/src/crypto/enc_v1/testdata/{name}.enc",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap()
}

const UPSTREAM_FILES: &[&str] = &[
    "empty-message",
    "single-segment",
    "single-segment-no-key-name",
    "one-full-segment",
    "multi-segment",
];

fn options(key_name: &str, algorithm: &str, cipher: Option<&str>) -> EncryptOptions {
    EncryptOptions {
        key_name: key_name.to_owned(),
        algorithm: algorithm.to_owned(),
        cipher: cipher.map(str::to_owned),
        ..EncryptOptions::default()
    }
}

/// Encrypts `input` fed in `chunk`-byte pieces, the file key "wrapped" as itself (as
/// upstream's tests do).
fn encrypt_identity(plan: EncryptionPlan, input: &[u8], chunk: usize) -> Vec<u8> {
    let file_key = plan.file_key().to_vec();
    let (header, mut segments) = plan.seal(file_key).unwrap();
    let mut out = header.to_vec();
    for piece in input.chunks(chunk.max(1)) {
        for segment in segments.push(piece).unwrap() {
            out.extend_from_slice(&segment);
        }
    }
    if let Some(last) = segments.finish().unwrap() {
        out.extend_from_slice(&last);
    }
    out
}

fn encrypt(options: &EncryptOptions, input: &[u8], chunk: usize) -> Vec<u8> {
    encrypt_identity(EncryptionPlan::new(options).unwrap(), input, chunk)
}

/// Decrypts `data` fed in `chunk`-byte pieces; the file key is the manifest's `wfk`
/// (identity unwrap), or `file_key` when given.
fn decrypt_with(
    data: &[u8],
    key_name: &str,
    chunk: usize,
    file_key: Option<&[u8]>,
) -> Result<(String, Vec<u8>), EncError> {
    let mut reader = HeaderReader::new();
    let mut pieces = data.chunks(chunk.max(1));
    let header = loop {
        match pieces.next() {
            Some(piece) => {
                if let Some(header) = reader.push(piece)? {
                    break header;
                }
            }
            None => return Err(reader.finish()),
        }
    };
    let name = header.key_name(key_name)?;
    let wrapped = header.manifest().wrapped_file_key.clone();
    let (mut segments, rest) = header.open(Some(file_key.unwrap_or(&wrapped)))?;
    let mut out = Vec::new();
    for segment in segments.push(&rest)? {
        out.extend_from_slice(&segment);
    }
    for piece in pieces {
        for segment in segments.push(piece)? {
            out.extend_from_slice(&segment);
        }
    }
    if let Some(last) = segments.finish()? {
        out.extend_from_slice(&last);
    }
    Ok((name, out))
}

fn decrypt(data: &[u8]) -> Result<Vec<u8>, EncError> {
    decrypt_with(data, "", 4096, None).map(|(_, plaintext)| plaintext)
}

#[test]
fn upstream_files_decrypt_in_any_chunking() {
    for name in UPSTREAM_FILES {
        let data = upstream_file(name);
        let key_name = if name.ends_with("no-key-name") {
            "mykey"
        } else {
            ""
        };
        for chunk in [1, 7, 512, 65_553, usize::MAX] {
            let (used, plaintext) = decrypt_with(&data, key_name, chunk, None).unwrap();
            assert_eq!(used, "mykey", "{name}");
            assert_eq!(
                plaintext,
                upstream_message(name),
                "{name} in {chunk}-byte chunks"
            );
        }
    }
}

#[test]
fn upstream_files_are_reproduced_byte_for_byte() {
    for name in UPSTREAM_FILES {
        let data = upstream_file(name);
        let mut reader = HeaderReader::new();
        let header = reader.push(&data).unwrap().unwrap();
        let manifest = header.manifest();
        let file_key: [u8; FILE_KEY_LENGTH] = manifest.wrapped_file_key.clone().try_into().unwrap();
        let mut options = options("mykey", "AES", None);
        options.omit_decryption_key_name = manifest.key_name.is_empty();
        let plan =
            EncryptionPlan::with_fixed_key(&options, file_key, manifest.nonce_prefix).unwrap();
        let ours = encrypt_identity(plan, &upstream_message(name), 1000);
        assert!(ours == data, "{name} differs from upstream's file");
    }
}

#[test]
fn fixture_follows_the_format_description() {
    // A fixed file key (0x00..0x1f) and nonce prefix (0xa0..0xa6); the wrapped file key
    // is the file key itself, key name "mykey", A256KW (id 1) and AES-GCM (id 1).
    let file_key: [u8; 32] = std::array::from_fn(|i| i as u8);
    let nonce_prefix: [u8; 7] = std::array::from_fn(|i| 0xa0 + i as u8);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    // Line 1: the scheme; line 2: the compact manifest, members in Go's order.
    let manifest = format!(
        r#"{{"k":"mykey","kw":1,"wfk":"{}","cph":1,"np":"{}"}}"#,
        b64(&file_key),
        b64(&nonce_prefix)
    );
    let mut expected = format!("dapr.io/enc/v1\n{manifest}\n").into_bytes();
    // Line 3: HMAC-SHA-256 of lines 1-2 with HKDF-SHA-256(file key, no salt, "header").
    let mut header_key = [0u8; 32];
    Hkdf::<Sha256>::new(None, &file_key)
        .expand(b"header", &mut header_key)
        .unwrap();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&header_key).unwrap();
    mac.update(&expected);
    expected.extend_from_slice(b64(&mac.finalize().into_bytes()).as_bytes());
    expected.push(b'\n');
    // One (last) segment: AES-256-GCM with HKDF-SHA-256(file key, nonce prefix,
    // "payload") and nonce = prefix || 0u32 big-endian || 0x01.
    let mut payload_key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&nonce_prefix), &file_key)
        .expand(b"payload", &mut payload_key)
        .unwrap();
    let mut nonce = nonce_prefix.to_vec();
    nonce.extend_from_slice(&[0, 0, 0, 0, 1]);
    let segment = aes_gcm::Aes256Gcm::new(GenericArray::from_slice(&payload_key))
        .encrypt(GenericArray::from_slice(&nonce), &b"hello world"[..])
        .unwrap();
    expected.extend_from_slice(&segment);

    let plan =
        EncryptionPlan::with_fixed_key(&options("mykey", "A256KW", None), file_key, nonce_prefix)
            .unwrap();
    assert_eq!(encrypt_identity(plan, b"hello world", 3), expected);
    assert_eq!(decrypt(&expected).unwrap(), b"hello world");
}

#[test]
fn round_trips_every_cipher_size_and_chunking() {
    let sizes = [
        0,
        1,
        SEGMENT_SIZE - 1,
        SEGMENT_SIZE,
        SEGMENT_SIZE + 1,
        2 * SEGMENT_SIZE,
        300 << 10,
    ];
    for cipher in ["AES-GCM", "CHACHA20-POLY1305"] {
        for size in sizes {
            let input: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for chunk in [1000, SEGMENT_SIZE + 3, usize::MAX] {
                let encrypted = encrypt(&options("k", "RSA", Some(cipher)), &input, chunk);
                let segments = size.div_ceil(SEGMENT_SIZE);
                let header_len = encrypted.len() - size - segments * SEGMENT_OVERHEAD;
                assert!(header_len < 300, "{cipher} {size}: header {header_len}");
                for decrypt_chunk in [1, 4096, usize::MAX] {
                    if decrypt_chunk == 1 && size > SEGMENT_SIZE {
                        continue;
                    }
                    let (_, plaintext) = decrypt_with(&encrypted, "", decrypt_chunk, None).unwrap();
                    assert!(
                        plaintext == input,
                        "{cipher} {size} {chunk}/{decrypt_chunk}"
                    );
                }
            }
        }
    }
}

#[test]
fn manifest_records_cipher_algorithm_and_key_name_choices() {
    let manifest_of = |options: &EncryptOptions| {
        let encrypted = encrypt(options, b"x", 10);
        let mut reader = HeaderReader::new();
        reader.push(&encrypted).unwrap().unwrap().manifest().clone()
    };
    let default = manifest_of(&options("mykey", "AES", None));
    assert_eq!(default.cipher, Cipher::AesGcm);
    assert_eq!(default.key_wrapping_algorithm, KeyAlgorithm::A256Kw);
    assert_eq!(default.key_name, "mykey");
    assert_eq!(default.wrapped_file_key.len(), 32);

    let chacha = manifest_of(&options("mykey", "RSA", Some("CHACHA20-POLY1305")));
    assert_eq!(chacha.cipher, Cipher::ChaCha20Poly1305);
    assert_eq!(chacha.key_wrapping_algorithm, KeyAlgorithm::RsaOaep256);

    let mut other = options("mykey", "A128CBC-NOPAD", None);
    other.decryption_key_name = "dec-key".to_owned();
    assert_eq!(manifest_of(&other).key_name, "dec-key");
    assert_eq!(
        manifest_of(&other).key_wrapping_algorithm,
        KeyAlgorithm::A128Cbc
    );
    other.omit_decryption_key_name = true;
    let omitted = encrypt(&other, b"x", 10);
    assert!(!String::from_utf8_lossy(&omitted).contains("\"k\""));
    assert_eq!(decrypt(&omitted), Err(EncError::DecryptionKeyMissing));
    assert_eq!(
        decrypt_with(&omitted, "given", 10, None).unwrap(),
        ("given".to_owned(), b"x".to_vec())
    );
}

#[test]
fn key_names_are_written_as_go_does() {
    let encrypted = encrypt(&options("a<b>&\"c\"\u{2028}", "AES", None), b"", 10);
    let text = String::from_utf8_lossy(&encrypted);
    assert!(
        text.contains(r#"{"k":"a\u003cb\u003e\u0026\"c\"\u2028","kw":1,"wfk":""#),
        "{text}"
    );
    assert_eq!(
        decrypt_with(&encrypted, "", 10, None).unwrap().0,
        "a<b>&\"c\"\u{2028}"
    );
}

#[test]
fn options_are_checked_as_upstream() {
    let error = |options: EncryptOptions| EncryptionPlan::new(&options).unwrap_err().to_string();
    assert_eq!(
        error(options("", "AES", None)),
        "option KeyName is required"
    );
    assert_eq!(
        error(options("k", "", None)),
        "option Algorithm is required"
    );
    assert_eq!(
        error(options("k", "A128KW", None)),
        "option Algorithm is not valid: algorithm A128KW is not supported"
    );
    assert_eq!(
        error(options("k", "aes", None)),
        "option Algorithm is not valid: algorithm aes is not supported"
    );
    assert_eq!(
        error(options("k", "AES", Some("AES-CBC"))),
        "option Cipher is not valid: cipher AES-CBC is not supported"
    );
    let long = "k".repeat(SEGMENT_SIZE);
    let plan = EncryptionPlan::new(&options(&long, "AES", None)).unwrap();
    assert_eq!(
        plan.seal(vec![1; 32]).unwrap_err().to_string(),
        "failed to sign header: header is too long"
    );
}

/// A 3-segment message and where its parts are.
fn three_segments() -> (Vec<u8>, Vec<u8>, usize) {
    let input: Vec<u8> = (0..2 * SEGMENT_SIZE + 100).map(|i| (i * 7) as u8).collect();
    let encrypted = encrypt(&options("mykey", "AES", None), &input, 5000);
    let header_len = encrypted.len() - input.len() - 3 * SEGMENT_OVERHEAD;
    (input, encrypted, header_len)
}

const FULL: usize = SEGMENT_SIZE + SEGMENT_OVERHEAD;

fn segment_error(number: u32) -> EncError {
    EncError::Segment {
        number,
        reason: "failed to decrypt segment",
    }
}

#[test]
fn tampering_is_detected() {
    let (input, encrypted, header) = three_segments();
    assert_eq!(decrypt(&encrypted).unwrap(), input);

    // A flipped byte in each segment (data and tag).
    for (offset, number) in [
        (header + 5, 0),
        (header + FULL + 100, 1),
        (header + 2 * FULL + 3, 2),
        (encrypted.len() - 1, 2),
    ] {
        let mut tampered = encrypted.clone();
        tampered[offset] ^= 0x01;
        assert_eq!(
            decrypt(&tampered),
            Err(segment_error(number)),
            "byte {offset}"
        );
    }

    // A flipped byte in the header: in the manifest's base64 (MAC mismatch), in the MAC.
    let text = String::from_utf8_lossy(&encrypted[..header]).into_owned();
    let np = text.find("\"np\":\"").unwrap() + 6;
    let mut tampered = encrypted.clone();
    tampered[np] = if tampered[np] == b'A' { b'B' } else { b'A' };
    assert_eq!(decrypt(&tampered), Err(EncError::Signature));
    let mut tampered = encrypted.clone();
    tampered[header - 5] = if tampered[header - 5] == b'A' {
        b'B'
    } else {
        b'A'
    };
    assert_eq!(decrypt(&tampered), Err(EncError::Signature));
    let mut tampered = encrypted.clone();
    tampered[header - 5] = b'*';
    assert!(matches!(
        decrypt(&tampered),
        Err(EncError::SignatureEncoding(_))
    ));
    // Another cipher in the manifest (still valid JSON): the MAC catches it.
    let switched = String::from_utf8_lossy(&encrypted[..header]).replace("\"cph\":1", "\"cph\":2");
    let mut tampered = switched.into_bytes();
    tampered.extend_from_slice(&encrypted[header..]);
    assert_eq!(decrypt(&tampered), Err(EncError::Signature));

    // Truncations: inside the last segment, at a segment boundary (the previous segment
    // was not sealed as last), and inside the header.
    assert_eq!(
        decrypt(&encrypted[..encrypted.len() - 1]),
        Err(segment_error(2))
    );
    assert_eq!(
        decrypt(&encrypted[..header + 2 * FULL]),
        Err(segment_error(1))
    );
    assert_eq!(decrypt(&encrypted[..header + FULL]), Err(segment_error(0)));
    assert_eq!(
        decrypt(&encrypted[..header - 1]),
        Err(EncError::Header(
            "message authentication code not found".to_owned()
        ))
    );

    // Reordered segments, a duplicated segment, an extra trailing byte.
    let mut reordered = encrypted[..header].to_vec();
    reordered.extend_from_slice(&encrypted[header + FULL..header + 2 * FULL]);
    reordered.extend_from_slice(&encrypted[header..header + FULL]);
    reordered.extend_from_slice(&encrypted[header + 2 * FULL..]);
    assert_eq!(decrypt(&reordered), Err(segment_error(0)));
    let mut duplicated = encrypted[..header + FULL].to_vec();
    duplicated.extend_from_slice(&encrypted[header..]);
    assert_eq!(decrypt(&duplicated), Err(segment_error(1)));
    let mut extended = encrypted.clone();
    extended.push(0);
    assert_eq!(decrypt(&extended), Err(segment_error(2)));

    // Only the header left: upstream accepts this as the empty message it also is.
    assert_eq!(decrypt(&encrypted[..header]), Ok(Vec::new()));
}

#[test]
fn a_wrong_or_missing_file_key_fails_the_mac() {
    let encrypted = encrypt(&options("mykey", "AES", None), b"secret", 10);
    let wrong = [7u8; 32];
    assert_eq!(
        decrypt_with(&encrypted, "", 10, Some(&wrong)),
        Err(EncError::Signature)
    );
    assert_eq!(
        decrypt_with(&encrypted, "", 10, Some(&[1, 2, 3])),
        Err(EncError::Signature)
    );
}

#[test]
fn header_errors_are_upstreams() {
    let header_error = |data: &[u8]| match decrypt(data) {
        Err(EncError::Header(reason)) => reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(header_error(b""), "scheme name not found");
    assert_eq!(header_error(b"dapr.io/enc/v1"), "scheme name not found");
    assert_eq!(header_error(b"\nabc"), "invalid format");
    assert_eq!(header_error(b"dapr.io/enc/v1\n\nmac\n"), "invalid format");
    assert_eq!(
        header_error(b"dapr.io/enc/v2\n{}\nmac\n"),
        "unsupported scheme"
    );
    assert_eq!(header_error(b"dapr.io/enc/v1\n{}"), "manifest not found");
    assert_eq!(
        header_error(b"dapr.io/enc/v1\n{}\nmac"),
        "message authentication code not found"
    );
    assert_eq!(
        header_error(b"dapr.io/enc/v1\n{}\nmac\n"),
        "invalid manifest"
    );
    assert_eq!(
        header_error(&vec![b'x'; SEGMENT_SIZE + 10]),
        "scheme name not found"
    );
    let np = "AAAAAAAAAA==";
    for manifest in [
        format!(r#"{{"kw":9,"wfk":"AQ==","cph":1,"np":"{np}"}}"#),
        format!(r#"{{"kw":1,"wfk":"","cph":1,"np":"{np}"}}"#),
        format!(r#"{{"kw":1,"wfk":"AQ==","cph":3,"np":"{np}"}}"#),
        format!(r#"{{"kw":"1","wfk":"AQ==","cph":1,"np":"{np}"}}"#),
        r#"{"kw":1,"wfk":"AQ==","cph":1,"np":"AAAA"}"#.to_owned(),
        format!(r#"{{"kw":1,"wfk":"AQ","cph":1,"np":"{np}"}}"#),
        "[]".to_owned(),
    ] {
        let data = format!("dapr.io/enc/v1\n{manifest}\nmac\n");
        assert_eq!(
            header_error(data.as_bytes()),
            "invalid manifest",
            "{manifest}"
        );
    }
    // Member names match in any case, as Go's decoder does.
    let data =
        format!("dapr.io/enc/v1\n{{\"KW\":1,\"WFK\":\"AQ==\",\"Cph\":1,\"NP\":\"{np}\"}}\nbWFj\n");
    assert_eq!(
        decrypt(data.as_bytes()),
        Err(EncError::DecryptionKeyMissing)
    );
}

#[test]
fn memory_stays_bounded_by_one_segment() {
    // 8 MiB in 1 MiB chunks: the encryptor and decryptor never hold more than one
    // segment (plus the byte telling it is not the last) of unprocessed input.
    let plan = EncryptionPlan::new(&options("mykey", "AES", None)).unwrap();
    let file_key = plan.file_key().to_vec();
    let (header, mut encryptor) = plan.seal(file_key.clone()).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 13) as u8).collect();
    let mut reader = HeaderReader::new();
    let (mut decryptor, rest) = reader
        .push(&header)
        .unwrap()
        .unwrap()
        .open(Some(&file_key))
        .unwrap();
    assert!(rest.is_empty());
    let mut total = 0;
    let mut check = |segments: Vec<Bytes>, decryptor: &mut SegmentStream| {
        for segment in segments {
            assert!(segment.len() <= FULL);
            for plain in decryptor.push(&segment).unwrap() {
                assert!(plain.len() <= SEGMENT_SIZE);
                total += plain.len();
            }
            assert!(decryptor.buffered() <= FULL + 1);
        }
    };
    for _ in 0..8 {
        let segments = encryptor.push(&chunk).unwrap();
        assert!(encryptor.buffered() <= SEGMENT_SIZE + 1);
        check(segments, &mut decryptor);
    }
    let last = encryptor.finish().unwrap().into_iter().collect();
    check(last, &mut decryptor);
    total += decryptor.finish().unwrap().map_or(0, |last| last.len());
    assert_eq!(total, 8 << 20);
}
