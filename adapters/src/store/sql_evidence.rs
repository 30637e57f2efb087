//! `impl_evidence_rows!`: the [`EvidenceRows`](super::EvidenceRows) implementation both SQL
//! backends share. A folded page is one transaction of multi-row statements: the fold sums
//! per group before it writes, so a page of a thousand events is a handful of round trips.
//! Those statements are not kept prepared (`persistent(false)`): each row count is another
//! statement text, and every connection's statement cache would keep each one with its
//! parameter list, thousands of entries long, for as long as the connection lives.

/// Rows per multi-row statement (at most 12 parameters a row: well under either backend's
/// limit on parameters per statement).
pub(crate) const ROWS_PER_STATEMENT: usize = 1_000;

pub(crate) mod reads;

/// Implements [`EvidenceRows`](super::EvidenceRows) for a backend type with `writer` and `reader`
/// pools of database `$db`, a `BEGIN_WRITE` statement, `EV_POSITION_FOR_UPDATE` (the position
/// row, locked where the backend can) and `EV_MESSAGES_IN` (messages of business `$1` whose id
/// is in the JSON array `$2`).
macro_rules! impl_evidence_rows {
    ($ty:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::EvidenceRows for $ty {
            async fn evidence_position(&self) -> Result<u64, $crate::store::StoreError> {
                let p: Option<i64> =
                    sqlx::query_scalar("SELECT position FROM sealpost_checkpoints WHERE name = $1")
                        .bind($crate::store::evidence::EVIDENCE_POSITION)
                        .fetch_optional(&self.reader)
                        .await?;
                Ok(p.unwrap_or(0) as u64)
            }

            async fn evidence_messages(
                &self,
                ids: &[$crate::store::OfBusiness],
            ) -> Result<Vec<$crate::store::MessageFacts>, $crate::store::StoreError> {
                let mut by_business: std::collections::BTreeMap<String, Vec<String>> =
                    std::collections::BTreeMap::new();
                for id in ids {
                    by_business
                        .entry(id.business.clone())
                        .or_default()
                        .push(id.id.clone());
                }
                let mut chunks = Vec::new();
                for (business, ids) in by_business {
                    for chunk in ids.chunks($crate::store::sql_evidence::ROWS_PER_STATEMENT) {
                        chunks.push((business.clone(), chunk.to_vec()));
                    }
                }
                let mut out = Vec::new();
                for (business, chunk) in chunks {
                    let ids = serde_json::to_string(&chunk)
                        .map_err(|e| $crate::store::StoreError::Database(e.to_string()))?;
                    let rows = sqlx::query(Self::EV_MESSAGES_IN)
                        .bind(business)
                        .bind(ids)
                        .fetch_all(&self.reader)
                        .await?;
                    for r in rows {
                        use sqlx::Row as _;
                        let tag: Option<Vec<u8>> = r.try_get(4)?;
                        let kind: String = r.try_get(6)?;
                        let category: Option<String> = r.try_get(7)?;
                        out.push($crate::store::MessageFacts {
                            message_id: r.try_get(0)?,
                            business_id: r.try_get(1)?,
                            region: r.try_get(2)?,
                            epoch: r.try_get(3)?,
                            subject: tag.and_then(|t| t.try_into().ok()),
                            phone_number_id: r.try_get(5)?,
                            kind: $crate::store::evidence::unlabel(&kind)?,
                            category: category
                                .map(|c| $crate::store::evidence::unlabel(&c))
                                .transpose()?,
                            created_at: r.try_get(8)?,
                        });
                    }
                }
                Ok(out)
            }

            async fn evidence_write(
                &self,
                w: &$crate::store::EvidenceWrite,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::evidence::label;
                use $crate::store::sql_evidence::ROWS_PER_STATEMENT as N;
                use sqlx::Row as _;
                let name = $crate::store::evidence::EVIDENCE_POSITION;
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                sqlx::query(
                    "INSERT INTO sealpost_checkpoints (name, position) VALUES ($1, 0) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .execute(&mut *tx)
                .await?;
                let at: i64 = sqlx::query_scalar(Self::EV_POSITION_FOR_UPDATE)
                    .bind(name)
                    .fetch_one(&mut *tx)
                    .await?;
                if at as u64 != w.from {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let mut seq = (0u64, 0i32);
                for chunk in w.access.chunks(N) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO sealpost_ev_access (position, seq, at, principal_kind, principal, \
                         business_id, category, purpose, decision, reason, object, count) ",
                    );
                    q.push_values(chunk, |mut b, e| {
                        seq = if seq.0 == e.position { (seq.0, seq.1 + 1) } else { (e.position, 0) };
                        b.push_bind(e.position as i64)
                            .push_bind(seq.1)
                            .push_bind(e.at)
                            .push_bind(label(&e.principal_kind))
                            .push_bind(e.principal.clone())
                            .push_bind(e.business_id.clone())
                            .push_bind(label(&e.category))
                            .push_bind(label(&e.purpose))
                            .push_bind(e.decision.clone())
                            .push_bind(e.reason.as_ref().map(label))
                            .push_bind(e.object.clone())
                            .push_bind(e.count as i64);
                    });
                    q.push(" ON CONFLICT (position, seq) DO NOTHING");
                    q.build().persistent(false).execute(&mut *tx).await?;
                }
                for chunk in w.messages.chunks(N) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO sealpost_ev_messages (message_id, business_id, region, epoch, \
                         subject_tag, phone_number_id, kind, category, created_at) ",
                    );
                    q.push_values(chunk, |mut b, m| {
                        b.push_bind(m.message_id.clone())
                            .push_bind(m.business_id.clone())
                            .push_bind(m.region.clone())
                            .push_bind(m.epoch)
                            .push_bind(m.subject.map(|t| t.to_vec()))
                            .push_bind(m.phone_number_id.clone())
                            .push_bind(label(&m.kind))
                            .push_bind(m.category.as_ref().map(label))
                            .push_bind(m.created_at);
                    });
                    q.push(" ON CONFLICT (message_id) DO NOTHING");
                    q.build().persistent(false).execute(&mut *tx).await?;
                }
                for chunk in w.kinds.chunks(N) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE sealpost_ev_messages SET kind = v.column2 FROM (",
                    );
                    q.push_values(chunk, |mut b, (id, kind)| {
                        b.push_bind(id.id.clone())
                            .push_bind(label(kind))
                            .push_bind(id.business.clone());
                    });
                    q.push(
                        ") AS v WHERE sealpost_ev_messages.business_id = v.column3 \
                         AND sealpost_ev_messages.message_id = v.column1",
                    );
                    q.build().persistent(false).execute(&mut *tx).await?;
                }
                // Groups that have counted enough distinct consumers take no more members.
                let mut days = std::collections::BTreeSet::new();
                for (k, _) in &w.stat_subjects {
                    days.insert((k.business_id.as_str(), k.day.as_str()));
                }
                let mut full = std::collections::HashSet::new();
                for (business, day) in days {
                    let rows: Vec<(String, String, String, String, String, i64)> = sqlx::query_as(
                        "SELECT business_id, phone_number_id, day, kind, metric, subjects \
                         FROM sealpost_ev_stats WHERE business_id = $1 AND day = $2",
                    )
                    .bind(business)
                    .bind(day)
                    .fetch_all(&mut *tx)
                    .await?;
                    for (business_id, phone_number_id, day, kind, metric, subjects) in rows {
                        if subjects as u64 >= $crate::store::evidence::DISTINCT_CAP {
                            full.insert($crate::store::StatKey {
                                business_id,
                                phone_number_id,
                                day,
                                kind: $crate::store::evidence::unlabel(&kind)?,
                                metric,
                            });
                        }
                    }
                }
                let members: Vec<_> = w
                    .stat_subjects
                    .iter()
                    .filter(|(k, _)| !full.contains(k))
                    .collect();
                // A group's distinct consumers grow by the pairs it did not have yet.
                let mut new_subjects: std::collections::HashMap<$crate::store::StatKey, u64> =
                    std::collections::HashMap::new();
                for chunk in members.chunks(N) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO sealpost_ev_stat_subjects (business_id, phone_number_id, day, \
                         kind, metric, subject_tag) ",
                    );
                    q.push_values(chunk, |mut b, (k, tag)| {
                        b.push_bind(k.business_id.clone())
                            .push_bind(k.phone_number_id.clone())
                            .push_bind(k.day.clone())
                            .push_bind(label(&k.kind))
                            .push_bind(k.metric.clone())
                            .push_bind(tag.to_vec());
                    });
                    q.push(
                        " ON CONFLICT DO NOTHING \
                         RETURNING business_id, phone_number_id, day, kind, metric",
                    );
                    for r in q.build().persistent(false).fetch_all(&mut *tx).await? {
                        let kind: String = r.try_get(3)?;
                        let key = $crate::store::StatKey {
                            business_id: r.try_get(0)?,
                            phone_number_id: r.try_get(1)?,
                            day: r.try_get(2)?,
                            kind: $crate::store::evidence::unlabel(&kind)?,
                            metric: r.try_get(4)?,
                        };
                        *new_subjects.entry(key).or_default() += 1;
                    }
                }
                for chunk in w.stats.chunks(N) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO sealpost_ev_stats (business_id, phone_number_id, day, kind, \
                         metric, count, subjects) ",
                    );
                    q.push_values(chunk, |mut b, (k, count)| {
                        b.push_bind(k.business_id.clone())
                            .push_bind(k.phone_number_id.clone())
                            .push_bind(k.day.clone())
                            .push_bind(label(&k.kind))
                            .push_bind(k.metric.clone())
                            .push_bind(*count as i64)
                            .push_bind(new_subjects.get(k).copied().unwrap_or(0) as i64);
                    });
                    q.push(
                        " ON CONFLICT (business_id, phone_number_id, day, kind, metric) DO UPDATE SET \
                         count = sealpost_ev_stats.count + excluded.count, \
                         subjects = sealpost_ev_stats.subjects + excluded.subjects",
                    );
                    q.build().persistent(false).execute(&mut *tx).await?;
                }
                for chunk in w.billing.chunks(N) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO sealpost_ev_billing (business_id, month, category, billable, free) ",
                    );
                    q.push_values(chunk, |mut b, ((business, month, category), (billable, free))| {
                        b.push_bind(business.clone())
                            .push_bind(month.clone())
                            .push_bind(label(category))
                            .push_bind(*billable as i64)
                            .push_bind(*free as i64);
                    });
                    q.push(
                        " ON CONFLICT (business_id, month, category) DO UPDATE SET \
                         billable = sealpost_ev_billing.billable + excluded.billable, \
                         free = sealpost_ev_billing.free + excluded.free",
                    );
                    q.build().persistent(false).execute(&mut *tx).await?;
                }
                for chunk in w.days.chunks(N) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO sealpost_ev_days (day, epoch_keys, subject_keys, erasures) ",
                    );
                    q.push_values(chunk, |mut b, (day, d)| {
                        b.push_bind(day.clone())
                            .push_bind(d.epoch_keys as i64)
                            .push_bind(d.subject_keys as i64)
                            .push_bind(d.erasures as i64);
                    });
                    q.push(
                        " ON CONFLICT (day) DO UPDATE SET \
                         epoch_keys = sealpost_ev_days.epoch_keys + excluded.epoch_keys, \
                         subject_keys = sealpost_ev_days.subject_keys + excluded.subject_keys, \
                         erasures = sealpost_ev_days.erasures + excluded.erasures",
                    );
                    q.build().persistent(false).execute(&mut *tx).await?;
                }
                for shred in &w.shreds {
                    match shred {
                        $crate::store::Shred::Epoch {
                            business_id,
                            region,
                            epoch,
                            at,
                        } => {
                            sqlx::query(
                                "UPDATE sealpost_ev_messages SET shredded_at = $4, subject_tag = NULL \
                                 WHERE business_id = $1 AND region = $2 AND epoch = $3 \
                                 AND shredded_at IS NULL",
                            )
                            .bind(business_id)
                            .bind(region)
                            .bind(*epoch)
                            .bind(*at)
                            .execute(&mut *tx)
                            .await?;
                        }
                        $crate::store::Shred::Subject {
                            business_id,
                            tag,
                            at,
                        } => {
                            sqlx::query(
                                "UPDATE sealpost_ev_messages SET \
                                 shredded_at = COALESCE(shredded_at, $3), subject_tag = NULL \
                                 WHERE business_id = $1 AND subject_tag = $2",
                            )
                            .bind(business_id)
                            .bind(tag.to_vec())
                            .bind(*at)
                            .execute(&mut *tx)
                            .await?;
                            sqlx::query(
                                "DELETE FROM sealpost_ev_stat_subjects \
                                 WHERE business_id = $1 AND subject_tag = $2",
                            )
                            .bind(business_id)
                            .bind(tag.to_vec())
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                for chunk in w.erasures.chunks(N) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO sealpost_ev_erasures (position, business_id, region, subject_id, \
                         requested_at) ",
                    );
                    q.push_values(chunk, |mut b, e| {
                        b.push_bind(e.position as i64)
                            .push_bind(e.business_id.clone())
                            .push_bind(e.region.clone())
                            .push_bind(e.subject_id.clone())
                            .push_bind(e.requested_at);
                    });
                    q.push(" ON CONFLICT (position) DO NOTHING");
                    q.build().persistent(false).execute(&mut *tx).await?;
                }
                sqlx::query("UPDATE sealpost_checkpoints SET position = $2 WHERE name = $1")
                    .bind(name)
                    .bind(w.to as i64)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn evidence_reset(&self) -> Result<(), $crate::store::StoreError> {
                let mut tx = self.writer.begin_with(Self::BEGIN_WRITE).await?;
                for table in [
                    "sealpost_ev_access",
                    "sealpost_ev_messages",
                    "sealpost_ev_stats",
                    "sealpost_ev_stat_subjects",
                    "sealpost_ev_billing",
                    "sealpost_ev_days",
                    "sealpost_ev_erasures",
                ] {
                    sqlx::query(&format!("DELETE FROM {table}"))
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query("DELETE FROM sealpost_checkpoints WHERE name = $1")
                    .bind($crate::store::evidence::EVIDENCE_POSITION)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn evidence_access(
                &self,
                f: &$crate::store::AccessQuery,
                limit: usize,
            ) -> Result<Vec<$crate::store::AccessEntry>, $crate::store::StoreError> {
                self.read_access(f, limit).await
            }

            async fn evidence_stats(
                &self,
                business: Option<&str>,
            ) -> Result<
                Vec<($crate::store::StatKey, $crate::store::StatCount)>,
                $crate::store::StoreError,
            > {
                self.read_stats(business).await
            }

            async fn evidence_billing(
                &self,
                business: Option<&str>,
            ) -> Result<Vec<($crate::store::BillingKey, (u64, u64))>, $crate::store::StoreError> {
                self.read_billing(business).await
            }

            async fn evidence_totals(
                &self,
                business: Option<&str>,
                without: &[&str],
            ) -> Result<$crate::store::MessageTotals, $crate::store::StoreError> {
                self.read_totals(business, without).await
            }

            async fn evidence_days(
                &self,
            ) -> Result<Vec<(String, $crate::store::DayKeys)>, $crate::store::StoreError> {
                self.read_days().await
            }

            async fn evidence_erasures(
                &self,
                business: Option<&str>,
            ) -> Result<Vec<$crate::store::ErasureFact>, $crate::store::StoreError> {
                self.read_erasures(business).await
            }
        }

        $crate::store::sql_evidence::reads::impl_evidence_reads!($ty, $db);
    };
}

pub(crate) use impl_evidence_rows;
