//! The registrar's tables (migration 0007): users with their HA1s, and
//! bindings with their expiry. Small, written directly (not through the
//! session writer): a binding is rewritten by every REGISTER anyway.

use crate::{Store, StoreError};
use sqlx::Row;
use stox_call::{Millis, iso8601};

/// A user's stored keys.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    pub aor: String,
    pub ha1_md5: String,
    pub ha1_sha256: String,
}

impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("aor", &self.aor)
            .finish_non_exhaustive()
    }
}

/// A binding row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRow {
    pub aor: String,
    pub key: String,
    pub contact: String,
    pub transport: String,
    pub source: String,
    pub expires_at: Millis,
}

impl Store {
    /// Every user.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query("SELECT aor, ha1_md5, ha1_sha256 FROM sip_users ORDER BY aor")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UserRow {
                    aor: r.try_get("aor")?,
                    ha1_md5: r.try_get("ha1_md5")?,
                    ha1_sha256: r.try_get("ha1_sha256")?,
                })
            })
            .collect()
    }

    /// Changes when the users change (count and last update), cheaply.
    pub async fn users_version(&self) -> Result<String, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) || '/' || COALESCE(MAX(updated_at), '') FROM sip_users")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get::<String, _>(0)?)
    }

    /// Adds a user or replaces its keys.
    pub async fn put_user(&self, user: &UserRow, now: Millis) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sip_users (aor, ha1_md5, ha1_sha256, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT(aor) DO UPDATE SET ha1_md5 = excluded.ha1_md5, \
             ha1_sha256 = excluded.ha1_sha256, updated_at = excluded.updated_at",
        )
        .bind(&user.aor)
        .bind(&user.ha1_md5)
        .bind(&user.ha1_sha256)
        .bind(iso8601(now))
        .bind(iso8601(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes a user and its bindings; false when there was none.
    pub async fn remove_user(&self, aor: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sip_users WHERE aor = $1")
            .bind(aor)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM sip_bindings WHERE aor = $1")
            .bind(aor)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Writes a binding (or with `None` removes it).
    pub async fn put_binding(
        &self,
        aor: &str,
        key: &str,
        binding: Option<&BindingRow>,
        now: Millis,
    ) -> Result<(), StoreError> {
        match binding {
            Some(b) => {
                sqlx::query(
                    "INSERT INTO sip_bindings (aor, binding_key, contact, transport, source, expires_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(aor, binding_key) DO UPDATE SET \
                     contact = excluded.contact, transport = excluded.transport, source = excluded.source, \
                     expires_at = excluded.expires_at, updated_at = excluded.updated_at",
                )
                .bind(aor)
                .bind(key)
                .bind(&b.contact)
                .bind(&b.transport)
                .bind(&b.source)
                .bind(iso8601(b.expires_at))
                .bind(iso8601(now))
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM sip_bindings WHERE aor = $1 AND binding_key = $2")
                    .bind(aor)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Bindings that have not expired at `now` (expired ones are deleted).
    pub async fn live_bindings(&self, now: Millis) -> Result<Vec<BindingRow>, StoreError> {
        let now_text = iso8601(now);
        sqlx::query("DELETE FROM sip_bindings WHERE expires_at <= $1")
            .bind(&now_text)
            .execute(&self.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT aor, binding_key, contact, transport, source, expires_at FROM sip_bindings ORDER BY aor, binding_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let expires: String = r.try_get("expires_at")?;
                Ok(BindingRow {
                    aor: r.try_get("aor")?,
                    key: r.try_get("binding_key")?,
                    contact: r.try_get("contact")?,
                    transport: r.try_get("transport")?,
                    source: r.try_get("source")?,
                    expires_at: crate::parse_iso8601(&expires).ok_or_else(|| {
                        StoreError::Corrupt {
                            id: 0,
                            detail: format!("sip_bindings.expires_at = {expires:?}"),
                        }
                    })?,
                })
            })
            .collect()
    }
}
