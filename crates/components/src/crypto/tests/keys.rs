//! Reading keys in every format upstream reads (PEM of OpenSSL's making, JWKs, raw and
//! base64 symmetric bytes) and writing public keys as upstream returns them.

use super::super::Key;
use super::super::key::{EcPublic, KeyMaterial};
use super::{key, testdata};

#[test]
fn openssl_pem_files_parse_to_their_kind() {
    for (file, kty, private) in [
        ("rsa-2048.pem", "RSA", true),
        ("rsa-2048-pkcs1.pem", "RSA", true),
        ("rsa-2048-public.pem", "RSA", false),
        ("rsa-2048-cert.pem", "RSA", false),
        ("ec-p256-sec1.pem", "EC", true),
        ("ec-p256-public.pem", "EC", false),
        ("ec-p384.pem", "EC", true),
        ("ec-p521.pem", "EC", true),
        ("ed25519.pem", "OKP", true),
        ("ed25519-public.pem", "OKP", false),
    ] {
        let parsed = key(file);
        assert_eq!(parsed.key_type(), kty, "{file}");
        let is_private = matches!(
            parsed.material,
            KeyMaterial::RsaPrivate(_) | KeyMaterial::EcPrivate(_) | KeyMaterial::Ed25519Private(_)
        );
        assert_eq!(is_private, private, "{file}");
        // The same key whatever the extension says.
        let forced = Key::parse(&testdata(file), Some("application/x-pem-file")).unwrap();
        assert_eq!(
            forced.to_public_jwk().unwrap(),
            parsed.to_public_jwk().unwrap()
        );
    }
    assert_eq!(
        key("rsa-2048.pem").to_public_jwk().unwrap(),
        key("rsa-2048-pkcs1.pem").to_public_jwk().unwrap()
    );
    assert_eq!(
        key("rsa-2048.pem").to_public_jwk().unwrap(),
        key("rsa-2048-cert.pem").to_public_jwk().unwrap()
    );
}

#[test]
fn public_pem_is_what_openssl_writes() {
    for (private, public) in [
        ("rsa-2048.pem", "rsa-2048-public.pem"),
        ("ec-p256-sec1.pem", "ec-p256-public.pem"),
        ("ed25519.pem", "ed25519-public.pem"),
    ] {
        let expected = String::from_utf8(testdata(public)).unwrap();
        assert_eq!(key(private).to_public_pem().unwrap(), expected, "{private}");
        assert_eq!(key(public).to_public_pem().unwrap(), expected, "{public}");
    }
    assert!(Key::symmetric(vec![1; 16]).to_public_pem().is_err());
}

#[test]
fn public_jwks_are_sorted_and_read_back() {
    let jwk = key("ec-p256-sec1.pem").to_public_jwk().unwrap();
    let value: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    let names: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        jwk.starts_with(r#"{"crv":"P-256","kty":"EC","x":""#),
        "{jwk}"
    );
    assert_eq!(names, ["crv", "kty", "x", "y"]);
    let rsa = key("rsa-2048.pem").to_public_jwk().unwrap();
    assert!(rsa.starts_with(r#"{"e":"AQAB","kty":"RSA","n":""#), "{rsa}");
    let ed = key("ed25519.pem").to_public_jwk().unwrap();
    assert!(
        ed.starts_with(r#"{"crv":"Ed25519","kty":"OKP","x":""#),
        "{ed}"
    );
    for file in [
        "rsa-2048.pem",
        "ec-p256-sec1.pem",
        "ec-p384.pem",
        "ec-p521.pem",
        "ed25519.pem",
    ] {
        let jwk = key(file).to_public_jwk().unwrap();
        let back = Key::parse(jwk.as_bytes(), None).unwrap();
        assert_eq!(back.to_public_jwk().unwrap(), jwk, "{file}");
        assert_eq!(
            back.to_public_pem().unwrap(),
            key(file).to_public_pem().unwrap()
        );
    }
    assert!(Key::symmetric(vec![1; 16]).to_public_jwk().is_err());
}

#[test]
fn private_jwks_parse_with_their_members() {
    // RFC 7517 appendix A.2 (EC P-256 private key), with upstream's optional members.
    let jwk = br#"{"kty":"EC","crv":"P-256",
        "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
        "d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE",
        "use":"enc","kid":"1","alg":"ECDH-ES","key_ops":["deriveKey"]}"#;
    let parsed = Key::parse(jwk, None).unwrap();
    assert!(matches!(parsed.material, KeyMaterial::EcPrivate(_)));
    assert_eq!(parsed.id.as_deref(), Some("1"));
    assert_eq!(parsed.usage.as_deref(), Some("enc"));
    assert_eq!(parsed.algorithm.as_deref(), Some("ECDH-ES"));
    assert_eq!(parsed.operations, ["deriveKey"]);
    let public = parsed.public_key().unwrap();
    assert!(matches!(
        public.material,
        KeyMaterial::EcPublic(EcPublic::P256(_))
    ));
    assert_eq!(
        public.to_public_jwk().unwrap(),
        r#"{"alg":"ECDH-ES","crv":"P-256","key_ops":["deriveKey"],"kid":"1","kty":"EC","use":"enc","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}"#
    );

    // RFC 8037 appendix A.1 (Ed25519 private key).
    let ed = br#"{"kty":"OKP","crv":"Ed25519",
        "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    let ed = Key::parse(ed, Some("application/json")).unwrap();
    assert!(
        ed.to_public_jwk()
            .unwrap()
            .contains("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    );

    // A private RSA JWK written from the test key's own numbers, without p and q.
    let private = key("rsa-2048.pem");
    let KeyMaterial::RsaPrivate(rsa) = &private.material else {
        panic!()
    };
    use base64::Engine as _;
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    let b64 =
        |n: &rsa::BigUint| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n.to_bytes_be());
    let jwk = format!(
        r#"{{"kty":"RSA","n":"{}","e":"{}","d":"{}"}}"#,
        b64(rsa.n()),
        b64(rsa.e()),
        b64(rsa.d())
    );
    let back = Key::parse(jwk.as_bytes(), None).unwrap();
    assert!(matches!(back.material, KeyMaterial::RsaPrivate(_)));
    assert_eq!(
        back.to_public_pem().unwrap(),
        private.to_public_pem().unwrap()
    );

    let oct = Key::parse(
        br#"{"kty":"oct","k":"AAECAwQFBgcICQoLDA0ODw","kid":"sym"}"#,
        None,
    )
    .unwrap();
    assert!(
        matches!(&oct.material, KeyMaterial::Symmetric(bytes) if bytes == &(0..16).collect::<Vec<u8>>())
    );
    assert!(oct.public_key().is_none());

    for bad in [
        &br#"{"kty":"XYZ"}"#[..],
        br#"{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","extra":1}"#,
        br#"{"kty":"OKP","crv":"X25519","x":"AAAA"}"#,
        br#"{"kty":"oct"}"#,
        br#"{"no":"kty"}"#,
    ] {
        assert!(
            Key::parse(bad, Some("application/json")).is_err(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn symmetric_keys_are_raw_or_base64() {
    let bytes: Vec<u8> = (0..32).collect();
    let symmetric = |raw: &[u8]| match Key::parse(raw, None).unwrap().material {
        KeyMaterial::Symmetric(bytes) => bytes,
        _ => panic!("not symmetric"),
    };
    use base64::Engine as _;
    let std = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
    assert_eq!(symmetric(std.as_bytes()), bytes);
    assert_eq!(symmetric(format!("{std}\n").as_bytes()), bytes);
    assert_eq!(symmetric(url.as_bytes()), bytes);
    // Not base64: the bytes themselves, even when they look like JSON but are key-sized.
    assert_eq!(symmetric(b"not base64 at all!"), b"not base64 at all!");
    let braces = b"{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}";
    assert_eq!(symmetric(braces), braces);
    assert!(Key::parse(b"", None).is_err());
    assert!(
        Key::parse(
            b"-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n",
            None
        )
        .is_err()
    );
}

#[test]
fn key_sets_parse_as_sets_or_single_keys() {
    let set = br#"{"keys":[{"kty":"oct","k":"AQID","kid":"a"},{"kty":"oct","k":"BAUG"}]}"#;
    let keys = Key::parse_set(set).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].id.as_deref(), Some("a"));
    let single = Key::parse_set(br#"{"kty":"oct","k":"AQID","kid":"b"}"#).unwrap();
    assert_eq!(single[0].id.as_deref(), Some("b"));
    assert!(Key::parse_set(br#"{"keys":[{"kty":"bad"}]}"#).is_err());
    assert!(Key::parse_set(b"nope").is_err());
}

#[test]
fn keys_serialize_for_wrapping() {
    assert_eq!(Key::symmetric(vec![9; 16]).to_bytes().unwrap(), vec![9; 16]);
    // A private key as PKCS#8, a public one as PKIX: both read back as the same key.
    for file in [
        "rsa-2048-pkcs1.pem",
        "ec-p256-sec1.pem",
        "ed25519.pem",
        "ec-p384.pem",
    ] {
        let private = key(file);
        let der = private.to_bytes().unwrap();
        let pem =
            pkcs8::der::pem::encode_string("PRIVATE KEY", pkcs8::LineEnding::LF, &der).unwrap();
        let back = Key::parse(pem.as_bytes(), None).unwrap();
        assert_eq!(
            back.to_public_pem().unwrap(),
            private.to_public_pem().unwrap(),
            "{file}"
        );
        let public_der = private.public_key().unwrap().to_bytes().unwrap();
        let pem = pkcs8::der::pem::encode_string("PUBLIC KEY", pkcs8::LineEnding::LF, &public_der)
            .unwrap();
        assert_eq!(pem, private.to_public_pem().unwrap());
    }
}
