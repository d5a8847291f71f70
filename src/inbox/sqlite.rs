//! The embedded durable inbox: one SQLite file, nothing to install or run.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use tokio::sync::{Notify, oneshot};

use super::{
    DeadLetter, Inbox, InboxError, InboxStats, Lease, Leased, Retry, Stored, StoredDelivery,
};
use crate::{BoxError, BoxFuture, Claim, DeliveryKey, IdempotencyStore, VerifiedBody};

/// The schema version this crate writes; [`migrate`] brings older files up to it.
const SCHEMA_VERSION: i64 = 1;

/// Most commands committed together in one transaction (one `fsync` for all of them).
const MAX_BATCH: usize = 512;

/// States, as stored.
const PENDING: i64 = 0;
const IN_FLIGHT: i64 = 1;
const DONE: i64 = 2;
const DEAD: i64 = 3;

/// How long a claim of [`IdempotencyStore`] may stay in progress before another copy may take
/// it over: well under Propexo's 15 minutes between retries.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// An [`Inbox`] in one SQLite file: the embedded default for a receiver on one machine.
///
/// A delivery is acknowledged only after the transaction that stored it committed, with the
/// database in WAL mode and `synchronous=FULL`, so an acknowledged delivery survives a crash of
/// the process and a power loss. The body hash is the primary key. Concurrent requests are
/// committed together (a group commit): one connection, owned by one thread, writes every
/// command waiting for it in one `BEGIN IMMEDIATE` transaction, so many deliveries share one
/// `fsync`.
///
/// It also implements [`IdempotencyStore`], for a direct-mode [`Dispatcher`](crate::Dispatcher)
/// whose de-duplication must survive a restart.
///
/// # Examples
///
/// ```no_run
/// # fn main() -> Result<(), propexo_webhooks::InboxError> {
/// let inbox = propexo_webhooks::SqliteInbox::open("propexo-inbox.sqlite3")?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteInbox {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    commands: mpsc::Sender<Command>,
    notify: Notify,
}

type Reply<T> = oneshot::Sender<Result<T, InboxError>>;

/// One request to the connection's thread.
enum Command {
    Store(StoredDelivery, Reply<Stored>),
    Claim(usize, Duration, Reply<Vec<Leased>>),
    Heartbeat(Lease, Duration, Reply<bool>),
    Complete(Lease, Duration, Reply<bool>),
    Fail(Lease, Retry, Reply<bool>),
    Sweep(u32, Reply<u64>),
    Purge(Duration, Reply<u64>),
    Stats(Reply<InboxStats>),
    DeadLetters(usize, Reply<Vec<DeadLetter>>),
    DeadLetter(DeliveryKey, Reply<Option<DeadLetter>>),
    Requeue(DeliveryKey, Reply<bool>),
    Delete(DeliveryKey, Reply<bool>),
    IdemClaim(DeliveryKey, Reply<Claim>),
    IdemComplete(DeliveryKey, Duration, Reply<()>),
    IdemRelease(DeliveryKey, Option<Reply<()>>),
}

impl SqliteInbox {
    /// Opens (or creates) the inbox in the SQLite file at `path`, creating or migrating its
    /// tables. Call it from a tokio runtime or outside one: it blocks on the file for a moment.
    ///
    /// # Errors
    ///
    /// [`InboxError::Unavailable`] if the file cannot be opened or migrated (a directory that
    /// does not exist, no permission, a file that is not SQLite, a schema newer than this
    /// crate's).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, InboxError> {
        let path = path.as_ref().to_path_buf();
        let connection = open_connection(&path).map_err(|error| {
            InboxError::unavailable(format!("cannot open {}: {error}", path.display()))
        })?;
        let (commands, receiver) = mpsc::channel();
        let inner = Arc::new(Inner {
            path,
            commands,
            notify: Notify::new(),
        });
        let notify = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("propexo-sqlite-inbox".to_owned())
            .spawn(move || serve(connection, &receiver, &notify))
            .map_err(InboxError::unavailable)?;
        Ok(Self { inner })
    }

    /// The file this inbox lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, InboxError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(command(reply))
            .map_err(|_| InboxError::Closed)?;
        answer.await.map_err(|_| InboxError::Closed)?
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let mut connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    migrate(&mut connection)?;
    Ok(connection)
}

/// Creates the tables, or brings an older file up to [`SCHEMA_VERSION`], in one transaction.
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the inbox schema is version {version}, newer than this crate's {SCHEMA_VERSION}: \
             upgrade propexo-webhooks"
        )));
    }
    if version < 1 {
        transaction.execute_batch(
            "CREATE TABLE propexo_inbox (
                 key          BLOB PRIMARY KEY,
                 body         BLOB NOT NULL,
                 signature    TEXT NOT NULL,
                 secret_index INTEGER NOT NULL,
                 secret_label TEXT,
                 headers      TEXT NOT NULL,
                 state        INTEGER NOT NULL,
                 attempts     INTEGER NOT NULL DEFAULT 0,
                 due_at       INTEGER NOT NULL,
                 claim_id     INTEGER,
                 lease_until  INTEGER,
                 keep_until   INTEGER,
                 last_error   TEXT,
                 received_at  INTEGER NOT NULL,
                 finished_at  INTEGER
             );
             CREATE INDEX propexo_inbox_due ON propexo_inbox (state, due_at);
             CREATE TABLE propexo_idempotency (
                 key       BLOB PRIMARY KEY,
                 completed INTEGER NOT NULL,
                 until     INTEGER NOT NULL
             );",
        )?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn time_of(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The connection's thread: takes every command waiting, runs them in one transaction, commits,
/// then answers each. Ends when every [`SqliteInbox`] is dropped.
fn serve(
    mut connection: Connection,
    commands: &mpsc::Receiver<Command>,
    inner: &std::sync::Weak<Inner>,
) {
    while let Ok(first) = commands.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        let stored_new = run_batch(&mut connection, batch);
        if stored_new && let Some(inner) = inner.upgrade() {
            inner.notify.notify_waiters();
        }
    }
}

/// A command's answer, held until the transaction commits.
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;

/// Runs a batch in one transaction; returns whether it stored a new delivery.
fn run_batch(connection: &mut Connection, batch: Vec<Command>) -> bool {
    let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
    let mut stored_new = false;
    let transaction = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(transaction) => transaction,
        Err(error) => {
            let error = error.to_string();
            for command in batch {
                fail_command(command, &error);
            }
            return false;
        }
    };
    for command in batch {
        answers.push(run_command(&transaction, command, &mut stored_new));
    }
    let committed = transaction.commit().map_err(|error| error.to_string());
    for answer in answers {
        answer(committed.clone());
    }
    stored_new && committed.is_ok()
}

/// Runs one command inside a savepoint, so that its failure undoes only its own writes.
fn run_command(transaction: &Transaction<'_>, command: Command, stored_new: &mut bool) -> Answer {
    match command {
        Command::Store(delivery, reply) => {
            let result = in_savepoint(transaction, |tx| store(tx, &delivery));
            if matches!(result, Ok(Stored::New)) {
                *stored_new = true;
            }
            after_commit(result, Some(reply))
        }
        Command::Claim(limit, lease, reply) => {
            answer(transaction, reply, |tx| claim(tx, limit, lease))
        }
        Command::Heartbeat(lease, duration, reply) => answer(transaction, reply, |tx| {
            tx.execute(
                "UPDATE propexo_inbox SET lease_until = ?3
                 WHERE key = ?1 AND claim_id = ?2 AND state = ?4",
                params![
                    &lease.key.as_bytes()[..],
                    lease.claim_id as i64,
                    now_ms().saturating_add(ms(duration)),
                    IN_FLIGHT
                ],
            )
            .map(|changed| changed == 1)
        }),
        Command::Complete(lease, window, reply) => answer(transaction, reply, |tx| {
            let now = now_ms();
            tx.execute(
                "UPDATE propexo_inbox
                 SET state = ?3, keep_until = ?4, finished_at = ?5, claim_id = NULL,
                     lease_until = NULL
                 WHERE key = ?1 AND claim_id = ?2 AND state = ?6",
                params![
                    &lease.key.as_bytes()[..],
                    lease.claim_id as i64,
                    DONE,
                    now.saturating_add(ms(window)),
                    now,
                    IN_FLIGHT
                ],
            )
            .map(|changed| changed == 1)
        }),
        Command::Fail(lease, next, reply) => answer(transaction, reply, |tx| {
            let now = now_ms();
            let (state, due, reason) = match &next {
                Retry::After { delay, reason } => (PENDING, now.saturating_add(ms(*delay)), reason),
                Retry::Dead { reason } => (DEAD, now, reason),
            };
            tx.execute(
                "UPDATE propexo_inbox
                 SET state = ?3, due_at = ?4, last_error = ?5, finished_at = ?6,
                     claim_id = NULL, lease_until = NULL
                 WHERE key = ?1 AND claim_id = ?2 AND state = ?7",
                params![
                    &lease.key.as_bytes()[..],
                    lease.claim_id as i64,
                    state,
                    due,
                    reason,
                    (state == DEAD).then_some(now),
                    IN_FLIGHT
                ],
            )
            .map(|changed| changed == 1)
        }),
        Command::Sweep(max_attempts, reply) => answer(transaction, reply, |tx| {
            let now = now_ms();
            let dead = tx.execute(
                "UPDATE propexo_inbox
                 SET state = ?1, finished_at = ?2, claim_id = NULL, lease_until = NULL,
                     last_error = 'lease expired after ' || attempts
                         || ' attempts: the worker stopped or hung'
                 WHERE state = ?3 AND lease_until <= ?2 AND attempts >= ?4",
                params![DEAD, now, IN_FLIGHT, max_attempts],
            )?;
            let returned = tx.execute(
                "UPDATE propexo_inbox
                 SET state = ?1, due_at = ?2, claim_id = NULL, lease_until = NULL
                 WHERE state = ?3 AND lease_until <= ?2",
                params![PENDING, now, IN_FLIGHT],
            )?;
            Ok((dead + returned) as u64)
        }),
        Command::Purge(retention, reply) => answer(transaction, reply, |tx| {
            let cutoff = now_ms().saturating_sub(ms(retention));
            let inbox = tx.execute(
                "DELETE FROM propexo_inbox WHERE state = ?1 AND keep_until < ?2",
                params![DONE, cutoff],
            )?;
            tx.execute(
                "DELETE FROM propexo_idempotency WHERE until < ?1",
                params![cutoff],
            )?;
            Ok(inbox as u64)
        }),
        Command::Stats(reply) => answer(transaction, reply, |tx| {
            let mut stats = InboxStats::default();
            let mut statement =
                tx.prepare_cached("SELECT state, count(*) FROM propexo_inbox GROUP BY state")?;
            let rows = statement
                .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))?;
            for row in rows {
                let (state, count) = row?;
                let count = u64::try_from(count).unwrap_or(0);
                match state {
                    PENDING => stats.pending = count,
                    IN_FLIGHT => stats.in_flight = count,
                    DONE => stats.done = count,
                    _ => stats.dead += count,
                }
            }
            Ok(stats)
        }),
        Command::DeadLetters(limit, reply) => answer(transaction, reply, |tx| {
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM propexo_inbox WHERE state = ?1
                 ORDER BY finished_at, key LIMIT ?2"
            ))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = statement.query_map(params![DEAD, limit], dead_letter)?;
            rows.collect()
        }),
        Command::DeadLetter(key, reply) => answer(transaction, reply, |tx| {
            tx.query_row(
                &format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM propexo_inbox WHERE key = ?1 AND state = ?2"
                ),
                params![&key.as_bytes()[..], DEAD],
                dead_letter,
            )
            .optional()
        }),
        Command::Requeue(key, reply) => answer(transaction, reply, |tx| {
            let changed = tx.execute(
                "UPDATE propexo_inbox SET state = ?1, attempts = 0, due_at = ?2, finished_at = NULL
                 WHERE key = ?3 AND state = ?4",
                params![PENDING, now_ms(), &key.as_bytes()[..], DEAD],
            )?;
            if changed == 1 {
                *stored_new = true;
            }
            Ok(changed == 1)
        }),
        Command::Delete(key, reply) => answer(transaction, reply, |tx| {
            tx.execute(
                "DELETE FROM propexo_inbox WHERE key = ?1 AND state = ?2",
                params![&key.as_bytes()[..], DEAD],
            )
            .map(|changed| changed == 1)
        }),
        Command::IdemClaim(key, reply) => {
            answer(transaction, reply, |tx| idempotency_claim(tx, &key))
        }
        Command::IdemComplete(key, window, reply) => answer(transaction, reply, |tx| {
            if window.is_zero() {
                tx.execute(
                    "DELETE FROM propexo_idempotency WHERE key = ?1",
                    params![&key.as_bytes()[..]],
                )?;
            } else {
                tx.execute(
                    "INSERT INTO propexo_idempotency (key, completed, until) VALUES (?1, 1, ?2)
                     ON CONFLICT (key) DO UPDATE SET completed = 1, until = excluded.until",
                    params![&key.as_bytes()[..], now_ms().saturating_add(ms(window))],
                )?;
            }
            Ok(())
        }),
        Command::IdemRelease(key, reply) => {
            let result = in_savepoint(transaction, |tx| {
                tx.execute(
                    "DELETE FROM propexo_idempotency WHERE key = ?1 AND completed = 0",
                    params![&key.as_bytes()[..]],
                )
                .map(|_| ())
            });
            after_commit(result, reply)
        }
    }
}

/// Runs `work` in a savepoint and answers `reply` once the transaction's fate is known.
fn answer<T: Send + 'static>(
    transaction: &Transaction<'_>,
    reply: Reply<T>,
    work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> Answer {
    after_commit(in_savepoint(transaction, work), Some(reply))
}

/// Holds a command's result until the commit: a write that was not committed is not answered
/// with success.
fn after_commit<T: Send + 'static>(
    result: Result<T, InboxError>,
    reply: Option<Reply<T>>,
) -> Answer {
    Box::new(move |committed: Result<(), String>| {
        let result = match committed {
            Ok(()) => result,
            Err(error) => Err(InboxError::unavailable(format!("commit failed: {error}"))),
        };
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    })
}

/// Answers a command that could not run because its transaction could not begin.
fn fail_command(command: Command, error: &str) {
    let error = || InboxError::unavailable(format!("cannot begin a transaction: {error}"));
    match command {
        Command::Store(_, reply) => drop(reply.send(Err(error()))),
        Command::Claim(_, _, reply) => drop(reply.send(Err(error()))),
        Command::Heartbeat(_, _, reply)
        | Command::Complete(_, _, reply)
        | Command::Fail(_, _, reply)
        | Command::Requeue(_, reply)
        | Command::Delete(_, reply) => drop(reply.send(Err(error()))),
        Command::Sweep(_, reply) | Command::Purge(_, reply) => drop(reply.send(Err(error()))),
        Command::Stats(reply) => drop(reply.send(Err(error()))),
        Command::DeadLetters(_, reply) => drop(reply.send(Err(error()))),
        Command::DeadLetter(_, reply) => drop(reply.send(Err(error()))),
        Command::IdemClaim(_, reply) => drop(reply.send(Err(error()))),
        Command::IdemComplete(_, _, reply) => drop(reply.send(Err(error()))),
        Command::IdemRelease(_, reply) => {
            if let Some(reply) = reply {
                drop(reply.send(Err(error())));
            }
        }
    }
}

fn in_savepoint<T>(
    transaction: &Transaction<'_>,
    work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> Result<T, InboxError> {
    let begin = transaction.execute_batch("SAVEPOINT command");
    let result = begin.and_then(|()| work(transaction));
    let end = match &result {
        Ok(_) => transaction.execute_batch("RELEASE command"),
        Err(_) => transaction.execute_batch("ROLLBACK TO command; RELEASE command"),
    };
    match (result, end) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(error), _) | (Ok(_), Err(error)) => Err(InboxError::unavailable(error)),
    }
}

fn store(tx: &Transaction<'_>, delivery: &StoredDelivery) -> rusqlite::Result<Stored> {
    let key = delivery.key();
    let now = now_ms();
    let existing: Option<(i64, Option<i64>)> = tx
        .query_row(
            "SELECT state, keep_until FROM propexo_inbox WHERE key = ?1",
            params![&key.as_bytes()[..]],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match existing {
        Some((DONE, Some(keep_until))) if keep_until > now => return Ok(Stored::Duplicate),
        Some((DONE, _)) | None => {}
        Some(_) => return Ok(Stored::AlreadyStored),
    }
    // New, or done with its window over: a new event with the same bytes.
    tx.execute(
        "INSERT INTO propexo_inbox
             (key, body, signature, secret_index, secret_label, headers, state, attempts, due_at,
              received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?8)
         ON CONFLICT (key) DO UPDATE SET
             body = excluded.body, signature = excluded.signature,
             secret_index = excluded.secret_index, secret_label = excluded.secret_label,
             headers = excluded.headers, state = excluded.state, attempts = 0,
             due_at = excluded.due_at, received_at = excluded.received_at, claim_id = NULL,
             lease_until = NULL, keep_until = NULL, last_error = NULL, finished_at = NULL",
        params![
            &key.as_bytes()[..],
            &delivery.body[..],
            delivery.signature,
            i64::try_from(delivery.secret_index).unwrap_or(i64::MAX),
            delivery.secret_label,
            delivery.headers,
            PENDING,
            now
        ],
    )?;
    Ok(Stored::New)
}

fn claim(tx: &Transaction<'_>, limit: usize, lease: Duration) -> rusqlite::Result<Vec<Leased>> {
    let now = now_ms();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let keys: Vec<Vec<u8>> = {
        let mut statement = tx.prepare_cached(
            "SELECT key FROM propexo_inbox WHERE state = ?1 AND due_at <= ?2
             ORDER BY due_at LIMIT ?3",
        )?;
        let rows = statement.query_map(params![PENDING, now, limit], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut leased = Vec::with_capacity(keys.len());
    for key in keys {
        let Ok(bytes) = <[u8; 32]>::try_from(key.as_slice()) else {
            continue;
        };
        let lease_of = Lease::new(DeliveryKey::from_hash(bytes));
        let row = tx.query_row(
            "UPDATE propexo_inbox
             SET state = ?2, claim_id = ?3, lease_until = ?4, attempts = attempts + 1
             WHERE key = ?1
             RETURNING body, signature, secret_index, secret_label, headers, attempts",
            params![
                key,
                IN_FLIGHT,
                lease_of.claim_id as i64,
                now.saturating_add(ms(lease))
            ],
            |row| Ok((stored_delivery(row, 0)?, row.get::<_, i64>(5)?)),
        )?;
        leased.push(Leased {
            lease: lease_of,
            delivery: row.0,
            attempts: u32::try_from(row.1).unwrap_or(u32::MAX),
        });
    }
    Ok(leased)
}

fn idempotency_claim(tx: &Transaction<'_>, key: &DeliveryKey) -> rusqlite::Result<Claim> {
    let now = now_ms();
    let existing: Option<(bool, i64)> = tx
        .query_row(
            "SELECT completed, until FROM propexo_idempotency WHERE key = ?1",
            params![&key.as_bytes()[..]],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    match existing {
        Some((true, until)) if until > now => return Ok(Claim::Completed),
        Some((false, until)) if until > now => return Ok(Claim::InProgress),
        _ => {}
    }
    tx.execute(
        "INSERT INTO propexo_idempotency (key, completed, until) VALUES (?1, 0, ?2)
         ON CONFLICT (key) DO UPDATE SET completed = 0, until = excluded.until",
        params![&key.as_bytes()[..], now.saturating_add(ms(CLAIM_TIMEOUT))],
    )?;
    Ok(Claim::Claimed)
}

/// Reads body, signature, secret index, secret label and headers from `row`, from `first` on.
fn stored_delivery(row: &Row<'_>, first: usize) -> rusqlite::Result<StoredDelivery> {
    Ok(StoredDelivery {
        body: Bytes::from(row.get::<_, Vec<u8>>(first)?),
        signature: row.get(first + 1)?,
        secret_index: usize::try_from(row.get::<_, i64>(first + 2)?).unwrap_or(0),
        secret_label: row.get(first + 3)?,
        headers: row.get(first + 4)?,
    })
}

const DEAD_LETTER_COLUMNS: &str = "key, body, signature, secret_index, secret_label, headers, \
     attempts, last_error, received_at, finished_at";

fn dead_letter(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    let key: Vec<u8> = row.get(0)?;
    let key = <[u8; 32]>::try_from(key.as_slice()).map_err(|_| {
        rusqlite::Error::InvalidColumnType(0, "key".to_owned(), rusqlite::types::Type::Blob)
    })?;
    Ok(DeadLetter {
        key: DeliveryKey::from_hash(key),
        delivery: stored_delivery(row, 1)?,
        attempts: u32::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
        reason: row.get::<_, Option<String>>(7)?.unwrap_or_default(),
        received_at: time_of(row.get(8)?),
        died_at: time_of(row.get::<_, Option<i64>>(9)?.unwrap_or(0)),
    })
}

impl Inbox for SqliteInbox {
    fn store<'a>(
        &'a self,
        delivery: &'a VerifiedBody,
    ) -> BoxFuture<'a, Result<Stored, InboxError>> {
        let stored = StoredDelivery::from_verified(delivery);
        Box::pin(self.call(|reply| Command::Store(stored, reply)))
    }

    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> BoxFuture<'_, Result<Vec<Leased>, InboxError>> {
        Box::pin(self.call(move |reply| Command::Claim(limit, lease, reply)))
    }

    fn heartbeat<'a>(
        &'a self,
        lease: &'a Lease,
        duration: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        let lease = lease.clone();
        Box::pin(self.call(move |reply| Command::Heartbeat(lease, duration, reply)))
    }

    fn complete<'a>(
        &'a self,
        lease: &'a Lease,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        let lease = lease.clone();
        Box::pin(self.call(move |reply| Command::Complete(lease, window, reply)))
    }

    fn fail<'a>(
        &'a self,
        lease: &'a Lease,
        next: Retry,
    ) -> BoxFuture<'a, Result<bool, InboxError>> {
        let lease = lease.clone();
        Box::pin(self.call(move |reply| Command::Fail(lease, next, reply)))
    }

    fn sweep(&self, max_attempts: u32) -> BoxFuture<'_, Result<u64, InboxError>> {
        Box::pin(self.call(move |reply| Command::Sweep(max_attempts, reply)))
    }

    fn purge(&self, retention: Duration) -> BoxFuture<'_, Result<u64, InboxError>> {
        Box::pin(self.call(move |reply| Command::Purge(retention, reply)))
    }

    fn stats(&self) -> BoxFuture<'_, Result<InboxStats, InboxError>> {
        Box::pin(self.call(Command::Stats))
    }

    fn dead_letters(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, InboxError>> {
        Box::pin(self.call(move |reply| Command::DeadLetters(limit, reply)))
    }

    fn dead_letter<'a>(
        &'a self,
        key: &'a DeliveryKey,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>, InboxError>> {
        Box::pin(self.call(|reply| Command::DeadLetter(*key, reply)))
    }

    fn requeue<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.call(|reply| Command::Requeue(*key, reply)))
    }

    fn delete<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(self.call(|reply| Command::Delete(*key, reply)))
    }

    fn notified(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.inner.notify.notified())
    }
}

impl IdempotencyStore for SqliteInbox {
    fn claim<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<Claim, BoxError>> {
        Box::pin(async move {
            self.call(|reply| Command::IdemClaim(*key, reply))
                .await
                .map_err(BoxError::from)
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a DeliveryKey,
        window: Duration,
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.call(move |reply| Command::IdemComplete(*key, window, reply))
                .await
                .map_err(BoxError::from)
        })
    }

    fn release<'a>(&'a self, key: &'a DeliveryKey) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.call(|reply| Command::IdemRelease(*key, Some(reply)))
                .await
                .map_err(BoxError::from)
        })
    }

    fn abandon(&self, key: &DeliveryKey) {
        // Fire and forget: the claim times out anyway if this never runs.
        let _ = self.inner.commands.send(Command::IdemRelease(*key, None));
    }
}

impl fmt::Debug for SqliteInbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteInbox")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}
