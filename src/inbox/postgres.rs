//! [`PostgresInbox`]: an inbox in a PostgreSQL database, shared by every replica that uses it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls, Row};

use super::{
    DeadLetter, Inbox, InboxError, InboxStats, Lease, Leased, Retry, Stored, StoredDelivery,
};
use crate::{BoxError, BoxFuture, Claim, DeliveryKey, IdempotencyStore, VerifiedBody};

/// The schema version this crate writes, one per entry of [`migrations`].
const SCHEMA_VERSION: i32 = 1;

/// The longest duration written to the database: 100 years, far inside `timestamptz`'s range.
const MAX_MICROS: i64 = 100 * 365 * 24 * 60 * 60 * 1_000_000;

/// A durable [`Inbox`] in PostgreSQL, for several replicas behind a load balancer: each stores
/// what it receives in one shared table, and every replica's workers take work from it.
///
/// - [`store`](Inbox::store) is one `INSERT ... ON CONFLICT` statement; it returns once the
///   database committed it, so the receiver's 2xx follows a durable write.
/// - Workers [`claim`](Inbox::claim) with `FOR UPDATE SKIP LOCKED`: two workers, in one process
///   or in two replicas, never hold one delivery. Each lease carries a random claim id that
///   fences a stale worker out.
/// - Every time comparison uses the database server's clock (`now()`), so the replicas' clocks
///   need not agree.
/// - A new delivery is followed by a `NOTIFY` (coalesced, outside the store's transaction); a
///   connection of its own `LISTEN`s and wakes [`notified`](Inbox::notified). It is only a
///   hint: when it is down, workers still poll.
/// - The tables (`propexo_inbox`, `propexo_inbox_idempotency` and `propexo_inbox_schema`, or
///   with the [prefix](PostgresInboxBuilder::table_prefix) you choose) are created and migrated
///   on connect, under an advisory lock, so replicas may start together.
/// - It is also an [`IdempotencyStore`], so direct mode de-duplicates across replicas too.
///
/// A database that cannot be reached makes every call fail within the
/// [timeout](PostgresInboxBuilder::timeout) with [`InboxError::Unavailable`], never hang: the
/// receiver answers 503 and Propexo sends the delivery again.
///
/// It runs on Tokio: connect it, and use it, inside a Tokio runtime. Connections are unencrypted
/// (`NoTls`). For TLS, build a [`deadpool_postgres::Pool`] with the
/// connector you use (with `deadpool-postgres` 0.14) and pass it to
/// [`PostgresInbox::from_pool`].
///
/// # Examples
///
/// ```no_run
/// # async fn example() -> Result<(), propexo_webhooks::InboxError> {
/// use propexo_webhooks::PostgresInbox;
///
/// let inbox = PostgresInbox::connect("postgres://app@db.internal/app").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresInbox {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    sql: Sql,
    timeout: Duration,
    idempotency_claim_timeout: Duration,
    notify: Arc<Notify>,
    listener: Option<JoinHandle<()>>,
    /// A task is sending `NOTIFY`s: later stores need not start another.
    waking: AtomicBool,
    /// A store committed since the last `NOTIFY` was sent.
    stored_since: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

impl fmt::Debug for PostgresInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresInbox")
            .field("table", &self.inner.sql.table)
            .field("timeout", &self.inner.timeout)
            .field("listening", &self.inner.listener.is_some())
            .finish_non_exhaustive()
    }
}

/// Configures a [`PostgresInbox`]; made by [`PostgresInbox::builder`].
#[derive(Clone)]
pub struct PostgresInboxBuilder {
    config: tokio_postgres::Config,
    prefix: String,
    pool_size: usize,
    timeout: Duration,
    idempotency_claim_timeout: Duration,
    listen: bool,
}

impl fmt::Debug for PostgresInboxBuilder {
    // Not the connection settings: they may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresInboxBuilder")
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .field("idempotency_claim_timeout", &self.idempotency_claim_timeout)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

impl PostgresInboxBuilder {
    /// The prefix of the tables and of the `NOTIFY` channel (default `propexo_inbox`): ASCII
    /// lowercase letters, digits and `_`, starting with a letter or `_`, at most 40 characters.
    /// Several inboxes can share one database with different prefixes.
    ///
    /// # Errors
    ///
    /// When `prefix` is not such a name.
    pub fn table_prefix(mut self, prefix: &str) -> Result<Self, InboxError> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 40
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !prefix.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(InboxError::unavailable(format!(
                "invalid table prefix {prefix:?}: use a-z, 0-9 and _, not starting with a digit"
            )));
        }
        self.prefix = prefix.to_owned();
        Ok(self)
    }

    /// How many connections the pool holds at most (default 16, at least 1).
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long a call may take, waiting for a connection included, before it fails with
    /// [`InboxError::Unavailable`] (default 5 seconds). Connecting may take a third of it.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// How long an [`IdempotencyStore`] claim may stay in progress before another copy of the
    /// delivery may take it over (default 5 minutes, well under Propexo's 15-minute retries).
    #[must_use]
    pub fn idempotency_claim_timeout(mut self, timeout: Duration) -> Self {
        self.idempotency_claim_timeout = timeout;
        self
    }

    /// Whether to keep a connection that `LISTEN`s for new deliveries (default `true`). Without
    /// it, workers find new deliveries by polling alone.
    #[must_use]
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Connects, creates or migrates the tables, and starts listening.
    ///
    /// # Errors
    ///
    /// [`InboxError::Unavailable`] when the database cannot be reached or the schema cannot be
    /// created, or was written by a newer version of this crate.
    pub async fn connect(self) -> Result<PostgresInbox, InboxError> {
        let mut config = self.config.clone();
        let connect_timeout = (self.timeout / 3).max(Duration::from_millis(10));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .wait_timeout(Some(self.timeout))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(InboxError::unavailable)?;
        let sql = Sql::new(&self.prefix);
        migrate(&pool, &sql, self.timeout).await?;
        let notify = Arc::new(Notify::new());
        let listener = self.listen.then(|| {
            tokio::spawn(listen(
                config,
                sql.channel.clone(),
                Arc::clone(&notify),
                connect_timeout,
            ))
        });
        Ok(PostgresInbox {
            inner: Arc::new(Inner {
                pool,
                sql,
                timeout: self.timeout,
                idempotency_claim_timeout: self.idempotency_claim_timeout,
                notify,
                listener,
                waking: AtomicBool::new(false),
                stored_since: AtomicBool::new(false),
            }),
        })
    }
}

impl PostgresInbox {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// `host=... user=...`) with the default settings, and creates or migrates the tables.
    ///
    /// # Errors
    ///
    /// [`InboxError::Unavailable`] when the URL is invalid, the database cannot be reached, or
    /// the schema cannot be created.
    pub async fn connect(url: &str) -> Result<Self, InboxError> {
        Self::builder(url)?.connect().await
    }

    /// A builder, to choose the table prefix, the pool size or the timeouts.
    ///
    /// # Errors
    ///
    /// [`InboxError::Unavailable`] when the URL is invalid.
    pub fn builder(url: &str) -> Result<PostgresInboxBuilder, InboxError> {
        let config: tokio_postgres::Config = url.parse().map_err(InboxError::unavailable)?;
        Ok(PostgresInboxBuilder {
            config,
            prefix: "propexo_inbox".to_owned(),
            pool_size: 16,
            timeout: Duration::from_secs(5),
            idempotency_claim_timeout: Duration::from_secs(5 * 60),
            listen: true,
        })
    }

    /// An inbox on a pool you built (with TLS, for instance), with the default table prefix
    /// and no `LISTEN` connection: workers find new deliveries by polling. Give the pool a
    /// `wait_timeout` and a `create_timeout` so that an unreachable database fails calls
    /// rather than holding them.
    ///
    /// # Errors
    ///
    /// [`InboxError::Unavailable`] when the schema cannot be created or migrated.
    pub async fn from_pool(pool: Pool) -> Result<Self, InboxError> {
        let sql = Sql::new("propexo_inbox");
        let timeout = Duration::from_secs(5);
        migrate(&pool, &sql, timeout).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                sql,
                timeout,
                idempotency_claim_timeout: Duration::from_secs(5 * 60),
                notify: Arc::new(Notify::new()),
                listener: None,
                waking: AtomicBool::new(false),
                stored_since: AtomicBool::new(false),
            }),
        })
    }

    /// Runs `work` with a pooled connection, failing with [`InboxError::Unavailable`] when it
    /// takes longer than the timeout.
    async fn run<'s, T, F>(
        &'s self,
        work: impl FnOnce(Object, &'s Sql) -> F,
    ) -> Result<T, InboxError>
    where
        F: Future<Output = Result<T, InboxError>>,
    {
        let inner = &*self.inner;
        let attempt = async {
            let client = inner.pool.get().await.map_err(InboxError::unavailable)?;
            work(client, &inner.sql).await
        };
        match tokio::time::timeout(inner.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(InboxError::unavailable(format!(
                "the database did not answer within {:?}",
                inner.timeout
            ))),
        }
    }
}

/// The statements, with the table names filled in.
struct Sql {
    table: String,
    channel: String,
    schema_table: String,
    lock_name: String,
    migrations: Vec<String>,
    store: String,
    notify: String,
    store_existing: String,
    claim: String,
    heartbeat: String,
    complete: String,
    retry: String,
    kill: String,
    sweep: String,
    purge: String,
    purge_idempotency: String,
    stats: String,
    dead_letters: String,
    dead_letter: String,
    requeue: String,
    delete: String,
    idem_claim: String,
    idem_existing: String,
    idem_complete: String,
    idem_release: String,
}

const COLUMNS: &str = "key, body, signature, secret_index, secret_label, headers, attempts";

impl Sql {
    fn new(prefix: &str) -> Self {
        let t = prefix;
        let idem = format!("{prefix}_idempotency");
        let micros = "* interval '1 microsecond'";
        Self {
            table: t.to_owned(),
            channel: t.to_owned(),
            schema_table: format!("{prefix}_schema"),
            lock_name: format!("{prefix}_schema"),
            migrations: migrations(t, &idem),
            store: format!(
                "INSERT INTO {t} AS row ({COLUMNS}, state, due_at, received_at)
                    VALUES ($1, $2, $3, $4, $5, $6, 0, 'pending', now(), now())
                    ON CONFLICT (key) DO UPDATE SET
                        body = EXCLUDED.body, signature = EXCLUDED.signature,
                        secret_index = EXCLUDED.secret_index,
                        secret_label = EXCLUDED.secret_label, headers = EXCLUDED.headers,
                        attempts = 0, state = 'pending', due_at = now(), claim_id = 0,
                        lease_until = NULL, keep_until = NULL, last_error = NULL,
                        received_at = now(), finished_at = NULL, died_at = NULL
                    WHERE row.state = 'done' AND row.keep_until <= now()
                    RETURNING 1"
            ),
            notify: format!("SELECT pg_notify('{t}', '')"),
            store_existing: format!("SELECT state, keep_until > now() FROM {t} WHERE key = $1"),
            claim: format!(
                "WITH locked AS (
                    SELECT key, due_at FROM {t}
                    WHERE state = 'pending' AND due_at <= now()
                    ORDER BY due_at LIMIT $1
                    FOR UPDATE SKIP LOCKED
                ), picked AS (
                    SELECT key, due_at, row_number() OVER (ORDER BY due_at) AS n FROM locked
                )
                UPDATE {t} SET state = 'in_flight', claim_id = ($2::bigint[])[picked.n::int],
                    lease_until = now() + $3::bigint {micros}, attempts = {t}.attempts + 1
                FROM picked WHERE {t}.key = picked.key
                RETURNING {t}.key, {t}.body, {t}.signature, {t}.secret_index,
                    {t}.secret_label, {t}.headers, {t}.attempts, {t}.claim_id, picked.n"
            ),
            heartbeat: format!(
                "UPDATE {t} SET lease_until = now() + $3::bigint {micros}
                 WHERE key = $1 AND claim_id = $2 AND state = 'in_flight'"
            ),
            complete: format!(
                "UPDATE {t} SET state = 'done', keep_until = now() + $3::bigint {micros},
                    finished_at = now(), claim_id = 0, lease_until = NULL, last_error = NULL
                 WHERE key = $1 AND claim_id = $2 AND state = 'in_flight'"
            ),
            retry: format!(
                "UPDATE {t} SET state = 'pending', due_at = now() + $3::bigint {micros},
                    last_error = $4, claim_id = 0, lease_until = NULL
                 WHERE key = $1 AND claim_id = $2 AND state = 'in_flight'"
            ),
            kill: format!(
                "UPDATE {t} SET state = 'dead', died_at = now(), last_error = $3, claim_id = 0,
                    lease_until = NULL
                 WHERE key = $1 AND claim_id = $2 AND state = 'in_flight'"
            ),
            sweep: format!(
                "UPDATE {t} SET
                    state = CASE WHEN attempts >= $1 THEN 'dead' ELSE 'pending' END,
                    died_at = CASE WHEN attempts >= $1 THEN now() END,
                    due_at = now(),
                    last_error = 'lease expired after ' || attempts ||
                        CASE WHEN attempts = 1 THEN ' attempt' ELSE ' attempts' END,
                    claim_id = 0, lease_until = NULL
                 WHERE state = 'in_flight' AND lease_until < now()"
            ),
            purge: format!(
                "DELETE FROM {t}
                 WHERE state = 'done' AND keep_until < now() - $1::bigint {micros}"
            ),
            purge_idempotency: format!(
                "DELETE FROM {idem} WHERE expires_at < now() - $1::bigint {micros}"
            ),
            stats: format!("SELECT state, count(*) FROM {t} GROUP BY state"),
            dead_letters: format!(
                "SELECT {COLUMNS}, last_error, received_at, died_at FROM {t}
                 WHERE state = 'dead' ORDER BY died_at, key LIMIT $1"
            ),
            dead_letter: format!(
                "SELECT {COLUMNS}, last_error, received_at, died_at FROM {t}
                 WHERE state = 'dead' AND key = $1"
            ),
            requeue: format!(
                "WITH requeued AS (
                    UPDATE {t} SET state = 'pending', attempts = 0, due_at = now(),
                        died_at = NULL
                    WHERE key = $1 AND state = 'dead'
                    RETURNING 1
                )
                SELECT pg_notify('{t}', '') FROM requeued"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1 AND state = 'dead'"),
            idem_claim: format!(
                "INSERT INTO {idem} AS row (key, completed, expires_at)
                 VALUES ($1, false, now() + $2::bigint {micros})
                 ON CONFLICT (key) DO UPDATE SET completed = false,
                    expires_at = EXCLUDED.expires_at
                 WHERE row.expires_at <= now()
                 RETURNING 1"
            ),
            idem_existing: format!(
                "SELECT completed FROM {idem} WHERE key = $1 AND expires_at > now()"
            ),
            idem_complete: format!(
                "INSERT INTO {idem} AS row (key, completed, expires_at)
                 VALUES ($1, true, now() + $2::bigint {micros})
                 ON CONFLICT (key) DO UPDATE SET completed = true,
                    expires_at = EXCLUDED.expires_at"
            ),
            idem_release: format!("DELETE FROM {idem} WHERE key = $1 AND NOT completed"),
        }
    }
}

/// The schema, one entry per version: entry `n` takes the schema from version `n` to `n + 1`.
/// Never change an entry once released; add one, and raise [`SCHEMA_VERSION`].
fn migrations(t: &str, idem: &str) -> Vec<String> {
    vec![format!(
        "CREATE TABLE {t} (
            key BYTEA PRIMARY KEY,
            body BYTEA NOT NULL,
            signature TEXT NOT NULL,
            secret_index INT NOT NULL,
            secret_label TEXT,
            headers TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'dead')),
            attempts INT NOT NULL DEFAULT 0,
            due_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            claim_id BIGINT NOT NULL DEFAULT 0,
            lease_until TIMESTAMPTZ,
            keep_until TIMESTAMPTZ,
            last_error TEXT,
            received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at TIMESTAMPTZ,
            died_at TIMESTAMPTZ
        );
        CREATE INDEX {t}_due ON {t} (due_at) WHERE state = 'pending';
        CREATE INDEX {t}_lease ON {t} (lease_until) WHERE state = 'in_flight';
        CREATE INDEX {t}_keep ON {t} (keep_until) WHERE state = 'done';
        CREATE INDEX {t}_died ON {t} (died_at) WHERE state = 'dead';
        CREATE TABLE {idem} (
            key BYTEA PRIMARY KEY,
            completed BOOLEAN NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        );"
    )]
}

/// Creates or migrates the schema in one transaction, under an advisory lock: replicas that
/// start together take turns, and the later ones find the work done.
async fn migrate(pool: &Pool, sql: &Sql, timeout: Duration) -> Result<(), InboxError> {
    let work = async {
        let mut client = pool.get().await.map_err(InboxError::unavailable)?;
        let tx = client
            .transaction()
            .await
            .map_err(InboxError::unavailable)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&sql.lock_name],
        )
        .await
        .map_err(InboxError::unavailable)?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} (version INT NOT NULL)",
            sql.schema_table
        ))
        .await
        .map_err(InboxError::unavailable)?;
        let row = tx
            .query_one(
                &format!("SELECT coalesce(max(version), 0) FROM {}", sql.schema_table),
                &[],
            )
            .await
            .map_err(InboxError::unavailable)?;
        let version: i32 = row.try_get(0).map_err(InboxError::unavailable)?;
        if version > SCHEMA_VERSION {
            return Err(InboxError::unavailable(format!(
                "the inbox schema {} is at version {version}, newer than this crate's \
                 {SCHEMA_VERSION}: upgrade propexo-webhooks",
                sql.schema_table
            )));
        }
        for (number, migration) in (1..).zip(&sql.migrations) {
            if number <= version {
                continue;
            }
            tx.batch_execute(migration)
                .await
                .map_err(InboxError::unavailable)?;
            tx.execute(
                &format!("INSERT INTO {} (version) VALUES ($1)", sql.schema_table),
                &[&number],
            )
            .await
            .map_err(InboxError::unavailable)?;
        }
        tx.commit().await.map_err(InboxError::unavailable)
    };
    tokio::time::timeout(timeout.saturating_mul(4), work)
        .await
        .unwrap_or_else(|_| {
            Err(InboxError::unavailable(
                "the database did not answer while the inbox schema was created",
            ))
        })
}

/// Keeps one connection that `LISTEN`s on `channel` and wakes `notify` on each notification,
/// reconnecting after a pause when it is lost. Workers poll anyway, so a missed notification
/// only delays them until their next poll; after each (re)connection everyone is woken once.
async fn listen(
    config: tokio_postgres::Config,
    channel: String,
    notify: Arc<Notify>,
    connect_timeout: Duration,
) {
    loop {
        let connected = tokio::time::timeout(connect_timeout, config.connect(NoTls)).await;
        if let Ok(Ok((client, mut connection))) = connected {
            // The client's LISTEN is answered through the connection, so drive both at once.
            let listen = format!("LISTEN {channel}");
            let mut listening = std::pin::pin!(client.batch_execute(&listen));
            let mut subscribed = false;
            std::future::poll_fn(|cx| {
                if !subscribed {
                    match listening.as_mut().poll(cx) {
                        Poll::Ready(Ok(())) => {
                            subscribed = true;
                            notify.notify_waiters();
                        }
                        Poll::Ready(Err(_)) => return Poll::Ready(()),
                        Poll::Pending => {}
                    }
                }
                loop {
                    match connection.poll_message(cx) {
                        Poll::Ready(Some(Ok(AsyncMessage::Notification(_)))) => {
                            notify.notify_waiters();
                        }
                        Poll::Ready(Some(Ok(_))) => {}
                        Poll::Ready(None | Some(Err(_))) => return Poll::Ready(()),
                        Poll::Pending => return Poll::Pending,
                    }
                }
            })
            .await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).map_or(MAX_MICROS, |micros| micros.min(MAX_MICROS))
}

/// The claim id as the `BIGINT` column holds it (the same 64 bits).
fn claim_id_sql(claim_id: u64) -> i64 {
    i64::from_ne_bytes(claim_id.to_ne_bytes())
}

fn claim_id_rust(claim_id: i64) -> u64 {
    u64::from_ne_bytes(claim_id.to_ne_bytes())
}

fn db(error: tokio_postgres::Error) -> InboxError {
    InboxError::unavailable(error)
}

fn key_of(row: &Row) -> Result<DeliveryKey, InboxError> {
    let bytes: &[u8] = row.try_get("key").map_err(db)?;
    let body: &[u8] = row.try_get("body").map_err(db)?;
    let key = DeliveryKey::from_body(body);
    if key.as_bytes().as_slice() != bytes {
        return Err(InboxError::unavailable(
            "a stored delivery's key is not the hash of its body",
        ));
    }
    Ok(key)
}

fn delivery_of(row: &Row) -> Result<StoredDelivery, InboxError> {
    let body: Vec<u8> = row.try_get("body").map_err(db)?;
    let secret_index: i32 = row.try_get("secret_index").map_err(db)?;
    Ok(StoredDelivery {
        body: Bytes::from(body),
        signature: row.try_get("signature").map_err(db)?,
        secret_index: usize::try_from(secret_index).map_err(InboxError::unavailable)?,
        secret_label: row.try_get("secret_label").map_err(db)?,
        headers: row.try_get("headers").map_err(db)?,
    })
}

fn attempts_of(row: &Row) -> Result<u32, InboxError> {
    let attempts: i32 = row.try_get("attempts").map_err(db)?;
    u32::try_from(attempts).map_err(InboxError::unavailable)
}

fn dead_letter_of(row: &Row) -> Result<DeadLetter, InboxError> {
    let reason: Option<String> = row.try_get("last_error").map_err(db)?;
    let died_at: Option<SystemTime> = row.try_get("died_at").map_err(db)?;
    let received_at: SystemTime = row.try_get("received_at").map_err(db)?;
    Ok(DeadLetter {
        key: key_of(row)?,
        delivery: delivery_of(row)?,
        attempts: attempts_of(row)?,
        reason: reason.unwrap_or_default(),
        received_at,
        died_at: died_at.unwrap_or(received_at),
    })
}

fn count(rows: u64) -> bool {
    rows > 0
}

impl Inbox for PostgresInbox {
    fn store<'a>(
        &'a self,
        delivery: &'a VerifiedBody,
    ) -> BoxFuture<'a, Result<Stored, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let stored = StoredDelivery::from_verified(delivery);
            let key = stored.key();
            let secret_index =
                i32::try_from(stored.secret_index).map_err(InboxError::unavailable)?;
            let insert = client.prepare_cached(&sql.store).await.map_err(db)?;
            let existing = client
                .prepare_cached(&sql.store_existing)
                .await
                .map_err(db)?;
            // A row can change between the two statements (its window ends, it is purged or
            // deleted): then try again. Three rounds are plenty; each is race-free.
            for _ in 0..3 {
                let inserted = client
                    .query(
                        &insert,
                        &[
                            &key.as_bytes().as_slice(),
                            &stored.body.as_ref(),
                            &stored.signature,
                            &secret_index,
                            &stored.secret_label,
                            &stored.headers,
                        ],
                    )
                    .await
                    .map_err(db)?;
                if !inserted.is_empty() {
                    self.wake_workers();
                    return Ok(Stored::New);
                }
                let row = client
                    .query_opt(&existing, &[&key.as_bytes().as_slice()])
                    .await
                    .map_err(db)?;
                let Some(row) = row else { continue };
                let state: &str = row.try_get(0).map_err(db)?;
                let live: Option<bool> = row.try_get(1).map_err(db)?;
                match (state, live) {
                    ("done", Some(true)) => return Ok(Stored::Duplicate),
                    ("done", _) => continue,
                    _ => return Ok(Stored::AlreadyStored),
                }
            }
            Err(InboxError::unavailable(
                "the delivery changed state while it was stored; try again",
            ))
        }))
    }

    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<Leased>, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let limit = limit.min(10_000);
            if limit == 0 {
                return Ok(Vec::new());
            }
            // Fresh claim ids, one per row, drawn as `Lease::new` draws them.
            let ids: Vec<i64> = (0..limit)
                .map(|_| claim_id_sql(fastrand::u64(1..)))
                .collect();
            let limit = i64::try_from(limit).map_err(InboxError::unavailable)?;
            let statement = client.prepare_cached(&sql.claim).await.map_err(db)?;
            let rows = client
                .query(&statement, &[&limit, &ids, &micros(lease)])
                .await
                .map_err(db)?;
            let mut leased = Vec::with_capacity(rows.len());
            for row in &rows {
                let order: i64 = row.try_get("n").map_err(db)?;
                let claim_id: i64 = row.try_get("claim_id").map_err(db)?;
                leased.push((
                    order,
                    Leased {
                        lease: Lease {
                            key: key_of(row)?,
                            claim_id: claim_id_rust(claim_id),
                        },
                        delivery: delivery_of(row)?,
                        attempts: attempts_of(row)?,
                    },
                ));
            }
            leased.sort_by_key(|(order, _)| *order);
            Ok(leased.into_iter().map(|(_, leased)| leased).collect())
        }))
    }

    fn heartbeat<'a>(
        &'a self,
        lease: &'a Lease,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let statement = client.prepare_cached(&sql.heartbeat).await.map_err(db)?;
            let rows = client
                .execute(
                    &statement,
                    &[
                        &lease.key.as_bytes().as_slice(),
                        &claim_id_sql(lease.claim_id),
                        &micros(duration),
                    ],
                )
                .await
                .map_err(db)?;
            Ok(count(rows))
        }))
    }

    fn complete<'a>(
        &'a self,
        lease: &'a Lease,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let statement = client.prepare_cached(&sql.complete).await.map_err(db)?;
            let rows = client
                .execute(
                    &statement,
                    &[
                        &lease.key.as_bytes().as_slice(),
                        &claim_id_sql(lease.claim_id),
                        &micros(window),
                    ],
                )
                .await
                .map_err(db)?;
            Ok(count(rows))
        }))
    }

    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        next: Retry,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let key = lease.key.as_bytes().as_slice();
            let claim_id = claim_id_sql(lease.claim_id);
            let rows = match &next {
                Retry::After { delay, reason } => {
                    let statement = client.prepare_cached(&sql.retry).await.map_err(db)?;
                    client
                        .execute(&statement, &[&key, &claim_id, &micros(*delay), reason])
                        .await
                }
                Retry::Dead { reason } => {
                    let statement = client.prepare_cached(&sql.kill).await.map_err(db)?;
                    client.execute(&statement, &[&key, &claim_id, reason]).await
                }
            }
            .map_err(db)?;
            Ok(count(rows))
        }))
    }

    fn sweep(&self, max_attempts: u32) -> BoxFuture<'_, Result<u64, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let max_attempts = i32::try_from(max_attempts).unwrap_or(i32::MAX);
            let statement = client.prepare_cached(&sql.sweep).await.map_err(db)?;
            client
                .execute(&statement, &[&max_attempts])
                .await
                .map_err(db)
        }))
    }

    fn purge(&self, retention: Duration) -> BoxFuture<'_, Result<u64, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let retention = micros(retention);
            let statement = client.prepare_cached(&sql.purge).await.map_err(db)?;
            let purged = client
                .execute(&statement, &[&retention])
                .await
                .map_err(db)?;
            // Expired de-duplication claims go at the same pace; they are not deliveries.
            let statement = client
                .prepare_cached(&sql.purge_idempotency)
                .await
                .map_err(db)?;
            client
                .execute(&statement, &[&retention])
                .await
                .map_err(db)?;
            Ok(purged)
        }))
    }

    fn stats(&self) -> BoxFuture<'_, Result<InboxStats, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let statement = client.prepare_cached(&sql.stats).await.map_err(db)?;
            let rows = client.query(&statement, &[]).await.map_err(db)?;
            let mut stats = InboxStats::default();
            for row in &rows {
                let state: &str = row.try_get(0).map_err(db)?;
                let count: i64 = row.try_get(1).map_err(db)?;
                let count = u64::try_from(count).unwrap_or(0);
                match state {
                    "pending" => stats.pending = count,
                    "in_flight" => stats.in_flight = count,
                    "done" => stats.done = count,
                    "dead" => stats.dead = count,
                    _ => {}
                }
            }
            Ok(stats)
        }))
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let statement = client.prepare_cached(&sql.dead_letters).await.map_err(db)?;
            let rows = client.query(&statement, &[&limit]).await.map_err(db)?;
            rows.iter().map(dead_letter_of).collect()
        }))
    }

    fn dead_letter<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let statement = client.prepare_cached(&sql.dead_letter).await.map_err(db)?;
            let row = client
                .query_opt(&statement, &[&key.as_bytes().as_slice()])
                .await
                .map_err(db)?;
            row.as_ref().map(dead_letter_of).transpose()
        }))
    }

    fn requeue<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let statement = client.prepare_cached(&sql.requeue).await.map_err(db)?;
            let rows = client
                .query(&statement, &[&key.as_bytes().as_slice()])
                .await
                .map_err(db)?;
            Ok(!rows.is_empty())
        }))
    }

    fn delete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.run(move |client, sql| async move {
            let statement = client.prepare_cached(&sql.delete).await.map_err(db)?;
            let rows = client
                .execute(&statement, &[&key.as_bytes().as_slice()])
                .await
                .map_err(db)?;
            Ok(count(rows))
        }))
    }

    fn notified(&self) -> BoxFuture<'_, ()> {
        if self.inner.listener.is_none() {
            return Box::pin(std::future::pending());
        }
        Box::pin(self.inner.notify.notified())
    }
}

/// The shortest time between two wake-up `NOTIFY`s of one inbox.
const NOTIFY_INTERVAL: Duration = Duration::from_millis(10);

impl PostgresInbox {
    /// Sends a `NOTIFY` after a store committed, in a transaction of its own and coalesced: one
    /// task sends them, at most one per [`NOTIFY_INTERVAL`], and a store that commits while it
    /// runs is covered by its next one. PostgreSQL serialises the commits of notifying
    /// transactions under one lock, so a `NOTIFY` per store would cost concurrent stores their
    /// group commit; under load the workers are busy and need no wake-up anyway.
    fn wake_workers(&self) {
        self.inner.stored_since.store(true, Ordering::Release);
        if self.inner.waking.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.inner.waking.store(false, Ordering::Release);
            return;
        };
        let inbox = self.clone();
        runtime.spawn(async move {
            let inner = &inbox.inner;
            loop {
                if inner.stored_since.swap(false, Ordering::AcqRel) {
                    let _ = inbox
                        .run(|client, sql| async move {
                            let statement = client.prepare_cached(&sql.notify).await.map_err(db)?;
                            client.execute(&statement, &[]).await.map_err(db)
                        })
                        .await;
                    tokio::time::sleep(NOTIFY_INTERVAL).await;
                    continue;
                }
                inner.waking.store(false, Ordering::Release);
                // A store between the check above and this line saw `waking` set and left the
                // wake-up to this task: take it back unless another task already has.
                if !inner.stored_since.load(Ordering::Acquire)
                    || inner.waking.swap(true, Ordering::AcqRel)
                {
                    return;
                }
            }
        });
    }

    async fn idempotency_claim(&self, key: &DeliveryKey) -> Result<Claim, InboxError> {
        let claim_timeout = micros(self.inner.idempotency_claim_timeout);
        self.run(move |client, sql| async move {
            let claim = client.prepare_cached(&sql.idem_claim).await.map_err(db)?;
            let existing = client
                .prepare_cached(&sql.idem_existing)
                .await
                .map_err(db)?;
            // As in `store`: retry when the row expired or went between the two statements.
            for _ in 0..3 {
                let claimed = client
                    .query(&claim, &[&key.as_bytes().as_slice(), &claim_timeout])
                    .await
                    .map_err(db)?;
                if !claimed.is_empty() {
                    return Ok(Claim::Claimed);
                }
                let row = client
                    .query_opt(&existing, &[&key.as_bytes().as_slice()])
                    .await
                    .map_err(db)?;
                if let Some(row) = row {
                    let completed: bool = row.try_get(0).map_err(db)?;
                    return Ok(if completed {
                        Claim::Completed
                    } else {
                        Claim::InProgress
                    });
                }
            }
            Ok(Claim::InProgress)
        })
        .await
    }

    async fn idempotency_finish(
        &self,
        key: &DeliveryKey,
        window: Option<Duration>,
    ) -> Result<(), InboxError> {
        self.run(move |client, sql| async move {
            match window {
                Some(window) if !window.is_zero() => {
                    let statement = client
                        .prepare_cached(&sql.idem_complete)
                        .await
                        .map_err(db)?;
                    client
                        .execute(&statement, &[&key.as_bytes().as_slice(), &micros(window)])
                        .await
                        .map_err(db)?;
                }
                // A completed row is another copy's success (this claim timed out and was
                // taken over): keep it.
                _ => {
                    let statement = client.prepare_cached(&sql.idem_release).await.map_err(db)?;
                    client
                        .execute(&statement, &[&key.as_bytes().as_slice()])
                        .await
                        .map_err(db)?;
                }
            }
            Ok(())
        })
        .await
    }
}

/// Shares de-duplication across replicas for direct mode: a table of its own
/// (`propexo_inbox_idempotency`), claimed atomically with `INSERT ... ON CONFLICT ... WHERE`
/// the previous claim expired. A claim in progress expires after the
/// [claim timeout](PostgresInboxBuilder::idempotency_claim_timeout).
impl IdempotencyStore for PostgresInbox {
    fn claim<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<Claim, BoxError>> {
        Box::pin(async move { self.idempotency_claim(key).await.map_err(BoxError::from) })
    }

    fn complete<'a>(
        &'a self,
        key: &'a DeliveryKey,
        window: Duration,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.idempotency_finish(key, Some(window))
                .await
                .map_err(BoxError::from)
        })
    }

    fn release<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.idempotency_finish(key, None)
                .await
                .map_err(BoxError::from)
        })
    }

    fn abandon(&self, key: &DeliveryKey) {
        // Released in the background when there is a runtime; otherwise the claim expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inbox = self.clone();
            let key = *key;
            runtime.spawn(async move {
                let _ = inbox.idempotency_finish(&key, None).await;
            });
        }
    }
}
