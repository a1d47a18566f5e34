//! The webhook outbox, on both engines: crash endings reserved and released once, and deliveries
//! claimed so that several stores on one database (several nodes) deliver each row once, in order
//! per URL, and take over the rows of a store that died.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use colloquy_model::{AgentId, AgentState, ExitReason, UnixMillis};
use colloquy_store::{Outbox, WEBHOOK_CLAIM};
use common::{Db, agent, webhook, webhook_to};

on_both_engines!(
    a_crash_ending_is_reserved_while_the_agent_lives_and_released_once_after_a_crash,
    two_stores_on_one_database_deliver_each_webhook_once_in_order_per_url,
    a_claim_keeps_a_row_from_other_stores_until_it_runs_out,
    a_failed_delivery_is_released_for_any_store_to_retry,
);

async fn a_crash_ending_is_reserved_while_the_agent_lives_and_released_once_after_a_crash(db: Db) {
    let store = db.open().await;
    // One agent ends normally, one is live when the node "dies".
    for id in ["ended", "crashed"] {
        store.insert_agent_with(&agent(id, 1), &[webhook(id, "crash v1")]).await.unwrap();
        let started = [webhook(id, "started")];
        let crash = [webhook(id, "crash v2")];
        store
            .set_state_with(
                &AgentId::from_string(id.into()),
                &AgentState::Running,
                UnixMillis(2),
                Outbox { deliver: &started, crash_ending: Some(&crash) },
            )
            .await
            .unwrap();
    }
    assert_eq!(store.reserved_webhooks().await.unwrap(), 2, "one crash ending per live agent, replaced not added");
    store
        .set_state_with(
            &AgentId::from_string("ended".into()),
            &AgentState::exited(ExitReason::Left),
            UnixMillis(3),
            Outbox { deliver: &[webhook("ended", "stopped")], crash_ending: None },
        )
        .await
        .unwrap();
    assert_eq!(store.reserved_webhooks().await.unwrap(), 1);
    store.close().await;

    let store = db.open().await;
    let orphans = store.fail_orphans(UnixMillis(10)).await.unwrap();
    assert_eq!(orphans, [AgentId::from_string("crashed".into())]);
    // One URL: only its oldest pending row is due at a time.
    let mut all = Vec::new();
    while let Some(first) = store.due_webhooks(UnixMillis(10), 100).await.unwrap().into_iter().next() {
        all.push(first.webhook.body);
        store.webhook_delivered(first.seq).await.unwrap();
    }
    // By event time: the crash ending is released with the restart's time, after everything else.
    assert_eq!(all, ["started", "started", "stopped", "crash v2"]);
    assert_eq!(store.reserved_webhooks().await.unwrap(), 0);
    // A second restart releases nothing again.
    assert!(store.fail_orphans(UnixMillis(20)).await.unwrap().is_empty());
    assert_eq!(store.webhook_counts().await.unwrap(), (0, 0));
}

/// Two stores (two nodes) on one database take due rows at the same time, each "delivering" what it
/// took and then marking it delivered. Every row is delivered exactly once, and each URL's rows in
/// the order they were written, whoever delivered them.
async fn two_stores_on_one_database_deliver_each_webhook_once_in_order_per_url(db: Db) {
    let first = db.open().await;
    let second = db.open().await;
    const URLS: usize = 5;
    const PER_URL: usize = 40;
    for i in 0..PER_URL {
        for u in 0..URLS {
            let hook = webhook_to(&format!("http://127.0.0.1:9/u{u}"), "a", &format!("u{u}-{i:03}"), i as i64);
            assert!(first.enqueue_webhook(&hook, 100_000).await.unwrap());
        }
    }
    let delivered: Arc<Mutex<Vec<(String, String, usize)>>> = Arc::default();
    let mut nodes = Vec::new();
    for (node, store) in [first.clone(), second.clone()].into_iter().enumerate() {
        let delivered = delivered.clone();
        nodes.push(tokio::spawn(async move {
            let now = UnixMillis(1_000);
            let mut idle_rounds = 0;
            while idle_rounds < 50 {
                let due = store.due_webhooks(now, 3).await.unwrap();
                if due.is_empty() {
                    idle_rounds += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle_rounds = 0;
                for row in due {
                    delivered.lock().unwrap().push((row.webhook.url.clone(), row.webhook.body.clone(), node));
                    tokio::task::yield_now().await;
                    store.webhook_delivered(row.seq).await.unwrap();
                }
                if store.webhook_counts().await.unwrap() == (0, 0) {
                    break;
                }
            }
        }));
    }
    for node in nodes {
        node.await.unwrap();
    }
    let delivered = delivered.lock().unwrap().clone();
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, body, _) in &delivered {
        *times.entry(body).or_default() += 1;
    }
    assert_eq!(times.len(), URLS * PER_URL, "every webhook delivered");
    assert!(times.values().all(|&n| n == 1), "a webhook delivered twice: {times:?}");
    for u in 0..URLS {
        let url = format!("http://127.0.0.1:9/u{u}");
        let bodies: Vec<&str> = delivered.iter().filter(|(to, _, _)| *to == url).map(|(_, b, _)| b.as_str()).collect();
        let expected: Vec<String> = (0..PER_URL).map(|i| format!("u{u}-{i:03}")).collect();
        assert_eq!(bodies, expected, "{url}'s deliveries out of order");
    }
    let by_node = |n: usize| delivered.iter().filter(|(_, _, node)| *node == n).count();
    eprintln!("delivered by the first store: {}, by the second: {}", by_node(0), by_node(1));
    assert_eq!(first.webhook_counts().await.unwrap(), (0, 0));
}

/// A store that took a row and died (it never marks it) holds it, and the rows behind it for the
/// same URL, until its claim runs out; then another store takes it. The holder asking again renews
/// its claim.
async fn a_claim_keeps_a_row_from_other_stores_until_it_runs_out(db: Db) {
    let holder = db.open().await;
    let other = db.open().await;
    let claim = WEBHOOK_CLAIM.as_millis() as i64;
    holder.enqueue_webhook(&webhook_to("http://127.0.0.1:9/a", "x", "a1", 1), 100).await.unwrap();
    holder.enqueue_webhook(&webhook_to("http://127.0.0.1:9/a", "x", "a2", 2), 100).await.unwrap();
    holder.enqueue_webhook(&webhook_to("http://127.0.0.1:9/b", "x", "b1", 3), 100).await.unwrap();

    let taken: Vec<String> =
        holder.due_webhooks(UnixMillis(10), 1).await.unwrap().into_iter().map(|p| p.webhook.body).collect();
    assert_eq!(taken, ["a1"]);
    // The other store sees only the other URL's row: a1 is held, a2 waits behind it.
    assert_eq!(other.apps_with_due_webhooks(UnixMillis(10)).await.unwrap(), [""]);
    let seen: Vec<String> =
        other.due_webhooks(UnixMillis(10), 10).await.unwrap().into_iter().map(|p| p.webhook.body).collect();
    assert_eq!(seen, ["b1"]);
    // The holder asking again gets its row again (and not b1, which the other store now holds).
    let again: Vec<String> =
        holder.due_webhooks(UnixMillis(20), 10).await.unwrap().into_iter().map(|p| p.webhook.body).collect();
    assert_eq!(again, ["a1"]);
    // For the other store, a1 is due when the renewed claim runs out.
    let b1 = other.due_webhooks(UnixMillis(10), 10).await.unwrap().remove(0);
    other.webhook_delivered(b1.seq).await.unwrap();
    assert_eq!(other.next_webhook_due().await.unwrap(), Some(UnixMillis(20 + claim)));
    assert!(other.due_webhooks(UnixMillis(19 + claim), 10).await.unwrap().is_empty());

    // The holder dies without a word; once its claim has run out, the other store delivers a1, then a2.
    holder.close().await;
    let mut bodies = Vec::new();
    while let Some(row) = other.due_webhooks(UnixMillis(20 + claim), 10).await.unwrap().into_iter().next() {
        bodies.push(row.webhook.body);
        other.webhook_delivered(row.seq).await.unwrap();
    }
    assert_eq!(bodies, ["a1", "a2"]);
    assert_eq!(other.webhook_counts().await.unwrap(), (0, 0));
}

/// A failed attempt ends its store's claim: at its retry time any store may take it, and it still
/// goes before the URL's later rows.
async fn a_failed_delivery_is_released_for_any_store_to_retry(db: Db) {
    let first = db.open().await;
    let second = db.open().await;
    first.enqueue_webhook(&webhook_to("http://127.0.0.1:9/a", "x", "a1", 1), 100).await.unwrap();
    first.enqueue_webhook(&webhook_to("http://127.0.0.1:9/a", "x", "a2", 2), 100).await.unwrap();
    let a1 = first.due_webhooks(UnixMillis(10), 10).await.unwrap().remove(0);
    first.webhook_failed(a1.seq, "receiver answered 503", Some(UnixMillis(500))).await.unwrap();
    assert!(second.due_webhooks(UnixMillis(499), 10).await.unwrap().is_empty(), "not before its retry time");
    assert_eq!(second.next_webhook_due().await.unwrap(), Some(UnixMillis(500)));
    let retried = second.due_webhooks(UnixMillis(500), 10).await.unwrap();
    assert_eq!(retried.iter().map(|p| (p.webhook.body.as_str(), p.attempts)).collect::<Vec<_>>(), [("a1", 1)]);
    assert_eq!(retried[0].webhook.headers, [("x-test".to_owned(), "1".to_owned())]);
    // Given up: the row is dead, and the URL's next row is due.
    second.webhook_failed(retried[0].seq, "receiver answered 410", None).await.unwrap();
    let next = first.due_webhooks(UnixMillis(500), 10).await.unwrap();
    assert_eq!(next.iter().map(|p| p.webhook.body.as_str()).collect::<Vec<_>>(), ["a2"]);
    assert_eq!(first.webhook_counts().await.unwrap(), (1, 1));
}
