//! One conformance suite for every [`Inbox`] backend.
//!
//! Add a backend with one line:
//!
//! ```ignore
//! conformance_suite!(memory, async { MemoryInbox::new() });          // always available
//! conformance_suite!(postgres, optional: postgres_inbox());          // a future of Option<_>
//! ```
//!
//! The factory expression is evaluated once per test and must give a fresh, empty inbox, with a
//! guard kept alive until the test ends (a temporary directory, or `()`). With `optional:`, it
//! gives `Option<(impl Inbox, guard)>`: `None` means the backend is not available here (the
//! factory has printed `SKIPPED: <why>`, or failed under `CI=true`).
// Without a backend's feature there is no inbox to test (and no `Inbox` to import).
#![cfg(any(
    feature = "axum",
    feature = "actix-web",
    feature = "sqlite",
    feature = "postgres",
    feature = "nats"
))]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use propexo_webhooks::{
    Inbox, InboxStats, Retry, SIGNATURE_HEADER, Secret, Stored, StoredDelivery, VerifiedBody,
    Verifier,
};

#[cfg(feature = "postgres")]
#[path = "support/postgres.rs"]
mod postgres_support;

/// Generates one `#[tokio::test]` per conformance case, in a module named `$name`.
macro_rules! conformance_suite {
    ($name:ident, optional: $factory:expr) => {
        conformance_suite!(@cases $name, $factory;
            store_then_claim, store_twice_and_dedup_window, expired_lease_claimable_after_sweep,
            heartbeat_keeps_slow_handler, stale_owner_changes_nothing, concurrent_claimers,
            poison_delivery_becomes_dead_letter, poison_through_lease_expiry,
            requeue_and_delete_dead_letters, retry_after_delay, purge_ended_windows);
    };
    ($name:ident, $factory:expr) => {
        conformance_suite!($name, optional: async { Some(($factory.await, ())) });
    };
    (@cases $name:ident, $factory:expr; $($case:ident),* $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some((inbox, _guard)) = $factory.await else { return };
                    super::cases::$case(inbox).await;
                }
            )*
        }
    };
}

#[cfg(feature = "postgres")]
async fn postgres_inbox() -> Option<(propexo_webhooks::PostgresInbox, ())> {
    let db = tokio::task::spawn_blocking(postgres_support::database)
        .await
        .expect("the harness panicked")?;
    let inbox = propexo_webhooks::PostgresInbox::builder(&db.url)
        .expect("a valid URL")
        .table_prefix(&db.prefix)
        .expect("a valid prefix")
        .pool_size(8)
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect to the test database");
    Some((inbox, ()))
}

#[cfg(feature = "postgres")]
conformance_suite!(postgres, optional: postgres_inbox());

#[cfg(feature = "nats")]
#[path = "support/nats.rs"]
mod nats_support;

/// A fresh `NatsInbox` (streams, prefix and consumer of its own) on the shared test server,
/// with `ack_wait` as the lease of every claim.
#[cfg(feature = "nats")]
async fn nats_inbox(ack_wait: Duration) -> Option<(propexo_webhooks::NatsInbox, ())> {
    let server = tokio::task::spawn_blocking(nats_support::shared)
        .await
        .expect("the harness panicked")?;
    let client = async_nats::connect(server.url())
        .await
        .expect("connect to the test server");
    let name = nats_support::unique("CONF");
    let inbox = propexo_webhooks::NatsInbox::builder(client)
        .stream(&name)
        .prefix(name.to_lowercase())
        .consumer("workers")
        .ack_wait(ack_wait)
        .open()
        .await
        .expect("set up the streams");
    Some((inbox, ()))
}

// JetStream's lease is the consumer's ack wait, one per consumer rather than one per claim, so
// the cases that mix lease lengths in one test (heartbeat_keeps_slow_handler,
// stale_owner_changes_nothing) cannot apply as written, nor can the two where the sweeper
// rather than the next claim makes a dead letter (poison_through_lease_expiry) or where done
// deliveries are purged by count (purge_ended_windows: done markers age out with the stream's
// max age). tests/nats.rs covers lease expiry, a stale owner and poison through lease expiry
// in JetStream's terms.
#[cfg(feature = "nats")]
conformance_suite!(@cases nats, nats_inbox(LONG);
    store_then_claim, store_twice_and_dedup_window, concurrent_claimers,
    poison_delivery_becomes_dead_letter, requeue_and_delete_dead_letters, retry_after_delay);

// Every claim is leased for SHORT here.
#[cfg(feature = "nats")]
conformance_suite!(@cases nats_short_lease, nats_inbox(SHORT);
    expired_lease_claimable_after_sweep);

conformance_suite!(memory, async { propexo_webhooks::MemoryInbox::new() });

/// A fresh SQLite inbox in a temporary directory, removed when the test ends.
async fn sqlite_inbox() -> Option<(propexo_webhooks::SqliteInbox, tempfile::TempDir)> {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let inbox = propexo_webhooks::SqliteInbox::open(directory.path().join("inbox.sqlite3"))
        .expect("open the inbox");
    Some((inbox, directory))
}

conformance_suite!(sqlite, optional: sqlite_inbox());

const SECRET_A: &str = "first-secret-of-the-conformance-suite";
const SECRET_B: &str = "second-secret-of-the-conformance-suite";

fn verifier() -> Verifier {
    Verifier::from_secrets([
        Secret::new(SECRET_A).expect("valid secret"),
        Secret::new(SECRET_B)
            .expect("valid secret")
            .with_label("rotated"),
    ])
    .expect("valid secrets")
}

/// A verified delivery whose body is unique to `n`, signed with the second (labelled) secret,
/// with custom headers.
fn delivery(n: u32) -> VerifiedBody {
    let body = format!(
        r#"{{"event_type":"JOB_SUCCESS","job_id":"job-{n}","data":{{"n":{n},"bytes":"é\u00e9\t\n"}}}}"#
    );
    let verifier = verifier();
    let signature = verifier
        .sign_with(1, body.as_bytes())
        .expect("second secret");
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_str(&signature).expect("hex"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("content-length", HeaderValue::from(body.len()));
    headers.insert("x-request-origin", HeaderValue::from_static("propexo"));
    headers.append("x-multi", HeaderValue::from_static("one"));
    headers.append("x-multi", HeaderValue::from_static("two"));
    VerifiedBody::verify(&verifier, headers, body).expect("signed just now")
}

fn stats(pending: u64, in_flight: u64, done: u64, dead: u64) -> InboxStats {
    let mut stats = InboxStats::default();
    stats.pending = pending;
    stats.in_flight = in_flight;
    stats.done = done;
    stats.dead = dead;
    stats
}

const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(200);
/// Longer than [`SHORT`], with room for a slow machine.
const PAST_SHORT: Duration = Duration::from_millis(400);
const HOUR: Duration = Duration::from_secs(3600);

mod cases {
    use super::*;

    pub(super) async fn store_then_claim(inbox: impl Inbox) {
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 0, 0));
        let original = delivery(1);
        assert_eq!(inbox.store(&original).await.unwrap(), Stored::New);
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 0, 0));

        let claimed = inbox.claim(10, LONG).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let leased = &claimed[0];
        assert_eq!(leased.attempts, 1);
        assert_eq!(leased.lease.key, original.key_for_tests());
        assert_eq!(leased.delivery, StoredDelivery::from_verified(&original));
        assert_eq!(leased.delivery.body, original.body());

        let restored = leased
            .delivery
            .to_verified()
            .expect("well-formed signature");
        assert_eq!(restored.body(), original.body());
        assert_eq!(restored.verified().index(), 1);
        assert_eq!(restored.verified().label(), Some("rotated"));
        assert_eq!(
            restored.verified().signature(),
            original.verified().signature()
        );
        let headers = restored.headers().expect("headers restored");
        assert_eq!(headers["x-request-origin"], "propexo");
        assert_eq!(headers["content-type"], "application/json");
        let multi: Vec<_> = headers.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
        assert_eq!(
            headers[SIGNATURE_HEADER],
            original.headers().unwrap()[SIGNATURE_HEADER]
        );
        // The restored delivery verifies against the secrets that verified it.
        verifier()
            .verify(restored.body(), headers[SIGNATURE_HEADER].to_str().unwrap())
            .expect("restored signature verifies");

        assert_eq!(inbox.stats().await.unwrap(), stats(0, 1, 0, 0));
        assert!(inbox.claim(10, LONG).await.unwrap().is_empty());
        assert!(inbox.complete(&leased.lease, HOUR).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 1, 0));

        assert_eq!(inbox.store(&delivery(2)).await.unwrap(), Stored::New);
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 1, 0));
        let second = inbox.claim(10, LONG).await.unwrap().remove(0);
        let dead = Retry::Dead {
            reason: "bad".into(),
        };
        assert!(inbox.fail(&second.lease, dead).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 1, 1));
    }

    pub(super) async fn store_twice_and_dedup_window(inbox: impl Inbox) {
        let first = delivery(1);
        assert_eq!(inbox.store(&first).await.unwrap(), Stored::New);
        assert_eq!(inbox.store(&first).await.unwrap(), Stored::AlreadyStored);
        let leased = inbox.claim(10, LONG).await.unwrap().remove(0);
        assert_eq!(inbox.store(&first).await.unwrap(), Stored::AlreadyStored);
        assert!(inbox.complete(&leased.lease, HOUR).await.unwrap());
        assert_eq!(inbox.store(&first).await.unwrap(), Stored::Duplicate);
        assert!(inbox.claim(10, LONG).await.unwrap().is_empty());

        // No window: forgotten at once, so the same bytes are a new delivery.
        let second = delivery(2);
        assert_eq!(inbox.store(&second).await.unwrap(), Stored::New);
        let leased = inbox.claim(10, LONG).await.unwrap().remove(0);
        assert!(inbox.complete(&leased.lease, Duration::ZERO).await.unwrap());
        assert_eq!(inbox.store(&second).await.unwrap(), Stored::New);
        let again = inbox.claim(10, LONG).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].lease.key, second.key_for_tests());
        assert_eq!(again[0].attempts, 1);
        assert!(inbox.complete(&again[0].lease, HOUR).await.unwrap());

        // A short window: a duplicate within it, new after it.
        let third = delivery(3);
        assert_eq!(inbox.store(&third).await.unwrap(), Stored::New);
        let leased = inbox.claim(10, LONG).await.unwrap().remove(0);
        let window = Duration::from_secs(1);
        let completed_at = Instant::now();
        assert!(inbox.complete(&leased.lease, window).await.unwrap());
        let within = inbox.store(&third).await.unwrap();
        if completed_at.elapsed() < window {
            assert_eq!(within, Stored::Duplicate);
        }
        tokio::time::sleep(window + Duration::from_millis(200)).await;
        assert_eq!(inbox.store(&third).await.unwrap(), Stored::New);
        let again = inbox.claim(10, LONG).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].lease.key, third.key_for_tests());
        assert_eq!(again[0].attempts, 1);
    }

    pub(super) async fn expired_lease_claimable_after_sweep(inbox: impl Inbox) {
        let original = delivery(1);
        inbox.store(&original).await.unwrap();
        let first = inbox.claim(10, SHORT).await.unwrap().remove(0);
        assert!(inbox.claim(10, SHORT).await.unwrap().is_empty());
        tokio::time::sleep(PAST_SHORT).await;
        assert_eq!(inbox.sweep(10).await.unwrap(), 1);
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 0, 0));
        let second = inbox.claim(10, LONG).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].lease.key, original.key_for_tests());
        assert_eq!(second[0].attempts, 2);
        assert_ne!(second[0].lease.claim_id, first.lease.claim_id);
        assert_eq!(inbox.sweep(10).await.unwrap(), 0);
    }

    pub(super) async fn heartbeat_keeps_slow_handler(inbox: impl Inbox) {
        inbox.store(&delivery(1)).await.unwrap();
        let lease = Duration::from_millis(500);
        let leased = inbox.claim(10, lease).await.unwrap().remove(0);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(inbox.heartbeat(&leased.lease, LONG).await.unwrap());
        // Past the original lease.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(inbox.sweep(10).await.unwrap(), 0);
        assert!(inbox.claim(10, LONG).await.unwrap().is_empty());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 1, 0, 0));
        assert!(inbox.complete(&leased.lease, HOUR).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 1, 0));
    }

    pub(super) async fn stale_owner_changes_nothing(inbox: impl Inbox) {
        inbox.store(&delivery(1)).await.unwrap();
        let stale = inbox.claim(10, SHORT).await.unwrap().remove(0);
        tokio::time::sleep(PAST_SHORT).await;
        assert_eq!(inbox.sweep(10).await.unwrap(), 1);
        let owner = inbox.claim(10, LONG).await.unwrap().remove(0);
        assert_eq!(owner.lease.key, stale.lease.key);

        assert!(!inbox.heartbeat(&stale.lease, LONG).await.unwrap());
        assert!(!inbox.complete(&stale.lease, HOUR).await.unwrap());
        let retry = Retry::After {
            delay: Duration::ZERO,
            reason: "stale".into(),
        };
        assert!(!inbox.fail(&stale.lease, retry).await.unwrap());
        let dead = Retry::Dead {
            reason: "stale".into(),
        };
        assert!(!inbox.fail(&stale.lease, dead).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 1, 0, 0));
        assert!(inbox.dead_letters(10).await.unwrap().is_empty());
        assert!(inbox.claim(10, LONG).await.unwrap().is_empty());

        assert!(inbox.heartbeat(&owner.lease, LONG).await.unwrap());
        assert!(inbox.complete(&owner.lease, HOUR).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 1, 0));
        // Settled leases are settled: a second complete changes nothing either.
        assert!(!inbox.complete(&owner.lease, HOUR).await.unwrap());
        assert!(!inbox.complete(&stale.lease, HOUR).await.unwrap());
    }

    pub(super) async fn concurrent_claimers(inbox: impl Inbox) {
        const N: u32 = 200;
        for n in 0..N {
            assert_eq!(inbox.store(&delivery(n)).await.unwrap(), Stored::New);
        }
        let inbox = Arc::new(inbox);
        let mut tasks = Vec::new();
        for task in 0..8usize {
            let inbox = Arc::clone(&inbox);
            tasks.push(tokio::spawn(async move {
                let mut claimed = Vec::new();
                let mut round = task;
                loop {
                    let batch = round % 16 + 1;
                    round += 1;
                    let leased = inbox.claim(batch, LONG).await.unwrap();
                    assert!(leased.len() <= batch);
                    if leased.is_empty() {
                        break;
                    }
                    for leased in leased {
                        assert_eq!(leased.attempts, 1);
                        assert!(inbox.complete(&leased.lease, HOUR).await.unwrap());
                        claimed.push(leased.lease.key);
                    }
                }
                claimed
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().copied().collect();
        assert_eq!(all.len(), N as usize, "every delivery claimed exactly once");
        assert_eq!(distinct.len(), N as usize);
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, u64::from(N), 0));
    }

    pub(super) async fn poison_delivery_becomes_dead_letter(inbox: impl Inbox) {
        const MAX_ATTEMPTS: u32 = 3;
        let original = delivery(1);
        inbox.store(&original).await.unwrap();
        for attempt in 1..=MAX_ATTEMPTS {
            let leased = inbox.claim(10, LONG).await.unwrap();
            assert_eq!(leased.len(), 1, "claimable at attempt {attempt}");
            assert_eq!(leased[0].attempts, attempt);
            let next = if leased[0].attempts < MAX_ATTEMPTS {
                Retry::After {
                    delay: Duration::ZERO,
                    reason: format!("handler failed at attempt {attempt}"),
                }
            } else {
                Retry::Dead {
                    reason: "handler failed 3 times".into(),
                }
            };
            assert!(inbox.fail(&leased[0].lease, next).await.unwrap());
        }
        assert!(inbox.claim(10, LONG).await.unwrap().is_empty());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 0, 1));
        let letters = inbox.dead_letters(10).await.unwrap();
        assert_eq!(letters.len(), 1);
        let letter = &letters[0];
        assert_eq!(letter.key, original.key_for_tests());
        assert_eq!(letter.reason, "handler failed 3 times");
        assert_eq!(letter.attempts, MAX_ATTEMPTS);
        assert_eq!(letter.delivery, StoredDelivery::from_verified(&original));
        assert_eq!(letter.delivery.body, original.body());
        assert_eq!(
            letter.delivery.signature,
            original.verified().signature().to_string()
        );
        assert!(letter.died_at >= letter.received_at);
        let one = inbox
            .dead_letter(&original.key_for_tests())
            .await
            .unwrap()
            .expect("listed, so inspectable");
        assert_eq!(one.reason, letter.reason);
        assert_eq!(one.delivery, letter.delivery);
        // A dead letter waits for an operator: a re-send is not stored again.
        assert_eq!(inbox.store(&original).await.unwrap(), Stored::AlreadyStored);
        assert!(
            inbox
                .dead_letter(&delivery(2).key_for_tests())
                .await
                .unwrap()
                .is_none()
        );
    }

    pub(super) async fn poison_through_lease_expiry(inbox: impl Inbox) {
        let original = delivery(1);
        inbox.store(&original).await.unwrap();
        // Two workers die holding it: the first expiry returns it, the second kills it.
        let first = inbox.claim(10, SHORT).await.unwrap().remove(0);
        assert_eq!(first.attempts, 1);
        tokio::time::sleep(PAST_SHORT).await;
        assert_eq!(inbox.sweep(2).await.unwrap(), 1);
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 0, 0));
        let second = inbox.claim(10, SHORT).await.unwrap().remove(0);
        assert_eq!(second.attempts, 2);
        tokio::time::sleep(PAST_SHORT).await;
        assert_eq!(inbox.sweep(2).await.unwrap(), 1);
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 0, 1));
        assert!(inbox.claim(10, LONG).await.unwrap().is_empty());
        let letter = inbox
            .dead_letter(&original.key_for_tests())
            .await
            .unwrap()
            .expect("dead after max_attempts");
        assert_eq!(letter.attempts, 2);
        assert!(
            letter.reason.contains("lease expired"),
            "reason: {:?}",
            letter.reason
        );
        assert_eq!(letter.delivery, StoredDelivery::from_verified(&original));
        assert!(!inbox.complete(&second.lease, HOUR).await.unwrap());
    }

    pub(super) async fn requeue_and_delete_dead_letters(inbox: impl Inbox) {
        let original = delivery(1);
        let key = original.key_for_tests();
        inbox.store(&original).await.unwrap();
        for _ in 0..2 {
            let leased = inbox.claim(10, LONG).await.unwrap().remove(0);
            let next = Retry::After {
                delay: Duration::ZERO,
                reason: "again".into(),
            };
            assert!(inbox.fail(&leased.lease, next).await.unwrap());
        }
        let leased = inbox.claim(10, LONG).await.unwrap().remove(0);
        assert_eq!(leased.attempts, 3);
        let dead = Retry::Dead {
            reason: "gave up".into(),
        };
        assert!(inbox.fail(&leased.lease, dead).await.unwrap());

        assert!(inbox.requeue(&key).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 0, 0));
        assert!(inbox.dead_letter(&key).await.unwrap().is_none());
        assert!(!inbox.requeue(&key).await.unwrap(), "pending, not dead");
        assert!(!inbox.delete(&key).await.unwrap(), "pending, not dead");
        let again = inbox.claim(10, LONG).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1, "attempts reset");
        assert_eq!(again[0].delivery, StoredDelivery::from_verified(&original));
        assert!(!inbox.requeue(&key).await.unwrap(), "in flight, not dead");
        assert!(!inbox.delete(&key).await.unwrap(), "in flight, not dead");
        let dead = Retry::Dead {
            reason: "still broken".into(),
        };
        assert!(inbox.fail(&again[0].lease, dead).await.unwrap());
        assert_eq!(
            inbox.dead_letter(&key).await.unwrap().unwrap().reason,
            "still broken"
        );

        assert!(inbox.delete(&key).await.unwrap());
        assert!(inbox.dead_letter(&key).await.unwrap().is_none());
        assert!(inbox.dead_letters(10).await.unwrap().is_empty());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 0, 0));
        assert!(!inbox.delete(&key).await.unwrap());
        assert!(!inbox.requeue(&key).await.unwrap());

        // A done delivery is not dead either.
        let other = delivery(2);
        inbox.store(&other).await.unwrap();
        let leased = inbox.claim(10, LONG).await.unwrap().remove(0);
        assert!(inbox.complete(&leased.lease, HOUR).await.unwrap());
        assert!(!inbox.requeue(&other.key_for_tests()).await.unwrap());
        assert!(!inbox.delete(&other.key_for_tests()).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(0, 0, 1, 0));
    }

    pub(super) async fn retry_after_delay(inbox: impl Inbox) {
        inbox.store(&delivery(1)).await.unwrap();
        let leased = inbox.claim(10, LONG).await.unwrap().remove(0);
        let next = Retry::After {
            delay: Duration::from_millis(600),
            reason: "backing off".into(),
        };
        let failed_at = Instant::now();
        assert!(inbox.fail(&leased.lease, next).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 0, 0));
        assert!(inbox.claim(10, LONG).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(200)).await;
        if failed_at.elapsed() < Duration::from_millis(500) {
            assert!(inbox.claim(10, LONG).await.unwrap().is_empty());
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        let again = inbox.claim(10, LONG).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
    }

    pub(super) async fn purge_ended_windows(inbox: impl Inbox) {
        // One done with a short window, one done with a long one, one pending, one dead.
        for n in 1..=4 {
            inbox.store(&delivery(n)).await.unwrap();
        }
        let mut leased = inbox.claim(10, LONG).await.unwrap();
        assert_eq!(leased.len(), 4);
        leased.sort_by_key(|leased| leased.lease.key != delivery(1).key_for_tests());
        let short = leased.remove(0);
        assert_eq!(short.lease.key, delivery(1).key_for_tests());
        leased.sort_by_key(|leased| leased.lease.key != delivery(2).key_for_tests());
        let long = leased.remove(0);
        leased.sort_by_key(|leased| leased.lease.key != delivery(3).key_for_tests());
        let pending = leased.remove(0);
        let dead = leased.remove(0);
        assert!(
            inbox
                .complete(&short.lease, Duration::from_millis(100))
                .await
                .unwrap()
        );
        assert!(inbox.complete(&long.lease, HOUR).await.unwrap());
        let retry = Retry::After {
            delay: Duration::ZERO,
            reason: "later".into(),
        };
        assert!(inbox.fail(&pending.lease, retry).await.unwrap());
        let gone = Retry::Dead {
            reason: "gone".into(),
        };
        assert!(inbox.fail(&dead.lease, gone).await.unwrap());
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 2, 1));

        // The short window has not ended an hour ago.
        assert_eq!(inbox.purge(HOUR).await.unwrap(), 0);
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 2, 1));
        // Window (100 ms) + retention (100 ms) are over after 400 ms.
        tokio::time::sleep(PAST_SHORT).await;
        assert_eq!(inbox.purge(Duration::from_millis(100)).await.unwrap(), 1);
        assert_eq!(inbox.stats().await.unwrap(), stats(1, 0, 1, 1));
        assert_eq!(inbox.store(&delivery(2)).await.unwrap(), Stored::Duplicate);
        assert_eq!(inbox.store(&delivery(1)).await.unwrap(), Stored::New);
        assert_eq!(inbox.purge(Duration::ZERO).await.unwrap(), 0);
    }
}

/// The key of a delivery, as inboxes compute it.
trait KeyForTests {
    fn key_for_tests(&self) -> propexo_webhooks::DeliveryKey;
}

impl KeyForTests for VerifiedBody {
    fn key_for_tests(&self) -> propexo_webhooks::DeliveryKey {
        propexo_webhooks::DeliveryKey::from_body(self.body())
    }
}
