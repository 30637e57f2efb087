//! `impl_key_store!`: the [`KeyStore`](super::KeyStore) implementation both SQL backends share,
//! with `insert_key_in_tx!` and `destroy_in_tx!` (insert checks tombstones; destroy writes them).

/// Implements [`KeyStore`](super::KeyStore) for a backend type with `reader` and `writer` pools, a
/// `BEGIN_WRITE` statement, an inherent `scrub_storage()` that removes deleted bytes from storage
/// and an inherent `check_fence(conn, fence)` (the lease check of a fenced session write).
macro_rules! impl_key_store {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::KeyStore for $ty {
            async fn insert_if_absent(
                &self,
                key: &$crate::store::WrappedKey,
            ) -> Result<$crate::store::WrappedKey, $crate::store::StoreError> {
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                let row = $crate::store::insert_key_in_tx!(tx, key);
                tx.commit().await?;
                row.try_into()
            }

            async fn destroyed_at(
                &self,
                business: &str,
                key_id: &str,
            ) -> Result<Option<i64>, $crate::store::StoreError> {
                let row: Option<(i64,)> = sqlx::query_as($crate::store::sql::KEY_DESTROYED_AT)
                    .bind(business)
                    .bind(key_id)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|(at,)| at))
            }

            async fn destroy(
                &self,
                d: &$crate::store::Destruction,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                let deleted = $crate::store::destroy_in_tx!(tx, d);
                tx.commit().await?;
                Ok(deleted)
            }

            async fn scrub(&self) -> Result<(), $crate::store::StoreError> {
                self.scrub_storage().await
            }

            async fn get(
                &self,
                business: &str,
                key_id: &str,
            ) -> Result<$crate::store::KeyState, $crate::store::StoreError> {
                let row: Option<$crate::store::DbKey> = sqlx::query_as($crate::store::sql::KEY_GET)
                    .bind(business)
                    .bind(key_id)
                    .fetch_optional(&self.reader)
                    .await?;
                if let Some(row) = row {
                    return Ok($crate::store::KeyState::Live(row.try_into()?));
                }
                let tomb: Option<(i32,)> = sqlx::query_as($crate::store::sql::KEY_TOMBSTONE)
                    .bind(business)
                    .bind(key_id)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(if tomb.is_some() {
                    $crate::store::KeyState::Destroyed
                } else {
                    $crate::store::KeyState::Missing
                })
            }

            async fn latest_ledger(
                &self,
                business_id: &str,
                region: &str,
            ) -> Result<Option<$crate::store::WrappedKey>, $crate::store::StoreError> {
                let row: Option<$crate::store::DbKey> =
                    sqlx::query_as($crate::store::sql::KEY_LATEST_LEDGER)
                        .bind(business_id)
                        .bind(region)
                        .fetch_optional(&self.reader)
                        .await?;
                row.map(TryInto::try_into).transpose()
            }

            async fn ledger_heads(
                &self,
            ) -> Result<Vec<$crate::store::WrappedKey>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::DbKey> =
                    sqlx::query_as($crate::store::sql::KEY_LEDGER_HEADS)
                        .fetch_all(&self.reader)
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn expired_epochs(
                &self,
                up_to: i64,
                limit: u32,
            ) -> Result<Vec<$crate::store::WrappedKey>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::DbKey> =
                    sqlx::query_as($crate::store::sql::KEY_EXPIRED_EPOCHS)
                        .bind(up_to)
                        .bind(i64::from(limit))
                        .fetch_all(&self.reader)
                        .await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn index_put(
                &self,
                business_id: &str,
                region: &str,
                blind: &[u8],
                subject_id: &str,
            ) -> Result<String, $crate::store::StoreError> {
                sqlx::query($crate::store::sql::INDEX_PUT)
                    .bind(business_id)
                    .bind(region)
                    .bind(blind)
                    .bind(subject_id)
                    .execute(&self.writer)
                    .await?;
                let (s,): (String,) = sqlx::query_as($crate::store::sql::INDEX_GET)
                    .bind(business_id)
                    .bind(region)
                    .bind(blind)
                    .fetch_one(&self.writer)
                    .await?;
                Ok(s)
            }

            async fn index_get(
                &self,
                business_id: &str,
                region: &str,
                blind: &[u8],
            ) -> Result<Option<String>, $crate::store::StoreError> {
                let row: Option<(String,)> = sqlx::query_as($crate::store::sql::INDEX_GET)
                    .bind(business_id)
                    .bind(region)
                    .bind(blind)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|(s,)| s))
            }

            async fn signal_account(
                &self,
                business: &str,
                region: &str,
                owner: &str,
            ) -> Result<Option<(u32, Vec<u8>)>, $crate::store::StoreError> {
                let row: Option<(i32, Vec<u8>)> = sqlx::query_as($crate::store::sql::ACCOUNT_GET)
                    .bind(business)
                    .bind(owner)
                    .bind(region)
                    .fetch_optional(&self.reader)
                    .await?;
                row.map(|(g, w)| Ok(($crate::store::sql::generation(g)?, w)))
                    .transpose()
            }

            async fn delete_signal_account(
                &self,
                business: &str,
                region: &str,
                owner: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::ACCOUNT_DELETE)
                    .bind(business)
                    .bind(owner)
                    .bind(region)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn put_signal_account(
                &self,
                owner: &str,
                business_id: &str,
                region: &str,
                (generation, wrapped): (u32, &[u8]),
                at: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::ACCOUNT_PUT)
                    .bind(owner)
                    .bind(business_id)
                    .bind(region)
                    .bind(wrapped)
                    .bind(at)
                    .bind(generation as i32)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn root_generation(
                &self,
                region: &str,
            ) -> Result<Option<(u32, i64)>, $crate::store::StoreError> {
                let row: Option<(i32, i64)> =
                    sqlx::query_as($crate::store::sql::ROOT_GENERATION_GET)
                        .bind(region)
                        .fetch_optional(&self.writer)
                        .await?;
                row.map(|(g, since)| Ok(($crate::store::sql::generation(g)?, since)))
                    .transpose()
            }

            async fn set_root_generation(
                &self,
                region: &str,
                generation: u32,
                at: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::ROOT_GENERATION_SET)
                    .bind(region)
                    .bind(generation as i32)
                    .bind(at)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn under_root(
                &self,
                region: &str,
                (generation, table): (u32, $crate::store::UnderRoot),
                after: &str,
                limit: u32,
            ) -> Result<Vec<$crate::store::RootSealed>, $crate::store::StoreError> {
                let sql = match table {
                    $crate::store::UnderRoot::Key => $crate::store::sql::KEYS_UNDER_ROOT,
                    $crate::store::UnderRoot::Account => $crate::store::sql::ACCOUNTS_UNDER_ROOT,
                };
                let rows: Vec<(String, String, String, i32, Vec<u8>)> = sqlx::query_as(sql)
                    .bind(region)
                    .bind(generation as i32)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.writer)
                    .await?;
                rows.into_iter()
                    .map(|(business_id, id, region, g, sealed)| {
                        Ok($crate::store::RootSealed {
                            table,
                            business_id,
                            id,
                            region,
                            generation: $crate::store::sql::generation(g)?,
                            sealed,
                        })
                    })
                    .collect()
            }

            async fn count_under_root(
                &self,
                region: &str,
                below: u32,
            ) -> Result<u64, $crate::store::StoreError> {
                let mut n = 0i64;
                for sql in [
                    $crate::store::sql::KEYS_COUNT_UNDER_ROOT,
                    $crate::store::sql::ACCOUNTS_COUNT_UNDER_ROOT,
                ] {
                    let (count,): (i64,) = sqlx::query_as(sql)
                        .bind(region)
                        .bind(below as i32)
                        .fetch_one(&self.writer)
                        .await?;
                    n += count;
                }
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn rewrap(
                &self,
                row: &$crate::store::RootSealed,
                generation: u32,
                sealed: &[u8],
            ) -> Result<bool, $crate::store::StoreError> {
                let sql = match row.table {
                    $crate::store::UnderRoot::Key => $crate::store::sql::KEY_REWRAP,
                    $crate::store::UnderRoot::Account => $crate::store::sql::ACCOUNT_REWRAP,
                };
                let done = sqlx::query(sql)
                    .bind(sealed)
                    .bind(generation as i32)
                    .bind(&row.business_id)
                    .bind(&row.id)
                    .bind(&row.region)
                    .bind(&row.sealed)
                    .execute(&self.writer)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn signal_session(
                &self,
                business_id: &str,
                _region: &str,
                subject_id: &str,
                device: u8,
            ) -> Result<Option<Vec<u8>>, $crate::store::StoreError> {
                let row: Option<(Vec<u8>,)> = sqlx::query_as($crate::store::sql::SESSION_GET)
                    .bind(business_id)
                    .bind(subject_id)
                    .bind(i32::from(device))
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|(s,)| s))
            }

            async fn put_signal_sessions(
                &self,
                sessions: &[$crate::store::SessionRow],
                fence: Option<&$crate::store::Fence>,
            ) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                if let Some(fence) = fence {
                    Self::check_fence(&mut *tx, fence).await?;
                }
                for r in sessions {
                    sqlx::query($crate::store::sql::SESSION_PUT)
                        .bind(&r.business_id)
                        .bind(&r.region)
                        .bind(&r.subject_id)
                        .bind(i32::from(r.device))
                        .bind(&r.sealed)
                        .bind(r.at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}
pub(crate) use impl_key_store;

/// Inserts a key unless present, inside a transaction that first checks the tombstones.
macro_rules! insert_key_in_tx {
    ($tx:expr, $key:expr) => {{
        let tomb: Option<(i32,)> = sqlx::query_as($crate::store::sql::KEY_TOMBSTONE)
            .bind(&$key.business_id)
            .bind(&$key.key_id)
            .fetch_optional(&mut *$tx)
            .await?;
        if tomb.is_some() {
            return Err($crate::store::StoreError::KeyDestroyed);
        }
        sqlx::query($crate::store::sql::KEY_INSERT)
            .bind(&$key.key_id)
            .bind($key.kind.as_str())
            .bind(&$key.business_id)
            .bind(&$key.region)
            .bind($key.epoch)
            .bind(&$key.subject_id)
            .bind($key.version as i32)
            .bind(&$key.wrapped)
            .bind($key.created_at)
            .bind($key.root as i32)
            .execute(&mut *$tx)
            .await?;
        let row: $crate::store::DbKey = sqlx::query_as($crate::store::sql::KEY_GET)
            .bind(&$key.business_id)
            .bind(&$key.key_id)
            .fetch_one(&mut *$tx)
            .await?;
        row
    }};
}
pub(crate) use insert_key_in_tx;

/// Deletes keys, writes their tombstones and drops index entries inside a transaction;
/// evaluates to the number of keys deleted.
macro_rules! destroy_in_tx {
    ($tx:expr, $d:expr) => {{
        let mut deleted = 0u64;
        for key in &$d.keys {
            let row: Option<(String,)> = sqlx::query_as($crate::store::sql::KEY_DELETE)
                .bind(&key.business)
                .bind(&key.id)
                .fetch_optional(&mut *$tx)
                .await?;
            if let Some((kind,)) = row {
                deleted += 1;
                sqlx::query($crate::store::sql::KEY_ADD_TOMBSTONE)
                    .bind(&key.id)
                    .bind(&key.business)
                    .bind(kind)
                    .bind($d.at)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
        for subject in &$d.index_subjects {
            sqlx::query($crate::store::sql::INDEX_DELETE_SUBJECT)
                .bind(&subject.business)
                .bind(&subject.id)
                .execute(&mut *$tx)
                .await?;
            sqlx::query($crate::store::sql::SESSION_DELETE_SUBJECT)
                .bind(&subject.business)
                .bind(&subject.id)
                .execute(&mut *$tx)
                .await?;
        }
        deleted
    }};
}
pub(crate) use destroy_in_tx;
