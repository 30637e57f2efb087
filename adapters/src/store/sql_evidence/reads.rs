//! The reads behind [`EvidenceRows`](crate::store::EvidenceRows)'s answers (access log,
//! statistics, billing, message totals, key destructions per day, erasures), shared by both SQL
//! backends as inherent methods the trait implementation of `impl_evidence_rows!` calls; the
//! fold's writes are in the parent module.

/// Implements the evidence reads as inherent methods of backend type `$ty` with a `reader` pool
/// of database `$db`.
macro_rules! impl_evidence_reads {
    ($ty:ty, $db:ty) => {
        impl $ty {
            pub(crate) async fn read_access(
                &self,
                f: &$crate::store::AccessQuery,
                limit: usize,
            ) -> Result<Vec<$crate::store::AccessEntry>, $crate::store::StoreError> {
                use $crate::store::evidence::{label, unlabel};
                use sqlx::Row as _;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT position, at, principal_kind, principal, business_id, category, purpose, \
                     decision, reason, object, count FROM sealpost_ev_access WHERE position > ",
                );
                q.push_bind(f.after.unwrap_or(0) as i64);
                let text = |q: &mut sqlx::QueryBuilder<'_, $db>, column: &str, v: Option<String>| {
                    if let Some(v) = v {
                        q.push(format!(" AND {column} = ")).push_bind(v);
                    }
                };
                text(&mut q, "principal", f.principal.clone());
                text(&mut q, "principal_kind", f.principal_kind.as_ref().map(label));
                text(&mut q, "category", f.category.as_ref().map(label));
                text(&mut q, "purpose", f.purpose.as_ref().map(label));
                text(&mut q, "decision", f.decision.clone());
                text(&mut q, "object", f.object.clone());
                text(&mut q, "business_id", f.business_id.clone());
                if let Some(from) = f.from {
                    q.push(" AND at >= ").push_bind(from);
                }
                if let Some(to) = f.to {
                    q.push(" AND at < ").push_bind(to);
                }
                q.push(" ORDER BY position, seq LIMIT ").push_bind(limit as i64);
                let mut out = Vec::new();
                for r in q.build().fetch_all(&self.reader).await? {
                    let kind: String = r.try_get(2)?;
                    let category: String = r.try_get(5)?;
                    let purpose: String = r.try_get(6)?;
                    let reason: Option<String> = r.try_get(8)?;
                    let position: i64 = r.try_get(0)?;
                    let count: i64 = r.try_get(10)?;
                    out.push($crate::store::AccessEntry {
                        position: position as u64,
                        at: r.try_get(1)?,
                        principal_kind: unlabel(&kind)?,
                        principal: r.try_get(3)?,
                        business_id: r.try_get(4)?,
                        category: unlabel(&category)?,
                        purpose: unlabel(&purpose)?,
                        decision: r.try_get(7)?,
                        reason: reason.map(|r| unlabel(&r)).transpose()?,
                        object: r.try_get(9)?,
                        count: count as u64,
                    });
                }
                Ok(out)
            }

            pub(crate) async fn read_stats(
                &self,
                business: Option<&str>,
            ) -> Result<
                Vec<($crate::store::StatKey, $crate::store::StatCount)>,
                $crate::store::StoreError,
            > {
                use sqlx::Row as _;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT business_id, phone_number_id, day, kind, metric, count, subjects \
                     FROM sealpost_ev_stats",
                );
                if let Some(b) = business {
                    q.push(" WHERE business_id = ").push_bind(b.to_owned());
                }
                let mut out = Vec::new();
                for r in q.build().fetch_all(&self.reader).await? {
                    let kind: String = r.try_get(3)?;
                    let (count, subjects): (i64, i64) = (r.try_get(5)?, r.try_get(6)?);
                    out.push((
                        $crate::store::StatKey {
                            business_id: r.try_get(0)?,
                            phone_number_id: r.try_get(1)?,
                            day: r.try_get(2)?,
                            kind: $crate::store::evidence::unlabel(&kind)?,
                            metric: r.try_get(4)?,
                        },
                        $crate::store::StatCount {
                            count: count as u64,
                            subjects: subjects as u64,
                        },
                    ));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            }

            pub(crate) async fn read_billing(
                &self,
                business: Option<&str>,
            ) -> Result<Vec<($crate::store::BillingKey, (u64, u64))>, $crate::store::StoreError>
            {
                use sqlx::Row as _;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT business_id, month, category, billable, free FROM sealpost_ev_billing",
                );
                if let Some(b) = business {
                    q.push(" WHERE business_id = ").push_bind(b.to_owned());
                }
                let mut out = Vec::new();
                for r in q.build().fetch_all(&self.reader).await? {
                    let category: String = r.try_get(2)?;
                    let (billable, free): (i64, i64) = (r.try_get(3)?, r.try_get(4)?);
                    out.push((
                        (
                            r.try_get(0)?,
                            r.try_get(1)?,
                            $crate::store::evidence::unlabel(&category)?,
                        ),
                        (billable as u64, free as u64),
                    ));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            }

            pub(crate) async fn read_totals(
                &self,
                business: Option<&str>,
                without: &[&str],
            ) -> Result<$crate::store::MessageTotals, $crate::store::StoreError> {
                // `WHERE` the business and region conditions, then `AND` whatever follows.
                let scoped = |sql: &str| {
                    let mut q = sqlx::QueryBuilder::<$db>::new(sql);
                    q.push(" WHERE 1 = 1");
                    if let Some(b) = business {
                        q.push(" AND business_id = ").push_bind(b.to_owned());
                    }
                    for region in without {
                        q.push(" AND region <> ").push_bind((*region).to_owned());
                    }
                    q
                };
                let (created, shredded, oldest): (i64, i64, Option<i64>) = scoped(
                    "SELECT COUNT(*), COUNT(shredded_at), \
                     MIN(CASE WHEN shredded_at IS NULL THEN created_at END) FROM sealpost_ev_messages",
                )
                .build_query_as()
                .fetch_one(&self.reader)
                .await?;
                let per_day = |column: &str| {
                    let mut q = scoped(&format!(
                        "SELECT {column} / 86400000 AS d, COUNT(*) FROM sealpost_ev_messages"
                    ));
                    q.push(format!(" AND {column} IS NOT NULL GROUP BY d ORDER BY d"));
                    q
                };
                let days = |rows: Vec<(i64, i64)>| -> Vec<(i64, u64)> {
                    rows.into_iter().map(|(d, n)| (d, n as u64)).collect()
                };
                let created_per_day: Vec<(i64, i64)> = per_day("created_at")
                    .build_query_as()
                    .fetch_all(&self.reader)
                    .await?;
                let shredded_per_day: Vec<(i64, i64)> = per_day("shredded_at")
                    .build_query_as()
                    .fetch_all(&self.reader)
                    .await?;
                Ok($crate::store::MessageTotals {
                    created: created as u64,
                    shredded: shredded as u64,
                    oldest_live: oldest,
                    created_per_day: days(created_per_day),
                    shredded_per_day: days(shredded_per_day),
                })
            }

            pub(crate) async fn read_days(
                &self,
            ) -> Result<Vec<(String, $crate::store::DayKeys)>, $crate::store::StoreError> {
                let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT day, epoch_keys, subject_keys, erasures FROM sealpost_ev_days ORDER BY day",
                )
                .fetch_all(&self.reader)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(day, e, s, x)| {
                        (
                            day,
                            $crate::store::DayKeys {
                                epoch_keys: e as u64,
                                subject_keys: s as u64,
                                erasures: x as u64,
                            },
                        )
                    })
                    .collect())
            }

            pub(crate) async fn read_erasures(
                &self,
                business: Option<&str>,
            ) -> Result<Vec<$crate::store::ErasureFact>, $crate::store::StoreError> {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT position, business_id, region, subject_id, requested_at \
                     FROM sealpost_ev_erasures",
                );
                if let Some(b) = business {
                    q.push(" WHERE business_id = ").push_bind(b.to_owned());
                }
                q.push(" ORDER BY position");
                let rows: Vec<(i64, String, String, String, i64)> =
                    q.build_query_as().fetch_all(&self.reader).await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(position, business_id, region, subject_id, requested_at)| {
                            $crate::store::ErasureFact {
                                position: position as u64,
                                business_id,
                                region,
                                subject_id,
                                requested_at,
                            }
                        },
                    )
                    .collect())
            }
        }
    };
}

pub(crate) use impl_evidence_reads;
