//! `impl_event_log!`: the [`EventLog`](super::EventLog) implementation both SQL backends
//! share; only the append statements differ, behind [`AppendTx`](super::AppendTx).

/// Implements [`EventLog`](super::EventLog) for a backend type with `reader` and `writer` pools, a
/// `BEGIN_WRITE` statement, an inherent `append_tx(tx)` that wraps its transaction in an
/// [`AppendTx`](super::AppendTx) and `check_fence` (from `impl_leases!`). All SQL but the append statements is identical on both backends.
macro_rules! impl_event_log {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::EventLog for $ty {
            async fn append(
                &self,
                commands: &[$crate::store::AppendCommand],
                hook: Option<&dyn $crate::store::TxHook>,
            ) -> Result<$crate::store::AppendOutcome, $crate::store::StoreError> {
                let tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                $crate::store::run_append(Self::append_tx(tx), commands, hook).await
            }

            async fn read_stream(
                &self,
                stream: &$crate::store::StreamId,
                after: u64,
            ) -> Result<Vec<$crate::store::StoredRow>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::DbRow> =
                    sqlx::query_as($crate::store::sql::READ_STREAM)
                        .bind(&stream.business)
                        .bind(&stream.kind)
                        .bind(&stream.id)
                        .bind(after as i64)
                        .fetch_all(&self.reader)
                        .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn read_streams(
                &self,
                business: &str,
                kind: &str,
                ids: &[String],
            ) -> Result<Vec<$crate::store::StoredRow>, $crate::store::StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let ids = serde_json::to_string(ids)
                    .map_err(|e| $crate::store::StoreError::Database(e.to_string()))?;
                let rows: Vec<$crate::store::DbRow> = sqlx::query_as(Self::READ_STREAMS)
                    .bind(business)
                    .bind(kind)
                    .bind(ids)
                    .fetch_all(&self.reader)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn read_all(
                &self,
                after: u64,
                limit: u32,
            ) -> Result<Vec<$crate::store::StoredRow>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::DbRow> = sqlx::query_as($crate::store::sql::READ_ALL)
                    .bind(after as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn read_kind(
                &self,
                kind: &str,
                after: u64,
                limit: u32,
            ) -> Result<Vec<$crate::store::StoredRow>, $crate::store::StoreError> {
                let rows: Vec<$crate::store::DbRow> = sqlx::query_as($crate::store::sql::READ_KIND)
                    .bind(kind)
                    .bind(after as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn read_types(
                &self,
                after: u64,
                types: &[&str],
                limit: u32,
            ) -> Result<Vec<$crate::store::StoredRow>, $crate::store::StoreError> {
                if types.is_empty() {
                    return Ok(Vec::new());
                }
                let types = serde_json::to_string(types)
                    .map_err(|e| $crate::store::StoreError::Database(e.to_string()))?;
                let rows: Vec<$crate::store::DbRow> = sqlx::query_as(Self::READ_TYPES)
                    .bind(after as i64)
                    .bind(types)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn read_positions(
                &self,
                positions: &[u64],
            ) -> Result<Vec<$crate::store::StoredRow>, $crate::store::StoreError> {
                if positions.is_empty() {
                    return Ok(Vec::new());
                }
                let positions = serde_json::to_string(positions)
                    .map_err(|e| $crate::store::StoreError::Database(e.to_string()))?;
                let rows: Vec<$crate::store::DbRow> = sqlx::query_as(Self::READ_POSITIONS)
                    .bind(positions)
                    .fetch_all(&self.reader)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn head(&self) -> Result<u64, $crate::store::StoreError> {
                let (h,): (i64,) = sqlx::query_as($crate::store::sql::HEAD)
                    .fetch_one(&self.reader)
                    .await?;
                Ok(h as u64)
            }

            async fn business_of(
                &self,
                kind: &str,
                id: &str,
            ) -> Result<Option<String>, $crate::store::StoreError> {
                let row: Option<(String,)> = sqlx::query_as($crate::store::sql::STREAM_BUSINESS)
                    .bind(kind)
                    .bind(id)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map(|(b,)| b))
            }

            async fn stream_version(
                &self,
                stream: &$crate::store::StreamId,
            ) -> Result<u64, $crate::store::StoreError> {
                let (v,): (i64,) = sqlx::query_as($crate::store::sql::STREAM_VERSION)
                    .bind(&stream.business)
                    .bind(&stream.kind)
                    .bind(&stream.id)
                    .fetch_one(&self.reader)
                    .await?;
                Ok(v as u64)
            }

            async fn load_snapshot(
                &self,
                stream: &$crate::store::StreamId,
            ) -> Result<Option<$crate::store::SnapshotRow>, $crate::store::StoreError> {
                let row: Option<$crate::store::DbSnapshot> =
                    sqlx::query_as($crate::store::sql::LOAD_SNAPSHOT)
                        .bind(&stream.business)
                        .bind(&stream.kind)
                        .bind(&stream.id)
                        .fetch_optional(&self.reader)
                        .await?;
                Ok(row.map(Into::into))
            }

            async fn save_snapshot(
                &self,
                s: &$crate::store::SnapshotRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::SAVE_SNAPSHOT)
                    .bind(&s.stream.kind)
                    .bind(&s.stream.id)
                    .bind(&s.business_id)
                    .bind(&s.region)
                    .bind(s.current_sequence as i64)
                    .bind(s.snapshot_version as i64)
                    .bind(&s.payload)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn load_checkpoint(&self, name: &str) -> Result<u64, $crate::store::StoreError> {
                let row: Option<(i64,)> = sqlx::query_as($crate::store::sql::LOAD_CHECKPOINT)
                    .bind(name)
                    .fetch_optional(&self.reader)
                    .await?;
                Ok(row.map_or(0, |(p,)| p as u64))
            }

            async fn save_checkpoint(
                &self,
                name: &str,
                position: u64,
                fence: Option<&$crate::store::Fence>,
            ) -> Result<(), $crate::store::StoreError> {
                let save = sqlx::query($crate::store::sql::SAVE_CHECKPOINT)
                    .bind(name)
                    .bind(position as i64);
                let Some(fence) = fence else {
                    save.execute(&self.writer).await?;
                    return Ok(());
                };
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                Self::check_fence(&mut *tx, fence).await?;
                save.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn audit_leaves(
                &self,
                after: u64,
                limit: u32,
            ) -> Result<Vec<$crate::store::AuditLeaf>, $crate::store::StoreError> {
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as($crate::store::sql::AUDIT_LEAVES)
                    .bind(after as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                rows.into_iter()
                    .map(|(position, hash)| {
                        Ok($crate::store::AuditLeaf {
                            position: position as u64,
                            hash: hash.try_into().map_err(|_| {
                                $crate::store::StoreError::Corrupt("leaf hash length")
                            })?,
                        })
                    })
                    .collect()
            }

            async fn audit_size(&self) -> Result<u64, $crate::store::StoreError> {
                let (size,): (i64,) = sqlx::query_as($crate::store::sql::AUDIT_SIZE)
                    .fetch_one(&self.reader)
                    .await?;
                Ok(size as u64)
            }

            async fn audit_nodes(
                &self,
                level: u32,
                from: u64,
                limit: u32,
            ) -> Result<Vec<$crate::store::AuditNode>, $crate::store::StoreError> {
                let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as($crate::store::sql::AUDIT_NODES)
                    .bind(level as i32)
                    .bind(from as i64)
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                rows.into_iter()
                    .map(|(index, hash)| {
                        Ok($crate::store::AuditNode {
                            level,
                            index: index as u64,
                            hash: hash.try_into().map_err(|_| {
                                $crate::store::StoreError::Corrupt("node hash length")
                            })?,
                        })
                    })
                    .collect()
            }

            async fn audit_append_leaves(
                &self,
                leaves: &[$crate::store::AuditLeaf],
                nodes: &[$crate::store::AuditNode],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::sql::{audit_put_nodes, AUDIT_ROWS_PER_INSERT};
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                $crate::store::put_leaves_in_tx!(tx, leaves);
                for (level, chunk) in nodes
                    .chunk_by(|a, b| a.level == b.level)
                    .flat_map(|same| same.chunks(AUDIT_ROWS_PER_INSERT))
                    .map(|chunk| (chunk[0].level, chunk))
                {
                    let sql = audit_put_nodes(chunk.len());
                    let mut query = sqlx::query(&sql).bind(level as i32);
                    for node in chunk {
                        query = query.bind(node.index as i64).bind(&node.hash[..]);
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn audit_put_checkpoint(
                &self,
                c: &$crate::store::CheckpointRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query($crate::store::sql::AUDIT_PUT_CHECKPOINT)
                    .bind(c.size as i64)
                    .bind(&c.root)
                    .bind(c.signed_at)
                    .bind(&c.origin)
                    .bind(&c.public_key)
                    .bind(&c.signature)
                    .bind(c.handover.as_ref().map(|(key, _)| key))
                    .bind(c.handover.as_ref().map(|(_, sig)| sig))
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn audit_checkpoints(
                &self,
            ) -> Result<Vec<$crate::store::CheckpointRow>, $crate::store::StoreError> {
                type Row = (
                    i64,
                    Vec<u8>,
                    i64,
                    String,
                    Vec<u8>,
                    Vec<u8>,
                    Option<Vec<u8>>,
                    Option<Vec<u8>>,
                );
                let rows: Vec<Row> = sqlx::query_as($crate::store::sql::AUDIT_CHECKPOINTS)
                    .fetch_all(&self.reader)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(size, root, signed_at, origin, public_key, signature, pk, ps)| {
                            $crate::store::CheckpointRow {
                                size: size as u64,
                                root,
                                signed_at,
                                origin,
                                public_key,
                                signature,
                                handover: pk.zip(ps),
                            }
                        },
                    )
                    .collect())
            }
        }
    };
}
pub(crate) use impl_event_log;

/// Inserts audit leaves inside a transaction, `AUDIT_ROWS_PER_INSERT` to a statement (a
/// position already recorded keeps its first hash): the sequencer's and SQLite's appenders'.
macro_rules! put_leaves_in_tx {
    ($tx:expr, $leaves:expr) => {{
        for chunk in $leaves.chunks($crate::store::sql::AUDIT_ROWS_PER_INSERT) {
            let sql = $crate::store::sql::audit_put_leaves(chunk.len());
            let mut query = sqlx::query(&sql);
            for leaf in chunk {
                query = query.bind(leaf.position as i64).bind(&leaf.hash[..]);
            }
            query.execute(&mut *$tx).await?;
        }
    }};
}

pub(crate) use put_leaves_in_tx;
