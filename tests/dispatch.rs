//! Routing, outcomes and idempotency of the dispatcher, through the public API.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use propexo_webhooks::{
    Claim, DedupPolicy, Delivery, DeliveryKey, Dispatcher, Error, EventType, IdempotencyStore,
    MalformedDelivery, MemoryIdempotencyStore, ObjectType, Outcome, Secret, VerifiedBody, Verifier,
    WebhookEvent,
};

const SECRET: &str = "propexo-dispatch-secret";

const LEASE_UPDATE: &str = r#"{"trigger":"DATA_UPDATE","data":{"event":"DATA_UPDATE","integration_id":"INTEGRATION_ID_001","vendor":"YARDI","record_id":"clz8lease0001","object":"leases","diff":{"new":{"status":"approved"},"previous":{"status":"pending"}}},"meta":{"object":"leases","integration_id":"INTEGRATION_ID_001"}}"#;
const RESIDENT_UPDATE: &str = r#"{"event":"DATA_UPDATE","object":"residents","record_id":"clz8res0001","diff":{"new":{"first_name":"Mary"},"previous":{"first_name":"Sarah"}}}"#;
const JOB_FAILURE: &str = r#"{"event":"JOB_FAILURE","integration_id":"INTEGRATION_ID_002","job_id":"JOB_ID_002","job_type":"READ_RESIDENT_TRANSACTIONS","root_job_id":"ROOT_JOB_ID_002","vendor":"RESMAN"}"#;
const UNKNOWN_TRIGGER: &str =
    r#"{"trigger":"DATA_DELETE","data":{"event":"DATA_DELETE","record_id":"clz8lease0009"}}"#;
const NOT_JSON: &str = r#"{"event":"JOB_FAILURE","job_id":"#;
const WRONG_TYPES: &str = r#"{"event":"SYNC_COMPLETE","successful_job_count":"many"}"#;

fn verifier() -> Verifier {
    Verifier::new(SECRET).unwrap()
}

fn verified(body: &str) -> VerifiedBody {
    verified_with(&verifier(), body)
}

fn verified_with(verifier: &Verifier, body: &str) -> VerifiedBody {
    let mut headers = HeaderMap::new();
    headers.insert(
        "propexo-signature",
        HeaderValue::from_str(&verifier.sign(body.as_bytes())).unwrap(),
    );
    headers.insert(
        "x-custom",
        HeaderValue::from_static("configured-in-propexo"),
    );
    VerifiedBody::verify(verifier, headers, body.as_bytes().to_vec()).unwrap()
}

/// Counts calls and records what each call saw.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn record(&self, what: impl Into<String>) {
        self.calls.lock().unwrap().push(what.into());
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// An async handler that records `name` and the trigger.
    fn handler(
        &self,
        name: &'static str,
    ) -> impl Fn(Delivery) -> std::future::Ready<Result<(), std::io::Error>> + Send + Sync + 'static
    {
        let recorder = self.clone();
        move |delivery: Delivery| {
            recorder.record(format!("{name}:{}", delivery.event().event_type()));
            std::future::ready(Ok(()))
        }
    }
}

// --- routing ---------------------------------------------------------------------------------

#[tokio::test]
async fn routes_by_trigger() {
    let recorder = Recorder::default();
    let dispatcher = Dispatcher::new()
        .on(EventType::DataUpdate, recorder.handler("updates"))
        .on(EventType::JobFailure, recorder.handler("failures"));

    let outcome = dispatcher.dispatch(verified(JOB_FAILURE)).await;
    assert!(
        matches!(outcome, Outcome::Handled { handlers: 1 }),
        "{outcome:?}"
    );
    assert_eq!(recorder.calls(), ["failures:JOB_FAILURE"]);
}

#[tokio::test]
async fn routes_by_object_and_trigger() {
    let recorder = Recorder::default();
    let dispatcher = Dispatcher::new()
        .on_object(
            ObjectType::Leases,
            EventType::DataUpdate,
            recorder.handler("leases"),
        )
        .on_object(
            ObjectType::Leases,
            EventType::DataNew,
            recorder.handler("new-leases"),
        )
        .on_object(
            ObjectType::Residents,
            EventType::DataUpdate,
            recorder.handler("residents"),
        );

    dispatcher.dispatch(verified(LEASE_UPDATE)).await;
    dispatcher.dispatch(verified(RESIDENT_UPDATE)).await;
    assert_eq!(
        recorder.calls(),
        ["leases:DATA_UPDATE", "residents:DATA_UPDATE"]
    );
}

#[tokio::test]
async fn every_matching_route_runs() {
    let recorder = Recorder::default();
    let dispatcher = Dispatcher::new()
        .on(EventType::DataUpdate, recorder.handler("any-update"))
        .on_object(
            ObjectType::Leases,
            EventType::DataUpdate,
            recorder.handler("lease-update"),
        )
        .fallback(recorder.handler("fallback"));

    let outcome = dispatcher.dispatch(verified(LEASE_UPDATE)).await;
    assert!(
        matches!(outcome, Outcome::Handled { handlers: 2 }),
        "{outcome:?}"
    );
    let mut calls = recorder.calls();
    calls.sort();
    assert_eq!(
        calls,
        ["any-update:DATA_UPDATE", "lease-update:DATA_UPDATE"]
    );
}

#[tokio::test]
async fn unmatched_events_go_to_the_fallback() {
    let recorder = Recorder::default();
    let dispatcher = Dispatcher::new()
        .on(EventType::DataNew, recorder.handler("new"))
        .fallback(recorder.handler("fallback"));

    dispatcher.dispatch(verified(JOB_FAILURE)).await;
    assert_eq!(recorder.calls(), ["fallback:JOB_FAILURE"]);
}

#[tokio::test]
async fn unknown_triggers_go_to_the_fallback() {
    let recorder = Recorder::default();
    let dispatcher = Dispatcher::new()
        .on(EventType::DataUpdate, recorder.handler("updates"))
        .fallback(recorder.handler("fallback"));

    let outcome = dispatcher.dispatch(verified(UNKNOWN_TRIGGER)).await;
    assert!(outcome.is_acknowledged());
    assert_eq!(recorder.calls(), ["fallback:DATA_DELETE"]);
}

#[tokio::test]
async fn an_unrouted_event_without_fallback_is_acknowledged() {
    let outcome = Dispatcher::new().dispatch(verified(UNKNOWN_TRIGGER)).await;
    assert!(
        matches!(outcome, Outcome::Handled { handlers: 0 }),
        "{outcome:?}"
    );
    assert_eq!(outcome.status(), StatusCode::OK);
}

#[tokio::test]
async fn handlers_see_the_whole_delivery() {
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let verifier = Verifier::from_secrets([
        Secret::new("propexo-new-secret").unwrap().with_label("new"),
        Secret::new(SECRET).unwrap().with_label("old"),
    ])
    .unwrap();
    let dispatcher = Dispatcher::new().on(EventType::DataUpdate, move |delivery: Delivery| {
        *sink.lock().unwrap() = Some(delivery);
        Ok::<_, std::convert::Infallible>(())
    });
    let body = verified_with(&Verifier::new(SECRET).unwrap(), LEASE_UPDATE);
    let body = VerifiedBody::verify(
        &verifier,
        body.headers().unwrap().clone(),
        body.body().clone(),
    )
    .unwrap();
    dispatcher.dispatch(body).await;

    let delivery = seen.lock().unwrap().take().unwrap();
    assert_eq!(delivery.body().as_ref(), LEASE_UPDATE.as_bytes());
    assert_eq!(delivery.event().record_id(), Some("clz8lease0001"));
    assert_eq!(delivery.verified().label(), Some("old"));
    assert_eq!(
        delivery.signature().to_string(),
        propexo_webhooks::sign(SECRET, LEASE_UPDATE.as_bytes())
    );
    assert_eq!(
        delivery.headers().unwrap().get("x-custom").unwrap(),
        "configured-in-propexo"
    );
}

#[tokio::test]
async fn sync_closures_and_async_closures_both_work() {
    let counter = Arc::new(AtomicUsize::new(0));
    let (sync_count, async_count) = (counter.clone(), counter.clone());
    let dispatcher = Dispatcher::new()
        .on(EventType::JobFailure, move |_| {
            sync_count.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        })
        .on(EventType::JobFailure, move |_| {
            let count = async_count.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                count.fetch_add(10, Ordering::SeqCst);
                Ok::<_, String>(())
            }
        });
    let outcome = dispatcher.dispatch(verified(JOB_FAILURE)).await;
    assert!(matches!(outcome, Outcome::Handled { handlers: 2 }));
    assert_eq!(counter.load(Ordering::SeqCst), 11);
}

#[tokio::test]
async fn handlers_run_concurrently() {
    // Each handler waits for the other: run one after the other, they would deadlock.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let (a, b) = (barrier.clone(), barrier.clone());
    let dispatcher = Dispatcher::new()
        .on(EventType::JobFailure, move |_| {
            let barrier = a.clone();
            async move {
                barrier.wait().await;
                Ok::<_, String>(())
            }
        })
        .on(EventType::JobFailure, move |_| {
            let barrier = b.clone();
            async move {
                barrier.wait().await;
                Ok::<_, String>(())
            }
        });
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        dispatcher.dispatch(verified(JOB_FAILURE)),
    )
    .await
    .expect("handlers did not run concurrently");
    assert!(outcome.is_acknowledged());
}

// --- malformed deliveries --------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_reaches_on_malformed_with_the_raw_bytes() {
    let stored = Arc::new(Mutex::new(Vec::new()));
    let sink = stored.clone();
    let recorder = Recorder::default();
    let dispatcher = Dispatcher::new()
        .on(EventType::JobFailure, recorder.handler("failures"))
        .fallback(recorder.handler("fallback"))
        .on_malformed(move |malformed: MalformedDelivery| {
            sink.lock().unwrap().push((
                malformed.body().clone(),
                malformed.error().to_string(),
                malformed.verified().index(),
            ));
            Ok::<_, std::io::Error>(())
        });

    for body in [NOT_JSON, WRONG_TYPES] {
        let outcome = dispatcher.dispatch(verified(body)).await;
        assert!(
            outcome.is_acknowledged(),
            "stored, so acknowledged: {outcome:?}"
        );
        assert_eq!(outcome.status(), StatusCode::OK);
        let Outcome::Malformed(malformed) = outcome else {
            panic!("not malformed");
        };
        assert!(malformed.is_stored());
        assert!(matches!(malformed.error(), Error::InvalidEvent(_)));
    }
    let stored = stored.lock().unwrap();
    assert_eq!(
        stored[0].0.as_ref(),
        NOT_JSON.as_bytes(),
        "raw bytes intact"
    );
    assert_eq!(
        stored[1].0.as_ref(),
        WRONG_TYPES.as_bytes(),
        "raw bytes intact"
    );
    assert!(
        stored[1].1.contains("successful_job_count"),
        "{}",
        stored[1].1
    );
    assert!(
        recorder.calls().is_empty(),
        "no event handler sees a malformed body"
    );
}

#[tokio::test]
async fn malformed_without_a_handler_asks_for_a_retry() {
    let outcome = Dispatcher::new().dispatch(verified(NOT_JSON)).await;
    assert!(!outcome.is_acknowledged());
    assert_eq!(outcome.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_failing_on_malformed_asks_for_a_retry() {
    let dispatcher = Dispatcher::new().on_malformed(|_| Err::<(), _>("disk full"));
    let outcome = dispatcher.dispatch(verified(NOT_JSON)).await;
    assert!(!outcome.is_acknowledged());
    assert_eq!(outcome.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let Outcome::Malformed(malformed) = outcome else {
        panic!("not malformed");
    };
    assert!(
        malformed
            .handler_error()
            .unwrap()
            .to_string()
            .contains("disk full")
    );
}

#[tokio::test]
async fn a_body_naming_no_trigger_is_malformed() {
    let outcome = Dispatcher::new().dispatch(verified("{}")).await;
    let Outcome::Malformed(malformed) = outcome else {
        panic!("not malformed");
    };
    assert!(matches!(malformed.error(), Error::MissingTrigger));
}

// --- outcomes --------------------------------------------------------------------------------

#[tokio::test]
async fn all_handlers_ok_acknowledges() {
    let recorder = Recorder::default();
    let outcome = Dispatcher::new()
        .on(EventType::JobFailure, recorder.handler("a"))
        .on(EventType::JobFailure, recorder.handler("b"))
        .dispatch(verified(JOB_FAILURE))
        .await;
    assert!(outcome.is_acknowledged());
    assert_eq!(outcome.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_failure_asks_for_a_retry_and_every_error_is_reported() {
    let recorder = Recorder::default();
    let observed = Arc::new(Mutex::new(Vec::new()));
    let sink = observed.clone();
    let dispatcher = Dispatcher::new()
        .on(EventType::JobFailure, |_| Err::<(), _>("crm unreachable"))
        .on(EventType::JobFailure, recorder.handler("still-runs"))
        .on_object(
            ObjectType::Leases,
            EventType::JobFailure,
            recorder.handler("not-matched"),
        )
        .on(EventType::JobFailure, |_| async {
            Err::<(), _>(std::io::Error::other("queue full"))
        })
        .on_error(move |error| sink.lock().unwrap().push(error.to_string()));

    let outcome = dispatcher.dispatch(verified(JOB_FAILURE)).await;
    assert!(!outcome.is_acknowledged());
    assert_eq!(outcome.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let Outcome::Failed(errors) = outcome else {
        panic!("not failed");
    };
    assert_eq!(errors.len(), 2);
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(messages[0].contains("crm unreachable"), "{messages:?}");
    assert!(messages[1].contains("queue full"), "{messages:?}");
    assert!(errors.iter().all(|error| error.route() == "JOB_FAILURE"));
    assert!(errors.to_string().starts_with("2 handler(s) failed"));
    assert_eq!(recorder.calls(), ["still-runs:JOB_FAILURE"]);
    assert_eq!(*observed.lock().unwrap(), messages);
}

#[tokio::test]
async fn a_panicking_handler_is_a_failure_not_a_crash() {
    let recorder = Recorder::default();
    let dispatcher = Dispatcher::new()
        .on(EventType::JobFailure, |_: Delivery| -> Result<(), String> {
            panic!("handler bug")
        })
        .on(EventType::JobFailure, |_: Delivery| async {
            if true {
                panic!("async handler bug");
            }
            Ok::<(), String>(())
        })
        .on(EventType::JobFailure, recorder.handler("ok"));

    let outcome = dispatcher.dispatch(verified(JOB_FAILURE)).await;
    let Outcome::Failed(errors) = outcome else {
        panic!("a panic must fail the delivery");
    };
    assert_eq!(errors.len(), 2);
    assert!(
        errors
            .iter()
            .all(|error| error.is_panic() && error.error().is_none())
    );
    assert!(errors.to_string().contains("handler bug"));
    assert!(errors.to_string().contains("async handler bug"));
    assert_eq!(recorder.calls(), ["ok:JOB_FAILURE"]);
}

// --- idempotency -----------------------------------------------------------------------------

fn counting_dispatcher(store: MemoryIdempotencyStore, runs: Arc<AtomicUsize>) -> Dispatcher {
    Dispatcher::new()
        .idempotency(store)
        .on(EventType::JobFailure, move |_| {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        })
}

#[tokio::test]
async fn a_duplicate_after_success_is_acknowledged_without_running_handlers() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dispatcher = counting_dispatcher(MemoryIdempotencyStore::new(), runs.clone());
    assert!(matches!(
        dispatcher.dispatch(verified(JOB_FAILURE)).await,
        Outcome::Handled { handlers: 1 }
    ));
    let again = dispatcher.dispatch(verified(JOB_FAILURE)).await;
    assert!(matches!(again, Outcome::Duplicate), "{again:?}");
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_duplicate_is_recognised_by_its_body_even_when_signed_with_a_new_secret() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dispatcher = counting_dispatcher(MemoryIdempotencyStore::new(), runs.clone());
    dispatcher.dispatch(verified(JOB_FAILURE)).await;
    let rotated = Verifier::from_secrets([
        Secret::new("propexo-rotated-secret").unwrap(),
        Secret::new(SECRET).unwrap(),
    ])
    .unwrap();
    let resent = verified_with(&rotated, JOB_FAILURE);
    assert_eq!(resent.verified().index(), 0);
    assert!(matches!(
        dispatcher.dispatch(resent).await,
        Outcome::Duplicate
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_duplicate_after_failure_runs_again() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    let dispatcher = Dispatcher::new()
        .idempotency(MemoryIdempotencyStore::new())
        .on(EventType::JobFailure, move |_| {
            // Fails the first time, succeeds after.
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                Err("first attempt fails")
            } else {
                Ok(())
            }
        });
    assert!(
        !dispatcher
            .dispatch(verified(JOB_FAILURE))
            .await
            .is_acknowledged()
    );
    assert!(matches!(
        dispatcher.dispatch(verified(JOB_FAILURE)).await,
        Outcome::Handled { handlers: 1 }
    ));
    assert!(matches!(
        dispatcher.dispatch(verified(JOB_FAILURE)).await,
        Outcome::Duplicate
    ));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_copies_run_the_handlers_exactly_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let dispatcher = Arc::new(
        Dispatcher::new()
            .idempotency(MemoryIdempotencyStore::new())
            .on(EventType::JobFailure, move |_| {
                let counter = counter.clone();
                async move {
                    // Stay in progress long enough for the other copies to arrive.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, String>(())
                }
            }),
    );
    let start = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (dispatcher, start) = (dispatcher.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                dispatcher.dispatch(verified(JOB_FAILURE)).await
            })
        })
        .collect();
    let mut handled = 0;
    for task in tasks {
        match task.await.unwrap() {
            Outcome::Handled { .. } => handled += 1,
            outcome @ (Outcome::InProgress | Outcome::Duplicate) => {
                assert!(outcome.is_acknowledged() || outcome.status() == StatusCode::CONFLICT);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(handled, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn completed_deliveries_expire_after_their_window() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dispatcher = counting_dispatcher(MemoryIdempotencyStore::new(), runs.clone())
        .dedup(DedupPolicy::uniform(Duration::from_millis(50)));
    dispatcher.dispatch(verified(JOB_FAILURE)).await;
    assert!(matches!(
        dispatcher.dispatch(verified(JOB_FAILURE)).await,
        Outcome::Duplicate
    ));
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(matches!(
        dispatcher.dispatch(verified(JOB_FAILURE)).await,
        Outcome::Handled { .. }
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_store_forgets_the_oldest_deliveries_beyond_its_size() {
    let store = Arc::new(MemoryIdempotencyStore::new().max_entries(3));
    let keys: Vec<DeliveryKey> = (0..5)
        .map(|n| DeliveryKey::from_body(format!("delivery {n}").as_bytes()))
        .collect();
    for key in &keys {
        assert_eq!(store.claim(key).await.unwrap(), Claim::Claimed);
        store
            .complete(key, DedupPolicy::DEFAULT_WINDOW)
            .await
            .unwrap();
        assert!(store.len() <= 3);
    }
    assert_eq!(store.len(), 3);
    // The three newest are remembered; the two oldest were forgotten.
    for key in &keys[2..] {
        assert_eq!(store.claim(key).await.unwrap(), Claim::Completed);
    }
    for key in &keys[..2] {
        assert_eq!(store.claim(key).await.unwrap(), Claim::Claimed);
        store.release(key).await.unwrap();
    }
}

#[tokio::test]
async fn a_store_full_of_claims_in_progress_refuses_new_ones() {
    let store = MemoryIdempotencyStore::new().max_entries(2);
    for n in 0..2 {
        let key = DeliveryKey::from_body(format!("in progress {n}").as_bytes());
        assert_eq!(store.claim(&key).await.unwrap(), Claim::Claimed);
    }
    let key = DeliveryKey::from_body(b"one more");
    assert!(store.claim(&key).await.is_err());

    let runs = Arc::new(AtomicUsize::new(0));
    let full = MemoryIdempotencyStore::new().max_entries(1);
    full.claim(&DeliveryKey::from_body(b"stuck")).await.unwrap();
    let outcome = counting_dispatcher(full, runs.clone())
        .dispatch(verified(JOB_FAILURE))
        .await;
    assert!(
        matches!(outcome, Outcome::StoreUnavailable(_)),
        "{outcome:?}"
    );
    assert_eq!(outcome.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_abandoned_claim_can_be_taken_over() {
    let store = MemoryIdempotencyStore::new().claim_timeout(Duration::from_millis(30));
    let key = DeliveryKey::from_body(JOB_FAILURE.as_bytes());
    assert_eq!(store.claim(&key).await.unwrap(), Claim::Claimed);
    assert_eq!(store.claim(&key).await.unwrap(), Claim::InProgress);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(store.claim(&key).await.unwrap(), Claim::Claimed);
}

#[tokio::test]
async fn a_dispatch_dropped_midway_gives_its_claim_up() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let dispatcher = Dispatcher::new()
        .idempotency(MemoryIdempotencyStore::new())
        .on(EventType::JobFailure, move |_| {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    // The first attempt hangs until the client gives up.
                    std::future::pending::<()>().await;
                }
                Ok::<_, String>(())
            }
        });
    let first = tokio::time::timeout(
        Duration::from_millis(20),
        dispatcher.dispatch(verified(JOB_FAILURE)),
    )
    .await;
    assert!(first.is_err(), "the first dispatch was cut off");
    let retry = dispatcher.dispatch(verified(JOB_FAILURE)).await;
    assert!(
        matches!(retry, Outcome::Handled { handlers: 1 }),
        "{retry:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_key_is_the_body_hash_not_a_header() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dispatcher = counting_dispatcher(MemoryIdempotencyStore::new(), runs.clone());
    let mut first = verified(JOB_FAILURE).headers().unwrap().clone();
    first.insert("x-delivery-id", HeaderValue::from_static("1"));
    let mut second = first.clone();
    second.insert("x-delivery-id", HeaderValue::from_static("2"));
    for headers in [first, second] {
        let body = VerifiedBody::verify(&verifier(), headers, JOB_FAILURE.as_bytes().to_vec());
        dispatcher.dispatch(body.unwrap()).await;
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "an unsigned header cannot defeat deduplication"
    );
    assert_eq!(
        DeliveryKey::from_body(JOB_FAILURE.as_bytes())
            .to_string()
            .len(),
        64
    );
}

#[test]
fn the_dispatcher_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Dispatcher>();
    assert_send_sync::<Delivery>();
    assert_send_sync::<VerifiedBody>();
    fn assert_send<T: Send>(_: &T) {}
    let dispatcher = Dispatcher::new();
    assert_send(&dispatcher.dispatch(verified(JOB_FAILURE)));
    let _ = WebhookEvent::from_slice(JOB_FAILURE.as_bytes()).unwrap();
}

// --- typed routes ----------------------------------------------------------------------------

const LEASE_APPROVED: &str = r#"{"event":"DATA_UPDATE","object":"leases","record_id":"clz8lease0001","diff":{"previous":{"status_normalized":"PENDING","unit_id":"clz8unit0001"},"new":{"status_normalized":"ACTIVE","unit_id":null}}}"#;
const NEW_RESIDENT: &str = r#"{"event":"DATA_NEW","object":"residents","record_id":"clz8res0001","payload":{"id":"clz8res0001","first_name":"Mary","email_1":null}}"#;

#[tokio::test]
async fn on_update_hands_the_handler_both_sides_as_the_record_type() {
    use propexo_webhooks::UpdatedRecord;
    use propexo_webhooks::records::{Lease, LeaseStatus, Resident};

    let seen = Arc::new(Mutex::new(Vec::new()));
    let (leases, residents) = (seen.clone(), seen.clone());
    let dispatcher = Dispatcher::new()
        .on_update(move |lease: UpdatedRecord<Lease>| {
            let approved = lease.previous.status_normalized == Some(Some(LeaseStatus::Pending))
                && lease.new.status_normalized == Some(Some(LeaseStatus::Active));
            leases.lock().unwrap().push(format!(
                "lease {} approved={approved} unit {:?} -> {:?}",
                lease.delivery.event().record_id().unwrap(),
                lease.previous.unit_id,
                lease.new.unit_id
            ));
            Ok::<_, String>(())
        })
        .on_update(move |_: UpdatedRecord<Resident>| {
            residents.lock().unwrap().push("resident".to_owned());
            Ok::<_, String>(())
        });

    let outcome = dispatcher.dispatch(verified(LEASE_APPROVED)).await;
    assert!(
        matches!(outcome, Outcome::Handled { handlers: 1 }),
        "{outcome:?}"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [r#"lease clz8lease0001 approved=true unit Some(Some("clz8unit0001")) -> Some(None)"#]
    );
}

#[tokio::test]
async fn on_new_hands_the_handler_the_payload_as_the_record_type() {
    use propexo_webhooks::NewRecord;
    use propexo_webhooks::records::{Lease, Resident};

    let seen = Arc::new(Mutex::new(Vec::new()));
    let (residents, leases) = (seen.clone(), seen.clone());
    let dispatcher = Dispatcher::new()
        .on_new(move |new: NewRecord<Resident>| {
            residents.lock().unwrap().push(format!(
                "{:?} {:?} {:?}",
                new.record.first_name, new.record.email_1, new.record.last_name
            ));
            Ok::<_, String>(())
        })
        .on_new(move |_: NewRecord<Lease>| {
            leases.lock().unwrap().push("lease".to_owned());
            Ok::<_, String>(())
        });
    dispatcher.dispatch(verified(NEW_RESIDENT)).await;
    assert_eq!(
        *seen.lock().unwrap(),
        [r#"Some(Some("Mary")) Some(None) None"#]
    );
}

#[tokio::test]
async fn a_record_that_does_not_fit_its_type_is_malformed_and_runs_no_handler() {
    use propexo_webhooks::UpdatedRecord;
    use propexo_webhooks::records::Lease;

    let runs = Arc::new(AtomicUsize::new(0));
    let (typed, untyped) = (runs.clone(), runs.clone());
    let stored = Arc::new(Mutex::new(None));
    let sink = stored.clone();
    let dispatcher = Dispatcher::new()
        .on_update(move |_: UpdatedRecord<Lease>| {
            typed.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        })
        .on(EventType::DataUpdate, move |_| {
            untyped.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        })
        .on_malformed(move |malformed: MalformedDelivery| {
            *sink.lock().unwrap() = Some(malformed.error().clone());
            Ok::<_, String>(())
        });
    let wrong = LEASE_APPROVED.replace(
        r#""status_normalized":"ACTIVE""#,
        r#""status_normalized":7"#,
    );
    let outcome = dispatcher.dispatch(verified(&wrong)).await;
    assert!(
        outcome.is_acknowledged(),
        "stored by on_malformed: {outcome:?}"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "no handler runs for a malformed delivery"
    );
    let Some(Error::InvalidRecord(error)) = stored.lock().unwrap().take() else {
        panic!("expected InvalidRecord");
    };
    assert_eq!(error.what(), "a Lease record");
    assert_eq!(error.path(), "diff.new.status_normalized");
}

#[tokio::test]
async fn a_stored_delivery_is_verified_again_before_it_is_dispatched() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dispatcher = counting_dispatcher(MemoryIdempotencyStore::new(), runs.clone());
    let signature = propexo_webhooks::sign(SECRET, JOB_FAILURE.as_bytes());
    let replayed = VerifiedBody::verify_signature(&verifier(), JOB_FAILURE, &signature).unwrap();
    assert!(replayed.headers().is_none());
    assert!(dispatcher.dispatch(replayed).await.is_acknowledged());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(matches!(
        VerifiedBody::verify_signature(&verifier(), "{\"event\":\"JOB_FAILURE\"}", &signature),
        Err(Error::SignatureMismatch)
    ));
}

// --- de-duplication policy: a window per kind of event ----------------------------------------

/// SYNC_COMPLETE exactly as Propexo documents it: no job id, no time. An hourly sync of the same
/// integration with the same counts sends these bytes every hour.
const SYNC_COMPLETE_DOCUMENTED: &str = r#"{"event":"SYNC_COMPLETE","failed_job_count":0,"integration_id":"INTEGRATION_ID_003","is_sync_finished":true,"job_schedule_id":"JOB_SCHEDULE_ID_001","successful_job_count":49,"vendor":"YARDI"}"#;
const FIRST_SYNC_COMPLETE_DOCUMENTED: &str = r#"{"event":"FIRST_SYNC_COMPLETE","failed_job_count":0,"integration_id":"INTEGRATION_ID_003","is_sync_finished":true,"job_schedule_id":"JOB_SCHEDULE_ID_001","successful_job_count":49,"vendor":"YARDI"}"#;
/// The simplified shape of Propexo's "How to use webhooks" page: a DATA_UPDATE with no job id.
const SIMPLIFIED_UPDATE: &str = r#"{"meta":{"object":"leases","integration_id":"cuid_1234567890"},"record_id":"cuid_1234567890","diff":{"previous":{"status":"pending"},"new":{"status":"approved"}}}"#;
const UPDATE_WITH_JOB_ID: &str = r#"{"event":"DATA_UPDATE","job_id":"JOB_ID_777","root_job_id":"ROOT_JOB_ID_777","integration_id":"INTEGRATION_ID_001","job_type":"READ_LEASES","vendor":"YARDI","record_id":"clz8lease0001","object":"leases","diff":{"new":{"status":"approved"},"previous":{"status":"pending"}},"meta":{"object":"leases","integration_id":"INTEGRATION_ID_001"}}"#;
const WRITE_FAILURE: &str = r#"{"event":"WRITE_OPERATION_FAILURE","integration_id":"INTEGRATION_ID_004","vendor":"ENTRATA","root_job_id":"ROOT_JOB_ID_004","write_status":"FAILURE","errors":["unit not found"]}"#;
const UNKNOWN_WITH_JOB_ID: &str =
    r#"{"event":"DATA_ARCHIVED","job_id":"JOB_ID_778","record_id":"clz8lease0002"}"#;

/// A dispatcher with the default store whose one catch-all handler counts its runs.
fn counting_all(runs: Arc<AtomicUsize>) -> Dispatcher {
    let count = move |_: Delivery| {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(())
    };
    Dispatcher::new()
        .idempotency(MemoryIdempotencyStore::new())
        .fallback(count)
}

/// Dispatches `body` three times in a row, as three hourly syncs (or three real changes) with
/// the same bytes would arrive, and checks that each one ran the handler.
async fn runs_of_three_identical_events(dispatcher: Dispatcher, runs: &AtomicUsize, body: &str) {
    for attempt in 1..=3 {
        let outcome = dispatcher.dispatch(verified(body)).await;
        assert!(
            matches!(outcome, Outcome::Handled { handlers: 1 }),
            "event {attempt}: {outcome:?}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), attempt, "event {attempt}");
    }
}

#[tokio::test]
async fn three_hourly_sync_completes_with_the_same_bytes_each_run_the_handler() {
    let runs = Arc::new(AtomicUsize::new(0));
    runs_of_three_identical_events(counting_all(runs.clone()), &runs, SYNC_COMPLETE_DOCUMENTED)
        .await;
}

#[tokio::test]
async fn three_first_sync_completes_with_the_same_bytes_each_run_the_handler() {
    let runs = Arc::new(AtomicUsize::new(0));
    runs_of_three_identical_events(
        counting_all(runs.clone()),
        &runs,
        FIRST_SYNC_COMPLETE_DOCUMENTED,
    )
    .await;
}

#[tokio::test]
async fn three_simplified_updates_without_a_job_id_each_run_the_handler() {
    let runs = Arc::new(AtomicUsize::new(0));
    runs_of_three_identical_events(counting_all(runs.clone()), &runs, SIMPLIFIED_UPDATE).await;
}

#[tokio::test]
async fn an_update_with_a_job_id_resent_within_the_window_runs_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dispatcher = counting_all(runs.clone());
    assert!(matches!(
        dispatcher.dispatch(verified(UPDATE_WITH_JOB_ID)).await,
        Outcome::Handled { handlers: 1 }
    ));
    for _ in 0..3 {
        let again = dispatcher.dispatch(verified(UPDATE_WITH_JOB_ID)).await;
        assert!(matches!(again, Outcome::Duplicate), "{again:?}");
        assert_eq!(again.status(), StatusCode::OK);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_copies_of_any_event_run_the_handler_once() {
    for body in [
        SYNC_COMPLETE_DOCUMENTED,
        FIRST_SYNC_COMPLETE_DOCUMENTED,
        SIMPLIFIED_UPDATE,
        UPDATE_WITH_JOB_ID,
        JOB_FAILURE,
        WRITE_FAILURE,
        UNKNOWN_WITH_JOB_ID,
    ] {
        // The one handler run holds its copy in progress until the other 99 have been
        // answered, so every other copy meets it in progress, whatever the scheduling.
        let (answered, watch) = tokio::sync::watch::channel(0_usize);
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let dispatcher = Arc::new(
            Dispatcher::new()
                .idempotency(MemoryIdempotencyStore::new())
                .fallback(move |_: Delivery| {
                    let (counter, mut watch) = (counter.clone(), watch.clone());
                    async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        watch.wait_for(|answered| *answered >= 99).await.ok();
                        Ok::<_, String>(())
                    }
                }),
        );
        let answered = Arc::new(answered);
        let start = Arc::new(tokio::sync::Barrier::new(100));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (dispatcher, start, answered) =
                    (dispatcher.clone(), start.clone(), answered.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    let outcome = dispatcher.dispatch(verified(body)).await;
                    answered.send_modify(|answered| *answered += 1);
                    outcome
                })
            })
            .collect();
        let outcomes = tokio::time::timeout(Duration::from_secs(30), async {
            let mut outcomes = Vec::new();
            for task in tasks {
                outcomes.push(task.await.unwrap());
            }
            outcomes
        })
        .await
        .unwrap_or_else(|_| panic!("{body}: more than one copy ran the handler and waited"));
        let handled = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Outcome::Handled { .. }))
            .count();
        let in_progress = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Outcome::InProgress))
            .count();
        assert_eq!((handled, in_progress), (1, 99), "{body}");
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{body}");
    }
}

#[tokio::test]
async fn one_window_for_every_event_is_one_line_of_configuration() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dispatcher =
        counting_all(runs.clone()).dedup(DedupPolicy::uniform(DedupPolicy::DEFAULT_WINDOW));
    for body in [SYNC_COMPLETE_DOCUMENTED, SIMPLIFIED_UPDATE] {
        assert!(matches!(
            dispatcher.dispatch(verified(body)).await,
            Outcome::Handled { .. }
        ));
        assert!(matches!(
            dispatcher.dispatch(verified(body)).await,
            Outcome::Duplicate
        ));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_trigger_window_overrides_the_job_id_rule_both_ways() {
    let runs = Arc::new(AtomicUsize::new(0));
    let dispatcher = counting_all(runs.clone()).dedup(
        DedupPolicy::new()
            .trigger(EventType::SyncComplete, Duration::from_secs(60 * 60))
            .trigger(EventType::DataUpdate, Duration::ZERO),
    );
    // SYNC_COMPLETE now has a window: the second copy is a duplicate.
    dispatcher
        .dispatch(verified(SYNC_COMPLETE_DOCUMENTED))
        .await;
    assert!(matches!(
        dispatcher
            .dispatch(verified(SYNC_COMPLETE_DOCUMENTED))
            .await,
        Outcome::Duplicate
    ));
    // DATA_UPDATE has none, even with a job id: both copies run.
    dispatcher.dispatch(verified(UPDATE_WITH_JOB_ID)).await;
    assert!(matches!(
        dispatcher.dispatch(verified(UPDATE_WITH_JOB_ID)).await,
        Outcome::Handled { .. }
    ));
    // FIRST_SYNC_COMPLETE keeps the default: no window.
    dispatcher
        .dispatch(verified(FIRST_SYNC_COMPLETE_DOCUMENTED))
        .await;
    assert!(matches!(
        dispatcher
            .dispatch(verified(FIRST_SYNC_COMPLETE_DOCUMENTED))
            .await,
        Outcome::Handled { .. }
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 5);
}

#[test]
fn the_default_windows_follow_the_job_id() {
    let policy = DedupPolicy::default();
    let window = |body: &str| policy.window(&WebhookEvent::from_slice(body.as_bytes()).unwrap());
    for body in [UPDATE_WITH_JOB_ID, JOB_FAILURE, WRITE_FAILURE] {
        assert_eq!(window(body), DedupPolicy::DEFAULT_WINDOW, "{body}");
    }
    for body in [
        SYNC_COMPLETE_DOCUMENTED,
        FIRST_SYNC_COMPLETE_DOCUMENTED,
        SIMPLIFIED_UPDATE,
        LEASE_UPDATE,
        UNKNOWN_WITH_JOB_ID,
    ] {
        assert_eq!(window(body), Duration::ZERO, "{body}");
    }
    assert_eq!(policy.malformed_window(), Duration::ZERO);
    // The last setting for a trigger wins.
    let policy = DedupPolicy::new()
        .trigger(EventType::JobFailure, Duration::from_secs(1))
        .trigger(EventType::JobFailure, Duration::from_secs(2));
    let job_failure = WebhookEvent::from_slice(JOB_FAILURE.as_bytes()).unwrap();
    assert_eq!(policy.window(&job_failure), Duration::from_secs(2));
}

#[tokio::test]
async fn a_stored_malformed_body_is_stored_again_when_it_comes_again() {
    let stored = Arc::new(AtomicUsize::new(0));
    let counter = stored.clone();
    let dispatcher = Dispatcher::new()
        .idempotency(MemoryIdempotencyStore::new())
        .on_malformed(move |_: MalformedDelivery| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(())
        });
    for _ in 0..2 {
        let outcome = dispatcher.dispatch(verified(NOT_JSON)).await;
        assert_eq!(outcome.status(), StatusCode::OK, "{outcome:?}");
    }
    assert_eq!(stored.load(Ordering::SeqCst), 2);
}
