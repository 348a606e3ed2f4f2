//! The topics of the platform and their creation.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::{Brokers, BusError, client_config};

/// Topic names; partition count for topics this process creates.
#[derive(Debug, Clone)]
pub struct Topics {
    /// `StateCommitted` events.
    pub state_committed: String,
    /// `ReducerGaveUp` events.
    pub reducer_gave_up: String,
    /// `IntentEmitted` events.
    pub intents: String,
    /// Queued actions.
    pub actions: String,
    /// Events the materializer could not apply.
    pub dead_letter: String,
    /// Partitions of created topics.
    pub partitions: i32,
    /// Replicas of each partition of created topics.
    pub replication_factor: i32,
}

impl Topics {
    /// The topic an outbox event type goes to.
    pub fn for_event(&self, event_type: &str) -> &str {
        match event_type {
            "ReducerGaveUp" => &self.reducer_gave_up,
            "IntentEmitted" => &self.intents,
            _ => &self.state_committed,
        }
    }

    /// Every topic, for creation.
    pub fn all(&self) -> [&str; 5] {
        [
            &self.state_committed,
            &self.reducer_gave_up,
            &self.intents,
            &self.actions,
            &self.dead_letter,
        ]
    }
}

impl Topics {
    /// Checks the settings topic creation uses.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.partitions < 1 {
            return Err(BusError::Config("kafka.partitions must be at least 1".to_owned()));
        }
        if self.replication_factor < 1 {
            return Err(BusError::Config(
                "kafka.replication_factor must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Creates missing topics. Existing topics are left as they are; a broker that does not
/// support topic creation is reported and tolerated (the topics may be created by hand).
/// Returns `Ok(false)` when the brokers could not be asked (try again later).
pub async fn ensure_topics(brokers: &Brokers, topics: &Topics) -> Result<bool, BusError> {
    topics.validate()?;
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, "reducerd-admin").create()?;
    let wanted: Vec<NewTopic<'_>> = topics
        .all()
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                topics.partitions,
                TopicReplication::Fixed(topics.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    match admin.create_topics(&wanted, &options).await {
        Ok(results) => {
            for result in results {
                match result {
                    Ok(name) => tracing::info!(topic = %name, "topic created"),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => tracing::warn!(topic = %name, ?code, "topic not created"),
                }
            }
            Ok(true)
        }
        Err(err)
            if matches!(
                err.rdkafka_error_code(),
                Some(RDKafkaErrorCode::OperationTimedOut)
                    | Some(RDKafkaErrorCode::BrokerTransportFailure)
                    | Some(RDKafkaErrorCode::AllBrokersDown)
            ) =>
        {
            tracing::warn!(error = %err, "the brokers did not answer topic creation; trying again");
            Ok(false)
        }
        Err(err) => {
            tracing::warn!(error = %err, "topic creation unavailable; expecting the topics to exist");
            Ok(true)
        }
    }
}
