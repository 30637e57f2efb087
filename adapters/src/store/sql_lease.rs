//! `impl_leases!`: the [`Leases`](super::Leases) implementation both SQL backends share, with
//! `check_fence`, the fencing check a guarded write runs in its own transaction.
//!
//! Taking a lease is one statement: an upsert that changes the row only when it is free,
//! expired or already the caller's, raising the epoch when the owner changes. On Postgres the
//! row lock of that upsert and the fencing check's `FOR SHARE` order a takeover against every
//! guarded write: a write that checked the old epoch commits before the takeover, or fails.

/// Takes or renews a lease (`$1` name, `$2` owner, `$3` now, `$4` expiry); returns the epoch
/// when granted, no row when another owner holds it. (`SET` expressions read the old row.)
pub(crate) const LEASE_ACQUIRE: &str = "INSERT INTO sealpost_leases (name, owner, epoch, acquired_at, expires_at) \
     VALUES ($1, $2, 1, $3, $4) ON CONFLICT (name) DO UPDATE SET \
     epoch = CASE WHEN sealpost_leases.owner = excluded.owner THEN sealpost_leases.epoch ELSE sealpost_leases.epoch + 1 END, \
     acquired_at = CASE WHEN sealpost_leases.owner = excluded.owner THEN sealpost_leases.acquired_at ELSE excluded.acquired_at END, \
     owner = excluded.owner, expires_at = excluded.expires_at \
     WHERE sealpost_leases.owner = excluded.owner OR sealpost_leases.expires_at <= excluded.acquired_at \
     RETURNING epoch";
/// Records another store's lease (`$1` name, `$2` owner, `$3` epoch, `$4` acquired, `$5`
/// expiry) unless a higher epoch is recorded.
pub(crate) const LEASE_MIRROR: &str = "INSERT INTO sealpost_leases (name, owner, epoch, acquired_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET \
     owner = excluded.owner, epoch = excluded.epoch, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at \
     WHERE sealpost_leases.epoch <= excluded.epoch";
/// Gives a lease up if it is still the caller's at that epoch.
pub(crate) const LEASE_RELEASE: &str =
    "UPDATE sealpost_leases SET expires_at = 0 WHERE name = $1 AND owner = $2 AND epoch = $3";
/// Frees every lease.
pub(crate) const LEASE_FREE_ALL: &str = "UPDATE sealpost_leases SET expires_at = 0";
/// Every lease.
pub(crate) const LEASE_LIST: &str =
    "SELECT name, owner, epoch, acquired_at, expires_at FROM sealpost_leases ORDER BY name";

/// Implements [`Leases`](super::Leases) for a backend type with `writer` and `reader` pools of
/// database `$db`, a `BEGIN_WRITE` statement and `LEASE_FOR_SHARE` (a lease's owner and epoch,
/// the row locked against a takeover until the transaction ends where the backend can), and the
/// inherent `check_fence`, which a guarded write runs in its own transaction.
macro_rules! impl_leases {
    ($ty:ty, $db:ty) => {
        impl $ty {
            /// [`StoreError::Fenced`](super::StoreError::Fenced) unless the lease of `fence`
            /// still has its owner and epoch; run inside the guarded write's transaction.
            pub(crate) async fn check_fence(
                conn: &mut <$db as sqlx::Database>::Connection,
                fence: &$crate::store::Fence,
            ) -> Result<(), $crate::store::StoreError> {
                let held: Option<(String, i64)> = sqlx::query_as(Self::LEASE_FOR_SHARE)
                    .bind(&fence.name)
                    .fetch_optional(&mut *conn)
                    .await?;
                if held != Some((fence.owner.clone(), fence.epoch as i64)) {
                    return Err($crate::store::StoreError::Fenced(fence.name.clone()));
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::Leases for $ty {
            async fn acquire(
                &self,
                name: &str,
                owner: &str,
                now: i64,
                ttl_ms: i64,
            ) -> Result<Option<$crate::store::Lease>, $crate::store::StoreError> {
                let expires_at = now.saturating_add(ttl_ms);
                let epoch: Option<i64> =
                    sqlx::query_scalar($crate::store::sql_lease::LEASE_ACQUIRE)
                        .bind(name)
                        .bind(owner)
                        .bind(now)
                        .bind(expires_at)
                        .fetch_optional(&self.writer)
                        .await?;
                Ok(epoch.map(|epoch| $crate::store::Lease {
                    name: name.to_owned(),
                    owner: owner.to_owned(),
                    epoch: epoch as u64,
                    expires_at,
                }))
            }

            async fn release(
                &self,
                lease: &$crate::store::Lease,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql_lease::LEASE_RELEASE)
                    .bind(&lease.name)
                    .bind(&lease.owner)
                    .bind(lease.epoch as i64)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn free_all(&self) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql_lease::LEASE_FREE_ALL)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn leases(
                &self,
            ) -> Result<Vec<$crate::store::LeaseRow>, $crate::store::StoreError> {
                let rows: Vec<(String, String, i64, i64, i64)> =
                    sqlx::query_as($crate::store::sql_lease::LEASE_LIST)
                        .fetch_all(&self.reader)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(name, owner, epoch, acquired_at, expires_at)| $crate::store::LeaseRow {
                            name,
                            owner,
                            epoch: epoch as u64,
                            acquired_at,
                            expires_at,
                        },
                    )
                    .collect())
            }

            async fn check(
                &self,
                fence: &$crate::store::Fence,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                Self::check_fence(&mut *tx, fence).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn mirror(
                &self,
                lease: &$crate::store::LeaseRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql_lease::LEASE_MIRROR)
                    .bind(&lease.name)
                    .bind(&lease.owner)
                    .bind(lease.epoch as i64)
                    .bind(lease.acquired_at)
                    .bind(lease.expires_at)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_leases;
