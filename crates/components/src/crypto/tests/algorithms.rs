//! The algorithms against published vectors (NIST SP 800-38A/D, RFC 3394, RFC 8439 and
//! XChaCha20-Poly1305, as collected in dapr/kit's test vectors; the AES-CBC-HMAC vectors
//! of draft-mcgrew-aead-aes-cbc-hmac-sha2-05) and OpenSSL's output, plus upstream's
//! errors.

use super::super::Key;
use super::super::algorithms::{self, AlgorithmError, Sealed};
use super::{hex, key, openssl, testdata};

fn field(vector: &serde_json::Value, name: &str) -> Vec<u8> {
    vector
        .get(name)
        .and_then(serde_json::Value::as_str)
        .map(hex)
        .unwrap_or_default()
}

#[test]
fn symmetric_vectors_encrypt_and_decrypt() {
    let vectors: serde_json::Value =
        serde_json::from_slice(&testdata("symmetric-vectors.json")).unwrap();
    let mut count = 0;
    for (_, family) in vectors.as_object().unwrap() {
        for vector in family.as_array().unwrap() {
            let algorithm = vector["algorithm"].as_str().unwrap();
            let key = Key::symmetric(field(vector, "key"));
            let (plaintext, nonce) = (field(vector, "plaintext"), field(vector, "nonce"));
            let (aad, tag) = (field(vector, "associatedData"), field(vector, "tag"));
            let expected = Sealed {
                ciphertext: field(vector, "ciphertext"),
                tag: tag.clone(),
            };
            let sealed = algorithms::encrypt(&plaintext, algorithm, &key, &nonce, &aad).unwrap();
            assert_eq!(sealed, expected, "{vector}");
            let opened =
                algorithms::decrypt(&expected.ciphertext, algorithm, &key, &nonce, &tag, &aad)
                    .unwrap();
            assert_eq!(opened, plaintext, "{vector}");
            count += 1;
        }
    }
    assert!(count > 50);
}

#[test]
fn aes_cbc_hmac_matches_the_draft_vectors() {
    let plaintext = hex(
        "41206369706865722073797374656d206d757374206e6f7420626520726571756972656420746f206265207365637265742c20616e64206974206d7573742062652061626c6520746f2066616c6c20696e746f207468652068616e6473206f662074686520656e656d7920776974686f757420696e636f6e76656e69656e6365",
    );
    let iv = hex("1af38c2dc2b96ffdd86694092341bc04");
    let aad =
        hex("546865207365636f6e64207072696e6369706c65206f662041756775737465204b6572636b686f666673");
    for (algorithm, key_len, tag_len, expected) in [
        (
            "A128CBC-HS256",
            32,
            16,
            "c80edfa32ddf39d5ef00c0b468834279a2e46a1b8049f792f76bfe54b903a9c9a94ac9b47ad2655c5f10f9aef71427e2fc6f9b3f399a221489f16362c703233609d45ac69864e3321cf82935ac4096c86e133314c54019e8ca7980dfa4b9cf1b384c486f3a54c51078158ee5d79de59fbd34d848b3d69550a67646344427ade54b8851ffb598f7f80074b9473c82e2db652c3fa36b0a7c5b3219fab3a30bc1c4",
        ),
        (
            "A192CBC-HS384",
            48,
            24,
            "ea65da6b59e61edb419be62d19712ae5d303eeb50052d0dfd6697f77224c8edb000d279bdc14c1072654bd30944230c657bed4ca0c9f4a8466f22b226d1746214bf8cfc2400add9f5126e479663fc90b3bed787a2f0ffcbf3904be2a641d5c2105bfe591bae23b1d7449e532eef60a9ac8bb6c6b01d35d49787bcd57ef484927f280adc91ac0c4e79c7b11efc60054e38490ac0e58949bfe51875d733f93ac2075168039ccc733d7",
        ),
        (
            "A256CBC-HS512",
            64,
            32,
            "4affaaadb78c31c5da4b1b590d10ffbd3dd8d5d302423526912da037ecbcc7bd822c301dd67c373bccb584ad3e9279c2e6d12a1374b77f077553df829410446b36ebd97066296ae6427ea75c2e0846a11a09ccf5370dc80bfecbad28c73f09b3a3b75e662a2594410ae496b2e2e6609e31e6e02cc837f053d21f37ff4f51950bbe2638d09dd7a4930930806d0703b1f64dd3b4c088a7f45c216839645b2012bf2e6269a8c56a816dbc1b267761955bc5",
        ),
    ] {
        let key = Key::symmetric((0..key_len).map(|i| i as u8).collect());
        let expected = hex(expected);
        let (ciphertext, tag) = expected.split_at(expected.len() - tag_len);
        let sealed = algorithms::encrypt(&plaintext, algorithm, &key, &iv, &aad).unwrap();
        assert_eq!(sealed.ciphertext, ciphertext, "{algorithm}");
        assert_eq!(sealed.tag, tag, "{algorithm}");
        let opened = algorithms::decrypt(ciphertext, algorithm, &key, &iv, tag, &aad).unwrap();
        assert_eq!(opened, plaintext);
        let mut bad = tag.to_vec();
        bad[0] ^= 1;
        assert_eq!(
            algorithms::decrypt(ciphertext, algorithm, &key, &iv, &bad, &aad),
            Err(AlgorithmError::Failed(
                "message authentication failed".into()
            ))
        );
    }
}

#[test]
fn symmetric_errors_are_upstreams() {
    let k16 = Key::symmetric(vec![1; 16]);
    let k32 = Key::symmetric(vec![1; 32]);
    let rsa = key("rsa-2048.pem");
    let encrypt = |algorithm: &str, key: &Key, plaintext: &[u8], nonce: &[u8]| {
        algorithms::encrypt(plaintext, algorithm, key, nonce, &[]).unwrap_err()
    };
    use AlgorithmError::*;
    assert_eq!(encrypt("A256GCM", &k16, b"x", &[0; 12]), KeyTypeMismatch);
    assert_eq!(encrypt("A128GCM", &k16, b"x", &[0; 16]), InvalidNonce);
    assert_eq!(encrypt("A128CBC", &k16, b"x", &[0; 12]), InvalidNonce);
    assert_eq!(
        encrypt("A128CBC-NOPAD", &k16, b"x", &[0; 16]),
        InvalidPlaintextLength
    );
    assert_eq!(encrypt("C20P", &k16, b"x", &[0; 12]), KeyTypeMismatch);
    assert_eq!(encrypt("XC20P", &k32, b"x", &[0; 12]), InvalidNonce);
    assert_eq!(
        encrypt("A128CBC-HS256", &k16, b"x", &[0; 16]),
        KeyTypeMismatch
    );
    assert_eq!(
        encrypt("A256KW", &k32, &[1; 12], &[]),
        Failed("cek must be in 8-byte blocks".into())
    );
    assert_eq!(encrypt("A256GCM", &rsa, b"x", &[0; 12]), KeyTypeMismatch);
    assert_eq!(encrypt("A256GCMKW", &k32, b"x", &[0; 12]), Unsupported);
    assert_eq!(encrypt("ECDH-ES", &rsa, b"x", &[]), Unsupported);
    assert_eq!(encrypt("RSA-OAEP-256", &k32, b"x", &[]), KeyTypeMismatch);
    assert_eq!(encrypt("FOO", &k32, b"x", &[]), Unsupported);

    let decrypt = |algorithm: &str, key: &Key, ciphertext: &[u8], nonce: &[u8], tag: &[u8]| {
        algorithms::decrypt(ciphertext, algorithm, key, nonce, tag, &[]).unwrap_err()
    };
    assert_eq!(
        decrypt("A128GCM", &k16, b"x", &[0; 12], &[0; 15]),
        InvalidTag
    );
    assert_eq!(
        decrypt("A128GCM", &k16, b"x", &[0; 12], &[0; 16]),
        Failed("cipher: message authentication failed".into())
    );
    assert_eq!(
        decrypt("C20P", &k32, b"x", &[0; 12], &[0; 16]),
        Failed("chacha20poly1305: message authentication failed".into())
    );
    assert_eq!(
        decrypt("A128CBC", &k16, &[0; 15], &[0; 16], &[]),
        InvalidCiphertextLength
    );
    assert_eq!(
        decrypt("A128CBC", &k16, &[0; 16], &[0; 16], &[]),
        Failed("pkcs7: incorrect padding".into())
    );
    assert_eq!(
        decrypt("A256KW", &k32, &[0; 40], &[], &[]),
        Failed("integrity check failed - unexpected IV".into())
    );
    assert_eq!(
        decrypt(
            "RSA-OAEP-256",
            &key("rsa-2048-public.pem"),
            &[0; 256],
            &[],
            &[]
        ),
        KeyTypeMismatch
    );
}

#[test]
fn rsa_decrypts_what_openssl_encrypted() {
    let private = key("rsa-2048.pem");
    let file_key = openssl("fileKey");
    for (algorithm, vector) in [
        ("RSA-OAEP-256", "rsaOaep256"),
        ("RSA-OAEP", "rsaOaep"),
        ("RSA1_5", "rsa1_5"),
    ] {
        let opened =
            algorithms::decrypt(&openssl(vector), algorithm, &private, &[], &[], &[]).unwrap();
        assert_eq!(opened, file_key, "{algorithm}");
    }
    let mut tampered = openssl("rsaOaep256");
    tampered[10] ^= 1;
    assert_eq!(
        algorithms::decrypt(&tampered, "RSA-OAEP-256", &private, &[], &[], &[]),
        Err(AlgorithmError::Failed(
            "crypto/rsa: decryption error".into()
        ))
    );
}

#[test]
fn rsa_round_trips_with_labels() {
    let private = key("rsa-2048-pkcs1.pem");
    let public = key("rsa-2048-public.pem");
    for algorithm in [
        "RSA1_5",
        "RSA-OAEP",
        "RSA-OAEP-256",
        "RSA-OAEP-384",
        "RSA-OAEP-512",
    ] {
        let label: &[u8] = if algorithm == "RSA1_5" { b"" } else { b"label" };
        let sealed = algorithms::encrypt(b"secret", algorithm, &public, &[], label).unwrap();
        assert!(sealed.tag.is_empty());
        let opened = algorithms::decrypt(&sealed.ciphertext, algorithm, &private, &[], &[], label);
        assert_eq!(opened.unwrap(), b"secret", "{algorithm}");
        if !label.is_empty() {
            assert!(
                algorithms::decrypt(&sealed.ciphertext, algorithm, &private, &[], &[], b"other")
                    .is_err()
            );
        }
    }
}

#[test]
fn signatures_made_by_openssl_verify() {
    let d256 = openssl("digestSha256");
    let d384 = openssl("digestSha384");
    let cases = [
        ("RS256", "rsa-2048-public.pem", "rs256", d256.clone()),
        ("PS256", "rsa-2048-public.pem", "ps256SaltMax", d256.clone()),
        (
            "PS256",
            "rsa-2048-public.pem",
            "ps256SaltDigest",
            d256.clone(),
        ),
        ("ES256", "ec-p256-public.pem", "es256", d256.clone()),
        ("ES384", "ec-p384.pem", "es384", d384),
        ("EdDSA", "ed25519-public.pem", "eddsa", openssl("message")),
    ];
    for (algorithm, key_file, vector, digest) in cases {
        let key = key(key_file);
        let signature = openssl(vector);
        assert_eq!(
            algorithms::verify(&digest, &signature, algorithm, &key),
            Ok(true),
            "{vector}"
        );
        let mut wrong = digest.clone();
        wrong[0] ^= 1;
        assert_eq!(
            algorithms::verify(&wrong, &signature, algorithm, &key),
            Ok(false),
            "{vector}"
        );
        assert_eq!(
            algorithms::verify(&digest, &signature[1..], algorithm, &key),
            Ok(false)
        );
    }
}

#[test]
fn every_signature_algorithm_round_trips() {
    let digest = |size: usize| vec![0x5a; size];
    let cases = [
        ("RS256", "rsa-2048.pem", 32),
        ("RS384", "rsa-2048.pem", 48),
        ("RS512", "rsa-2048-pkcs1.pem", 64),
        ("PS256", "rsa-2048.pem", 32),
        ("PS384", "rsa-2048.pem", 48),
        ("PS512", "rsa-2048.pem", 64),
        ("ES256", "ec-p256-sec1.pem", 32),
        ("ES384", "ec-p384.pem", 48),
        ("ES512", "ec-p521.pem", 64),
        ("ES256", "ec-p384.pem", 32),
        ("EdDSA", "ed25519.pem", 100),
    ];
    for (algorithm, key_file, size) in cases {
        let private = key(key_file);
        let public = private.public_key().unwrap();
        let signature = algorithms::sign(&digest(size), algorithm, &private).unwrap();
        assert_eq!(
            algorithms::verify(&digest(size), &signature, algorithm, &public),
            Ok(true),
            "{algorithm} {key_file}"
        );
        assert_eq!(
            algorithms::verify(&digest(size), &signature, algorithm, &private),
            Ok(true)
        );
        let mut wrong = digest(size);
        wrong[0] ^= 1;
        assert_eq!(
            algorithms::verify(&wrong, &signature, algorithm, &public),
            Ok(false)
        );
    }
    let rsa_public = key("rsa-2048-public.pem");
    assert_eq!(
        algorithms::sign(&digest(32), "RS256", &rsa_public),
        Err(AlgorithmError::KeyTypeMismatch)
    );
    assert_eq!(
        algorithms::sign(&digest(32), "ES256", &key("rsa-2048.pem")),
        Err(AlgorithmError::KeyTypeMismatch)
    );
    assert_eq!(
        algorithms::sign(&digest(32), "HS256", &Key::symmetric(vec![1; 32])),
        Err(AlgorithmError::Unsupported)
    );
    assert_eq!(
        algorithms::verify(&digest(32), b"x", "EdDSA", &rsa_public),
        Err(AlgorithmError::KeyTypeMismatch)
    );
    assert!(algorithms::sign(&digest(31), "RS256", &key("rsa-2048.pem")).is_err());
}
