//! R18-R23 at the service level: secrets are sealed per row and column, never stored in clear.

use crate::support::{Db, spawn};
use secrecy::ExposeSecret;
use tokenwarden_domain::TokenId;

#[tokio::test]
async fn r20_a_secret_copied_to_another_row_does_not_open() {
    let t = spawn(Db::Sqlite).await;
    let (_, token) = t.seed().await;
    let (s, other) = t
        .admin(reqwest::Method::POST, "/api/v1/tokens", Some(serde_json::json!({"name": "other", "provider": "oauth2", "settings": {"authorization_url": "https://auth.example.com/authorize", "token_url": "https://auth.example.com/token"}, "client_secret": "other-secret"})))
        .await;
    assert_eq!(s, 201);
    let a = t
        .ctx
        .store
        .get_token(TokenId::parse(token["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    let b = t
        .ctx
        .store
        .get_token(TokenId::parse(other["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    let sealed_a = a.client_secret.clone().unwrap();
    let opened = t
        .ctx
        .vault
        .open_secret(
            &sealed_a,
            tokenwarden_store::SealedColumn::TokenClientSecret,
            &a.id.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(opened.expose_secret(), "vNy-client-secret-SEEDED-1");
    // Another row, another column: refused.
    assert!(
        t.ctx
            .vault
            .open_secret(
                &sealed_a,
                tokenwarden_store::SealedColumn::TokenClientSecret,
                &b.id.to_string()
            )
            .await
            .is_err()
    );
    assert!(
        t.ctx
            .vault
            .open_secret(
                &sealed_a,
                tokenwarden_store::SealedColumn::TokenRefreshToken,
                &a.id.to_string()
            )
            .await
            .is_err()
    );
    // Even when written into the other row by someone with database access.
    let mut b2 = b.clone();
    b2.client_secret = Some(sealed_a);
    let b2 = t.ctx.store.update_token(&b2, t.clock_now()).await.unwrap();
    let err = t
        .ctx
        .vault
        .open_secret(
            b2.client_secret.as_ref().unwrap(),
            tokenwarden_store::SealedColumn::TokenClientSecret,
            &b.id.to_string(),
        )
        .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn r22_rotation_moves_every_secret_and_the_old_key_can_go() {
    let t = spawn(Db::Sqlite).await;
    t.seed().await;
    let before = t.ctx.vault.active_key_id();
    let report = t.ctx.vault.rotate(t.clock_now(), true).await.unwrap();
    assert_ne!(report.new_key_id, before);
    assert_eq!(report.resealed, 1);
    assert_eq!(report.retired_keys, vec![before]);
    let (ok, failed) = t.ctx.vault.verify_all().await.unwrap();
    assert_eq!((ok, failed.len()), (1, 0));
    // A vault opened afresh with the same master key reads everything.
    let again =
        tokenwarden_server::Vault::open(t.ctx.store.clone(), t.master.clone(), t.clock_now())
            .await
            .unwrap();
    assert_eq!(again.verify_all().await.unwrap().0, 1);
    // New writes use the new key.
    let (s, tok) = t
        .admin(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({"name": "n", "provider": "github", "client_secret": "s"})),
        )
        .await;
    assert_eq!(s, 201);
    let rec = t
        .ctx
        .store
        .get_token(TokenId::parse(tok["id"].as_str().unwrap()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        tokenwarden_crypto::key_id_of(&rec.client_secret.unwrap().0).unwrap(),
        report.new_key_id
    );
}

#[tokio::test]
async fn r21_another_master_key_is_refused_before_anything_is_written() {
    let t = spawn(Db::Sqlite).await;
    t.seed().await;
    let wrong = tokenwarden_crypto::MasterKey::generate();
    let err = tokenwarden_server::Vault::open(t.ctx.store.clone(), wrong, t.clock_now())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("master key is wrong"), "{err}");
    assert_eq!(
        t.ctx.store.list_data_keys().await.unwrap().len(),
        1,
        "no key was added"
    );
}

#[tokio::test]
async fn an_old_key_is_dropped_only_after_every_instance_could_reload() {
    let t = spawn(Db::Sqlite).await;
    t.seed().await;
    let old = t.ctx.vault.active_key_id();
    t.ctx.vault.rotate(t.clock_now(), false).await.unwrap();
    let err = t.ctx.vault.drop_key(&old, t.clock_now()).await.unwrap_err();
    assert!(err.to_string().contains("rotated less than"), "{err}");
    t.clock
        .advance(tokenwarden_server::vault::DROP_GRACE + chrono::Duration::seconds(1));
    t.ctx.vault.drop_key(&old, t.clock_now()).await.unwrap();
    assert_eq!(t.ctx.vault.verify_all().await.unwrap().1.len(), 0);
}
