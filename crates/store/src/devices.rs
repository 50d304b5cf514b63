//! Paired operator devices, their pending pairing requests and their per-role device tokens.
//!
//! A device token is a bearer secret, so only its SHA-256 digest is stored: the plaintext is
//! handed to the device once and never written anywhere. The gateway compares digests in
//! constant time; this module only stores and returns them. Scopes are JSON arrays of strings.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::{Store, StoreError};

/// A paired device, bound to one public key.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRow {
    pub device_id: String,
    pub public_key: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub role: String,
    pub approved_scopes: Vec<String>,
    /// `silent` (loopback auto-approval), `manual` (device.pair.approve) or `imported`.
    pub approved_via: String,
    pub created_at: i64,
    pub approved_at: i64,
    pub last_seen_at: i64,
    pub remote_ip: Option<String>,
}

/// A device token for one (device, role): only the SHA-256 digest of the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceTokenRow {
    pub device_id: String,
    pub role: String,
    pub token_sha256: [u8; 32],
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A pending pairing request (at most one per device).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRequestRow {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub remote_ip: Option<String>,
    pub reason: String,
    pub ts: i64,
}

const DEVICE_COLS: &str = "device_id, public_key, display_name, platform, device_family, \
     client_id, client_mode, role, approved_scopes, approved_via, created_at, approved_at, \
     last_seen_at, remote_ip";
const TOKEN_COLS: &str = "device_id, role, token_sha256, scopes, created_at, last_used_at";
const REQUEST_COLS: &str = "request_id, device_id, public_key, display_name, platform, \
     device_family, client_id, client_mode, role, scopes, remote_ip, reason, ts";

fn scopes_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn scopes_text(scopes: &[String]) -> Result<String, StoreError> {
    Ok(serde_json::to_string(scopes)?)
}

fn device_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        device_id: row.get(0)?,
        public_key: row.get(1)?,
        display_name: row.get(2)?,
        platform: row.get(3)?,
        device_family: row.get(4)?,
        client_id: row.get(5)?,
        client_mode: row.get(6)?,
        role: row.get(7)?,
        approved_scopes: scopes_col(row, 8)?,
        approved_via: row.get(9)?,
        created_at: row.get(10)?,
        approved_at: row.get(11)?,
        last_seen_at: row.get(12)?,
        remote_ip: row.get(13)?,
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceTokenRow> {
    let digest: Vec<u8> = row.get(2)?;
    let token_sha256: [u8; 32] = digest.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Blob,
            "token digest is not 32 bytes".into(),
        )
    })?;
    Ok(DeviceTokenRow {
        device_id: row.get(0)?,
        role: row.get(1)?,
        token_sha256,
        scopes: scopes_col(row, 3)?,
        created_at: row.get(4)?,
        last_used_at: row.get(5)?,
    })
}

fn request_from_row(row: &Row<'_>) -> rusqlite::Result<DeviceRequestRow> {
    Ok(DeviceRequestRow {
        request_id: row.get(0)?,
        device_id: row.get(1)?,
        public_key: row.get(2)?,
        display_name: row.get(3)?,
        platform: row.get(4)?,
        device_family: row.get(5)?,
        client_id: row.get(6)?,
        client_mode: row.get(7)?,
        role: row.get(8)?,
        scopes: scopes_col(row, 9)?,
        remote_ip: row.get(10)?,
        reason: row.get(11)?,
        ts: row.get(12)?,
    })
}

fn get_device(conn: &Connection, device_id: &str) -> Result<Option<DeviceRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {DEVICE_COLS} FROM devices WHERE device_id = ?1"),
            [device_id],
            device_from_row,
        )
        .optional()?)
}

fn upsert_device(conn: &Connection, d: &DeviceRow) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO devices ({DEVICE_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (device_id) DO UPDATE SET
                public_key = excluded.public_key, display_name = excluded.display_name,
                platform = excluded.platform, device_family = excluded.device_family,
                client_id = excluded.client_id, client_mode = excluded.client_mode,
                role = excluded.role, approved_scopes = excluded.approved_scopes,
                approved_via = excluded.approved_via, created_at = excluded.created_at,
                approved_at = excluded.approved_at, last_seen_at = excluded.last_seen_at,
                remote_ip = excluded.remote_ip"
        ),
        params![
            d.device_id,
            d.public_key,
            d.display_name,
            d.platform,
            d.device_family,
            d.client_id,
            d.client_mode,
            d.role,
            scopes_text(&d.approved_scopes)?,
            d.approved_via,
            d.created_at,
            d.approved_at,
            d.last_seen_at,
            d.remote_ip,
        ],
    )?;
    Ok(())
}

fn upsert_token(conn: &Connection, t: &DeviceTokenRow) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO device_tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ),
        params![
            t.device_id,
            t.role,
            &t.token_sha256[..],
            scopes_text(&t.scopes)?,
            t.created_at,
            t.last_used_at,
        ],
    )?;
    Ok(())
}

fn insert_request(conn: &Connection, r: &DeviceRequestRow) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO device_pair_requests ({REQUEST_COLS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        params![
            r.request_id,
            r.device_id,
            r.public_key,
            r.display_name,
            r.platform,
            r.device_family,
            r.client_id,
            r.client_mode,
            r.role,
            scopes_text(&r.scopes)?,
            r.remote_ip,
            r.reason,
            r.ts,
        ],
    )?;
    Ok(())
}

impl Store {
    /// The paired device `device_id`.
    pub fn device(&self, device_id: &str) -> Result<Option<DeviceRow>, StoreError> {
        get_device(&self.conn(), device_id)
    }

    /// Every paired device, by id.
    pub fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {DEVICE_COLS} FROM devices ORDER BY device_id"
        ))?;
        let rows = stmt.query_map([], device_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The token digests of a device, by role.
    pub fn device_tokens(&self, device_id: &str) -> Result<Vec<DeviceTokenRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {TOKEN_COLS} FROM device_tokens WHERE device_id = ?1 ORDER BY role"
        ))?;
        let rows = stmt.query_map([device_id], token_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The token digest of (device, role).
    pub fn device_token(
        &self,
        device_id: &str,
        role: &str,
    ) -> Result<Option<DeviceTokenRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {TOKEN_COLS} FROM device_tokens WHERE device_id = ?1 AND role = ?2"
                ),
                params![device_id, role],
                token_from_row,
            )
            .optional()?)
    }

    /// Records a paired device and drops its pending requests, in one transaction. When the
    /// device was paired with a different public key, its tokens are deleted with the old key.
    pub fn pair_device(&self, device: &DeviceRow) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(old) = get_device(&tx, &device.device_id)? {
            if old.public_key != device.public_key {
                tx.execute(
                    "DELETE FROM device_tokens WHERE device_id = ?1",
                    [&device.device_id],
                )?;
            }
        }
        upsert_device(&tx, device)?;
        tx.execute(
            "DELETE FROM device_pair_requests WHERE device_id = ?1",
            [&device.device_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a paired device with its tokens; returns what was removed.
    pub fn delete_device(&self, device_id: &str) -> Result<Option<DeviceRow>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old = get_device(&tx, device_id)?;
        if old.is_some() {
            tx.execute(
                "DELETE FROM device_tokens WHERE device_id = ?1",
                [device_id],
            )?;
            tx.execute("DELETE FROM devices WHERE device_id = ?1", [device_id])?;
        }
        tx.commit()?;
        Ok(old)
    }

    /// Stores (or replaces) the token digest of (device, role); the device must be paired.
    pub fn put_device_token(&self, token: &DeviceTokenRow) -> Result<(), StoreError> {
        let conn = self.conn();
        if get_device(&conn, &token.device_id)?.is_none() {
            return Err(StoreError::NotFound(format!("device {}", token.device_id)));
        }
        upsert_token(&conn, token)
    }

    /// Notes that a device connected (and used its `role` token) at `now`.
    pub fn touch_device(&self, device_id: &str, role: &str, now: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE devices SET last_seen_at = ?2 WHERE device_id = ?1",
            params![device_id, now],
        )?;
        tx.execute(
            "UPDATE device_tokens SET last_used_at = ?3 WHERE device_id = ?1 AND role = ?2",
            params![device_id, role, now],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Pending requests made at or after `expire_before` (older ones are deleted), oldest first.
    pub fn device_requests(&self, expire_before: i64) -> Result<Vec<DeviceRequestRow>, StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM device_pair_requests WHERE ts < ?1",
            [expire_before],
        )?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {REQUEST_COLS} FROM device_pair_requests ORDER BY ts, request_id"
        ))?;
        let rows = stmt.query_map([], request_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One pending request by id.
    pub fn device_request(&self, request_id: &str) -> Result<Option<DeviceRequestRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {REQUEST_COLS} FROM device_pair_requests WHERE request_id = ?1"),
                [request_id],
                request_from_row,
            )
            .optional()?)
    }

    /// Records a pending request, in one transaction: deletes requests older than
    /// `expire_before`; if the device already has one asking for exactly the same key, role
    /// and scopes, refreshes it under its existing id; otherwise replaces the device's request
    /// with `req` (a new id, so an approval given for what an approver saw never covers a
    /// changed request). `None` when `max_pending` other devices already have requests.
    pub fn put_device_request(
        &self,
        req: &DeviceRequestRow,
        max_pending: usize,
        expire_before: i64,
    ) -> Result<Option<DeviceRequestRow>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM device_pair_requests WHERE ts < ?1",
            [expire_before],
        )?;
        let existing = tx
            .query_row(
                &format!("SELECT {REQUEST_COLS} FROM device_pair_requests WHERE device_id = ?1"),
                [&req.device_id],
                request_from_row,
            )
            .optional()?;
        let mut row = req.clone();
        match existing {
            Some(old)
                if old.public_key == req.public_key
                    && old.role == req.role
                    && old.scopes == req.scopes =>
            {
                row.request_id = old.request_id;
            }
            Some(_) => {
                tx.execute(
                    "DELETE FROM device_pair_requests WHERE device_id = ?1",
                    [&req.device_id],
                )?;
            }
            None => {
                let n: i64 =
                    tx.query_row("SELECT COUNT(*) FROM device_pair_requests", [], |r| {
                        r.get(0)
                    })?;
                if crate::to_usize(n) >= max_pending {
                    return Ok(None);
                }
            }
        }
        insert_request(&tx, &row)?;
        tx.commit()?;
        Ok(Some(row))
    }

    /// Removes a pending request; returns it.
    pub fn delete_device_request(
        &self,
        request_id: &str,
    ) -> Result<Option<DeviceRequestRow>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old = tx
            .query_row(
                &format!("SELECT {REQUEST_COLS} FROM device_pair_requests WHERE request_id = ?1"),
                [request_id],
                request_from_row,
            )
            .optional()?;
        if old.is_some() {
            tx.execute(
                "DELETE FROM device_pair_requests WHERE request_id = ?1",
                [request_id],
            )?;
        }
        tx.commit()?;
        Ok(old)
    }

    /// Imports devices, token digests and requests (e.g. from a legacy file) in one
    /// transaction; rows with the same keys are replaced, so importing twice is harmless.
    pub fn import_devices(
        &self,
        devices: &[DeviceRow],
        tokens: &[DeviceTokenRow],
        requests: &[DeviceRequestRow],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for d in devices {
            upsert_device(&tx, d)?;
        }
        for t in tokens {
            upsert_token(&tx, t)?;
        }
        for r in requests {
            insert_request(&tx, r)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "devices_tests.rs"]
mod tests;
