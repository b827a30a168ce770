//! The AI usage ledger: a row per call, totals that seed quota counters, and reports.

use sqlx::Row;

use super::{BeginWrite, Store, StoreResult, on_pool};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UsageRow {
    pub id: String,
    pub principal: String,
    pub api_key_id: Option<String>,
    pub client_id: Option<String>,
    pub provider: String,
    pub model: String,
    pub endpoint: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_pico: i64,
    pub latency_ms: i64,
    pub status: i32,
    pub outcome: String,
    pub streamed: bool,
    pub created_at: i64,
    pub day: String,
}

/// What a report covers and how it groups. Grouping columns come from a fixed list.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub principal: Option<String>,
    pub model: Option<String>,
    /// Inclusive `YYYY-MM-DD` bounds.
    pub from_day: Option<String>,
    pub to_day: Option<String>,
    pub group_by: Vec<UsageGroup>,
    /// Largest spend first (top spenders), else in group order.
    pub by_cost: bool,
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    Day,
    User,
    Provider,
    Model,
}

impl UsageGroup {
    pub fn parse(s: &str) -> Option<UsageGroup> {
        Some(match s {
            "day" => UsageGroup::Day,
            "user" => UsageGroup::User,
            "provider" => UsageGroup::Provider,
            "model" => UsageGroup::Model,
            _ => return None,
        })
    }

    /// The name `parse` reads.
    pub fn name(self) -> &'static str {
        match self {
            UsageGroup::Day => "day",
            UsageGroup::User => "user",
            UsageGroup::Provider => "provider",
            UsageGroup::Model => "model",
        }
    }

    fn column(self) -> &'static str {
        match self {
            UsageGroup::Day => "day",
            UsageGroup::User => "principal",
            UsageGroup::Provider => "provider",
            UsageGroup::Model => "model",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct UsageReportRow {
    pub day: Option<String>,
    pub principal: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_pico: i64,
}

impl Store {
    /// Writes ledger rows in one transaction (callers batch concurrent calls' rows, so
    /// the ledger is not capped at one commit per call). A row already written (same
    /// call id) is skipped, so a batch whose commit went unanswered can be sent again.
    pub async fn insert_ai_usage(&self, rows: &[UsageRow]) -> StoreResult<()> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO ai_usage (id, principal, api_key_id, client_id, provider, model,
                    endpoint, input_tokens, output_tokens, cost_pico, latency_ms, status,
                    outcome, streamed, created_at, day)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT (id) DO NOTHING",
                )
                .bind(&r.id)
                .bind(&r.principal)
                .bind(r.api_key_id.as_deref())
                .bind(r.client_id.as_deref())
                .bind(&r.provider)
                .bind(&r.model)
                .bind(&r.endpoint)
                .bind(r.input_tokens)
                .bind(r.output_tokens)
                .bind(r.cost_pico)
                .bind(r.latency_ms)
                .bind(r.status)
                .bind(&r.outcome)
                .bind(r.streamed)
                .bind(r.created_at)
                .bind(&r.day)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// `(tokens on day, pico-dollars since month_start)` for one principal.
    pub async fn ai_totals(
        &self,
        principal: &str,
        day: &str,
        month_start: &str,
    ) -> StoreResult<(i64, i64)> {
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT CAST(COALESCE(SUM(CASE WHEN day = $2
                            THEN input_tokens + output_tokens ELSE 0 END), 0) AS BIGINT) AS tokens,
                        CAST(COALESCE(SUM(cost_pico), 0) AS BIGINT) AS cost
                 FROM ai_usage WHERE principal = $1 AND day >= $3",
            )
            .bind(principal)
            .bind(day)
            .bind(month_start)
            .fetch_one(pool)
            .await?;
            Ok((row.try_get("tokens")?, row.try_get("cost")?))
        })
    }

    pub async fn ai_usage_report(&self, f: &UsageFilter) -> StoreResult<Vec<UsageReportRow>> {
        let columns: Vec<&str> = f.group_by.iter().map(|g| g.column()).collect();
        let select = columns.iter().map(|c| format!("{c}, ")).collect::<String>();
        let grouping = if columns.is_empty() {
            String::new()
        } else {
            let order = if f.by_cost { "cost DESC, " } else { "" };
            format!("GROUP BY {0} ORDER BY {order}{0}", columns.join(", "))
        };
        let sql = format!(
            "SELECT {select}CAST(COUNT(*) AS BIGINT) AS requests,
                    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens,
                    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens,
                    COALESCE(SUM(CAST(cost_pico AS DOUBLE PRECISION)), 0.0) AS cost
             FROM ai_usage
             WHERE ($1 IS NULL OR principal = $1) AND ($2 IS NULL OR model = $2)
               AND ($3 IS NULL OR day >= $3) AND ($4 IS NULL OR day <= $4)
             {grouping} LIMIT $5"
        );
        on_pool!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(f.principal.as_deref())
                .bind(f.model.as_deref())
                .bind(f.from_day.as_deref())
                .bind(f.to_day.as_deref())
                .bind(f.limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let text = |g: UsageGroup| -> StoreResult<Option<String>> {
                    Ok(if f.group_by.contains(&g) {
                        Some(row.try_get(g.column())?)
                    } else {
                        None
                    })
                };
                out.push(UsageReportRow {
                    day: text(UsageGroup::Day)?,
                    principal: text(UsageGroup::User)?,
                    provider: text(UsageGroup::Provider)?,
                    model: text(UsageGroup::Model)?,
                    requests: row.try_get("requests")?,
                    input_tokens: row.try_get("input_tokens")?,
                    output_tokens: row.try_get("output_tokens")?,
                    // Summed as a float: a report over years of spend must not overflow
                    // 64-bit picodollars (about 9.2 million dollars); `as` saturates.
                    cost_pico: row.try_get::<f64, _>("cost")? as i64,
                });
            }
            Ok(out)
        })
    }
}
