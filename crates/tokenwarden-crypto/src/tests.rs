use super::*;

fn aad(row: &str) -> Aad<'_> {
    Aad::new("tokens", "client_secret", row)
}

#[test]
fn r18_same_secret_twice_gives_different_ciphertexts() {
    let ring = Keyring::for_tests();
    let a = ring.seal(b"s3cret", aad("row1"));
    let b = ring.seal(b"s3cret", aad("row1"));
    assert_ne!(a, b);
    assert_eq!(&*ring.open(&a, aad("row1")).unwrap(), b"s3cret");
    assert_eq!(&*ring.open(&b, aad("row1")).unwrap(), b"s3cret");
}

#[test]
fn r19_any_flipped_byte_or_truncation_fails_cleanly() {
    let ring = Keyring::for_tests();
    let sealed = ring.seal(b"refresh-token-value", aad("row1"));
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert!(
            ring.open(&bad, aad("row1")).is_err(),
            "flip at byte {i} went unnoticed"
        );
    }
    for len in 0..sealed.len() {
        assert!(
            ring.open(&sealed[..len], aad("row1")).is_err(),
            "truncated to {len}"
        );
    }
}

#[test]
fn r20_ciphertext_moved_to_another_row_or_column_fails() {
    let ring = Keyring::for_tests();
    let sealed = ring.seal(b"x", aad("row1"));
    assert_eq!(
        ring.open(&sealed, aad("row2")).unwrap_err(),
        CryptoError::Authentication
    );
    let other_col = Aad::new("tokens", "refresh_token", "row1");
    assert_eq!(
        ring.open(&sealed, other_col).unwrap_err(),
        CryptoError::Authentication
    );
    let other_table = Aad::new("apps", "client_secret", "row1");
    assert_eq!(
        ring.open(&sealed, other_table).unwrap_err(),
        CryptoError::Authentication
    );
}

#[test]
fn r22_rotation_old_values_still_open_and_reseal_moves_them() {
    let k1 = DataKey::generate("k1").unwrap();
    let old = Keyring::new(k1.clone(), []);
    let sealed = old.seal(b"v", aad("r"));
    let k2 = DataKey::generate("k2").unwrap();
    let ring = Keyring::new(k2.clone(), [k1]);
    assert_eq!(&*ring.open(&sealed, aad("r")).unwrap(), b"v");
    let moved = ring.reseal(&sealed, aad("r")).unwrap();
    assert_eq!(key_id_of(&moved).unwrap(), "k2");
    assert_ne!(moved, sealed);
    assert_eq!(key_id_of(&ring.seal(b"n", aad("r"))).unwrap(), "k2");
    // After dropping k1, the moved value still opens (same plaintext, same row); the old one is
    // refused by name.
    let only_k2 = Keyring::new(k2, []);
    assert_eq!(&*only_k2.open(&moved, aad("r")).unwrap(), b"v");
    assert!(only_k2.open(&moved, aad("other-row")).is_err());
    assert_eq!(
        only_k2.open(&sealed, aad("r")).unwrap_err(),
        CryptoError::UnknownKey("k1".into())
    );
}

#[test]
fn r20_key_id_is_bound_too() {
    // Rewriting the key id in the header to another key that exists must not open.
    let k1 = DataKey::generate("k1").unwrap();
    let k2 = DataKey::generate("k2").unwrap();
    let ring = Keyring::new(k2, [k1]);
    let mut sealed = ring.seal(b"v", aad("r"));
    assert_eq!(&sealed[2..4], b"k2");
    sealed[3] = b'1';
    assert!(ring.open(&sealed, aad("r")).is_err());
}

#[test]
fn master_key_wraps_data_keys_and_detects_a_wrong_master_key() {
    let master = MasterKey::generate();
    let dk = DataKey::generate("k1").unwrap();
    let wrapped = master.wrap_key(&dk);
    let back = master.unwrap_key("k1", &wrapped).unwrap();
    let ring = Keyring::new(back, []);
    let ring0 = Keyring::new(dk, []);
    assert_eq!(
        &*ring.open(&ring0.seal(b"a", aad("r")), aad("r")).unwrap(),
        b"a"
    );

    let other = MasterKey::generate();
    assert_eq!(
        other.unwrap_key("k1", &wrapped).unwrap_err(),
        CryptoError::Authentication
    );
    assert!(
        master.unwrap_key("k2", &wrapped).is_err(),
        "wrapped key bound to its id"
    );
    assert_ne!(master.check_value(), other.check_value());
}

#[test]
fn master_key_parsing_accepts_base64_and_hex_and_explains_failures() {
    let m = MasterKey::generate();
    let b64 = m.to_base64();
    let again = MasterKey::parse(&format!("  {}\n", b64.expose_secret())).unwrap();
    assert_eq!(again.check_value(), m.check_value());
    let hex = "00".repeat(32);
    assert!(MasterKey::parse(&hex).is_ok());
    let short = MasterKey::parse("c2hvcnQ=").unwrap_err().to_string();
    assert!(short.contains("5 bytes"), "{short}");
    assert!(
        MasterKey::parse("")
            .unwrap_err()
            .to_string()
            .contains("empty")
    );
    assert!(
        MasterKey::parse("not base64 !!")
            .unwrap_err()
            .to_string()
            .contains("base64")
    );
}

#[test]
fn debug_output_never_shows_key_material() {
    let m = MasterKey::generate();
    let b64 = m.to_base64();
    let dbg = format!(
        "{m:?} {:?} {:?}",
        Keyring::for_tests(),
        DataKey::generate("k9").unwrap()
    );
    assert!(!dbg.contains(b64.expose_secret()));
    assert!(dbg.contains("redacted"));
}

#[test]
fn bad_key_ids_are_refused() {
    assert!(DataKey::generate("").is_err());
    assert!(DataKey::generate("has space").is_err());
    assert!(DataKey::generate(&"k".repeat(33)).is_err());
}

#[test]
fn issue13_passphrase_sealing_opens_only_with_the_passphrase_and_context() {
    let pass = SecretString::from("correct horse battery staple");
    let v = seal_with_passphrase(&pass, b"the secrets", "export-v1").unwrap();
    assert!(!v.sealed.windows(11).any(|w| w == b"the secrets"));
    assert_eq!(
        open_with_passphrase(&pass, &v, "export-v1")
            .unwrap()
            .as_slice(),
        b"the secrets"
    );
    let wrong = SecretString::from("correct horse battery stapler");
    assert_eq!(
        open_with_passphrase(&wrong, &v, "export-v1").unwrap_err(),
        CryptoError::Authentication
    );
    assert_eq!(
        open_with_passphrase(&pass, &v, "export-v2").unwrap_err(),
        CryptoError::Authentication
    );
    let mut altered = v.clone();
    altered.sealed[14] ^= 1;
    assert!(open_with_passphrase(&pass, &altered, "export-v1").is_err());
    // A document may not make the importer spend unbounded memory.
    let mut greedy = v.clone();
    greedy.m_cost_kib = u32::MAX;
    assert!(matches!(
        open_with_passphrase(&pass, &greedy, "export-v1"),
        Err(CryptoError::Malformed(_))
    ));
    assert_eq!(
        seal_with_passphrase(&SecretString::from("short"), b"x", "export-v1").unwrap_err(),
        CryptoError::WeakPassphrase(PASSPHRASE_MIN_CHARS)
    );
}
