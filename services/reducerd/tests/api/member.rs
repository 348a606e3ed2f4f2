//! Consumer-group members against the real broker (PURE_REDUCER_TEST_KAFKA): one that takes
//! nothing while records wait is found stalled and rejoins with a new member that then
//! receives them; one that keeps up is never taken for stalled.

use std::time::{Duration, Instant};

use purereducer_bus::consumer::{commit_batch, next_batch};
use purereducer_bus::member::GroupMember;
use purereducer_bus::{Brokers, Topics};
use rdkafka::producer::FutureRecord;

use crate::broker::broker;
use crate::support::new_id;

const STALL: Duration = Duration::from_secs(2);
const RECORDS: usize = 6;

/// Up to `want` records from `member`, committing each batch; fails after a bound.
async fn take(member: &GroupMember, want: usize) -> usize {
    let mut taken = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while taken < want {
        assert!(Instant::now() < deadline, "only {taken} of {want} records arrived");
        if let Ok(batch) = tokio::time::timeout(Duration::from_millis(500), next_batch(member.consumer(), 100)).await {
            let batch = batch.expect("batch");
            commit_batch(member.consumer(), &batch).expect("commit");
            taken += batch.len();
        }
    }
    taken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_taking_nothing_while_records_wait_rejoins_and_one_keeping_up_does_not() {
    let brokers = Brokers::plain(&broker());
    let run = new_id();
    let topics = Topics {
        state_committed: format!("t-{run}-member"),
        reducer_gave_up: format!("t-{run}-gave-up"),
        intents: format!("t-{run}-intents"),
        actions: format!("t-{run}-actions"),
        dead_letter: format!("t-{run}-dlq"),
        partitions: 2,
        replication_factor: 1,
    };
    assert!(
        purereducer_bus::topics::ensure_topics(&brokers, &topics)
            .await
            .expect("topics"),
        "the broker did not create the topics"
    );
    let topic = topics.state_committed.as_str();
    let producer = purereducer_bus::reliable_producer(&brokers, "member-test").expect("producer");
    for n in 0..RECORDS {
        let key = format!("k{n}");
        producer
            .send(FutureRecord::to(topic).key(&key).payload("x"), Duration::from_secs(10))
            .await
            .expect("sent");
    }

    // Keeps up: everything taken and committed; readings over several stall bounds never
    // call it stalled.
    let mut keeping = GroupMember::join_with(&brokers, &format!("keeps-up-{run}"), &[topic], STALL).expect("join");
    assert_eq!(take(&keeping, RECORDS).await, RECORDS);
    let until = Instant::now() + STALL * 3;
    while Instant::now() < until {
        assert!(!keeping.check().await, "a member that keeps up was taken for stalled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Takes nothing: after the bound it rejoins, and the new member receives every record.
    let mut idle = GroupMember::join_with(&brokers, &format!("takes-nothing-{run}"), &[topic], STALL).expect("join");
    let started = Instant::now();
    let mut rejoined = false;
    while !rejoined {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "a member that took nothing for a minute was never found stalled"
        );
        rejoined = idle.check().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= STALL, "found stalled before the bound");
    assert_eq!(take(&idle, RECORDS).await, RECORDS);
    // Its commits count: caught up, it stays.
    let until = Instant::now() + STALL * 3;
    while Instant::now() < until {
        assert!(
            !idle.check().await,
            "the new member was taken for stalled after catching up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
