//! The vault: seals and opens every secret the store keeps, with the data keys that live in the
//! database wrapped by the master key.

use secrecy::SecretString;
use std::sync::{Arc, RwLock};
use tokenwarden_crypto::{Aad, CryptoError, DataKey, Keyring, MasterKey};
use tokenwarden_domain::Timestamp;
use tokenwarden_store::{DynStore, Sealed, SealedColumn, StoreError, StoredDataKey};

const CHECK_KEY: &str = "master_key_check";

/// How long after a rotation an old key may be dropped: every running instance has reloaded
/// its keyring by then (they do every minute).
pub const DROP_GRACE: chrono::Duration = chrono::Duration::seconds(120);

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "the key was rotated less than {0} s ago: running instances may still seal with it until they reload their keys; try again in a few minutes"
    )]
    TooSoon(i64),
    #[error(
        "the master key is wrong: this database was encrypted with the key whose check value is {expected}, \
         the configured key's is {actual}. Start with the original TOKENWARDEN_MASTER_KEY (or key file)."
    )]
    WrongMasterKey { expected: String, actual: String },
    #[error(
        "this database holds encrypted data but no master key is configured and there is none at \
         {looked_at}: put the key file back there, or set TOKENWARDEN_MASTER_KEY, \
         TOKENWARDEN_MASTER_KEY_FILE, or `master_key_file` in the config file"
    )]
    MissingMasterKey { looked_at: String },
    #[error("data key {0:?} cannot be unwrapped: {1}")]
    BadDataKey(String, CryptoError),
    #[error("the database has no active data key")]
    NoActiveKey,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a value sealed for a moment ([`Vault::seal_transient`]) is for: part of its
/// encryption context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// A secret the UI shows once, carried from the POST that made it to the page that shows it.
    ShownOnce,
}

impl Transient {
    fn as_str(self) -> &'static str {
        match self {
            Transient::ShownOnce => "shown_once",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Vault {
    master: MasterKey,
    keyring: Arc<RwLock<Keyring>>,
    store: DynStore,
}

/// What `keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub new_key_id: String,
    pub resealed: usize,
    /// Values changed concurrently while rotating (they were written with the new key anyway,
    /// or are retried on the next pass).
    pub skipped: usize,
    pub retired_keys: Vec<String>,
}

/// Has this database ever been initialised with a master key?
pub async fn is_initialised(store: &DynStore) -> Result<bool, VaultError> {
    Ok(store.get_meta(CHECK_KEY).await?.is_some())
}

/// The check value of the master key this database was initialised with (`None` before the
/// first start): what a backup's header names, so that a restore can refuse another key.
pub async fn master_key_check(store: &DynStore) -> Result<Option<String>, VaultError> {
    Ok(store.get_meta(CHECK_KEY).await?)
}

impl Vault {
    /// Opens the vault; on a fresh database, records the master key's check value and creates
    /// the first data key. A different master key than the one recorded is refused before
    /// anything is written.
    pub async fn open(
        store: DynStore,
        master: MasterKey,
        now: Timestamp,
    ) -> Result<Self, VaultError> {
        let actual = master.check_value();
        if store.set_meta_if_absent(CHECK_KEY, &actual).await? {
            tracing::info!(check_value = %actual, "initialised encryption with a new master key");
        }
        let expected = store.get_meta(CHECK_KEY).await?.unwrap_or_default();
        if expected != actual {
            return Err(VaultError::WrongMasterKey { expected, actual });
        }
        let mut keys = store.list_data_keys().await?;
        if keys.is_empty() {
            let k = DataKey::generate("k1")?;
            let stored = StoredDataKey {
                key_id: "k1".into(),
                wrapped: master.wrap_key(&k),
                active: true,
                created_at: now,
            };
            match store.insert_data_key(&stored).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {} // another instance got there first
                Err(e) => return Err(e.into()),
            }
            keys = store.list_data_keys().await?;
        }
        let keyring = load_keyring(&master, &keys)?;
        Ok(Self {
            master,
            keyring: Arc::new(RwLock::new(keyring)),
            store,
        })
    }

    /// Reloads data keys from the database (after another instance rotated).
    pub async fn reload(&self) -> Result<(), VaultError> {
        let keys = self.store.list_data_keys().await?;
        let ring = load_keyring(&self.master, &keys)?;
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = ring;
        Ok(())
    }

    fn ring(&self) -> Keyring {
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn active_key_id(&self) -> String {
        self.ring().active_key_id().to_owned()
    }

    /// Seals `secret` for `column` of the row `row`: it opens only there.
    pub fn seal(&self, secret: &SecretString, column: SealedColumn, row: &str) -> Sealed {
        Sealed(
            self.ring()
                .seal_str(secret, Aad::new(column.table(), column.column(), row)),
        )
    }

    /// Seals `secret` for a moment, never to be stored: for `purpose`, bound to `binding` (e.g.
    /// the session it is meant for). Its encryption context names no table, so it never opens
    /// as a stored value, nor a stored value as it.
    pub fn seal_transient(
        &self,
        secret: &SecretString,
        purpose: Transient,
        binding: &str,
    ) -> Vec<u8> {
        self.ring()
            .seal_str(secret, Aad::new("transient", purpose.as_str(), binding))
    }

    /// Opens what [`Vault::seal_transient`] sealed for the same purpose and binding.
    pub async fn open_transient(
        &self,
        sealed: &[u8],
        purpose: Transient,
        binding: &str,
    ) -> Result<SecretString, VaultError> {
        let aad = Aad::new("transient", purpose.as_str(), binding);
        match self.ring().open_str(sealed, aad) {
            Err(CryptoError::UnknownKey(_)) => {
                self.reload().await?;
                Ok(self.ring().open_str(sealed, aad)?)
            }
            other => Ok(other?),
        }
    }

    /// Opens a sealed secret; reloads the keyring once if the value uses a key this instance has
    /// not seen yet (another instance rotated).
    pub async fn open_secret(
        &self,
        sealed: &Sealed,
        column: SealedColumn,
        row: &str,
    ) -> Result<SecretString, VaultError> {
        let aad = Aad::new(column.table(), column.column(), row);
        match self.ring().open_str(&sealed.0, aad) {
            Err(CryptoError::UnknownKey(_)) => {
                self.reload().await?;
                Ok(self.ring().open_str(&sealed.0, aad)?)
            }
            other => Ok(other?),
        }
    }

    /// Adds a new data key, makes it active, and re-seals every stored secret with it. Runs
    /// online: values written concurrently are compare-and-swapped, never overwritten. With
    /// `drop_old`, keys no longer used by any value are then removed; leave it off while other
    /// instances run that may not have reloaded their keyring yet (they do every minute).
    pub async fn rotate(
        &self,
        now: Timestamp,
        drop_old: bool,
    ) -> Result<RotationReport, VaultError> {
        self.reload().await?;
        let existing: Vec<String> = self.ring().key_ids().map(str::to_owned).collect();
        let next = (1..)
            .map(|n| format!("k{n}"))
            .find(|id| !existing.contains(id))
            .unwrap_or_else(|| "k0".into());
        let key = DataKey::generate(&next)?;
        self.store
            .insert_data_key(&StoredDataKey {
                key_id: next.clone(),
                wrapped: self.master.wrap_key(&key),
                active: true,
                created_at: now,
            })
            .await?;
        self.reload().await?;
        let ring = self.ring();
        let (mut resealed, mut skipped) = (0, 0);
        for value in self.store.sealed_values().await? {
            let aad = Aad::new(value.column.table(), value.column.column(), &value.row_id);
            let new = ring.reseal(&value.sealed.0, aad)?;
            if new == value.sealed.0 {
                continue;
            }
            if self.store.replace_sealed(&value, &Sealed(new)).await? {
                resealed += 1;
            } else {
                skipped += 1;
            }
        }
        let mut retired_keys = Vec::new();
        if drop_old && skipped == 0 {
            for old in existing {
                match self.store.delete_data_key(&old).await {
                    Ok(()) => retired_keys.push(old),
                    Err(StoreError::Conflict(m)) => tracing::warn!(key = %old, "kept: {m}"),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(RotationReport {
            new_key_id: next,
            resealed,
            skipped,
            retired_keys,
        })
    }

    /// Opens every sealed value in the database; returns how many opened and the places of
    /// those that did not (`keys verify`).
    pub async fn verify_all(&self) -> Result<(usize, Vec<String>), VaultError> {
        self.reload().await?;
        let ring = self.ring();
        let (mut ok, mut failed) = (0, Vec::new());
        for v in self.store.sealed_values().await? {
            let (table, column) = (v.column.table(), v.column.column());
            match ring.open(&v.sealed.0, Aad::new(table, column, &v.row_id)) {
                Ok(_) => ok += 1,
                Err(e) => failed.push(format!("{table}.{column} of row {}: {e}", v.row_id)),
            }
        }
        Ok((ok, failed))
    }

    /// Removes one data key; refused while it is active or any value still uses it.
    ///
    /// Also refused within [`DROP_GRACE`] of the last rotation: a running instance may still be
    /// sealing with the old key until it reloads its keyring (every minute).
    pub async fn drop_key(&self, key_id: &str, now: Timestamp) -> Result<(), VaultError> {
        let keys = self.store.list_data_keys().await?;
        if let Some(active) = keys.iter().find(|k| k.active)
            && active.key_id != key_id
            && now - active.created_at < DROP_GRACE
        {
            let in_use = self
                .store
                .sealed_values()
                .await?
                .iter()
                .filter(|v| tokenwarden_crypto::key_id_of(&v.sealed.0).is_ok_and(|k| k == key_id))
                .count();
            if in_use == 0 {
                return Err(VaultError::TooSoon(DROP_GRACE.num_seconds()));
            }
        }
        self.store.delete_data_key(key_id).await?;
        self.reload().await
    }
}

fn load_keyring(master: &MasterKey, keys: &[StoredDataKey]) -> Result<Keyring, VaultError> {
    let mut active = None;
    let mut others = Vec::new();
    for k in keys {
        let dk = master
            .unwrap_key(&k.key_id, &k.wrapped)
            .map_err(|e| VaultError::BadDataKey(k.key_id.clone(), e))?;
        if k.active && active.is_none() {
            active = Some(dk);
        } else {
            others.push(dk);
        }
    }
    Ok(Keyring::new(active.ok_or(VaultError::NoActiveKey)?, others))
}
