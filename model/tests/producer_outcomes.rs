//! What the producer tells the application when a record's attempts end differently.
//!
//! Setup: one producer, acks=all, retries=1, leader broker 0 in epoch 1.
//! Steps: the first attempt is answered NOT_ENOUGH_REPLICAS_AFTER_APPEND (the leader appended
//! the record, the ISR was too small to commit it); the retry is refused outright with
//! NOT_ENOUGH_REPLICAS.
//! Expected: the record's outcome is indeterminate, not failed: the first attempt may still
//! be committed once the ISR grows back. With both attempts refused outright it is failed.

use insync_model::config::{Acks, Config};
use insync_model::msg::{ErrorCode, Msg, RequestId};
use insync_model::node::{ActorParams, Node, Topology};
use insync_model::producer::{Outcome, Producer, ProducerState};
use insync_model::types::{BrokerId, Epoch, ProducerId};
use stateright::actor::Out;

fn producer() -> Producer {
    let config = Config {
        acks: Acks::All,
        records: 1,
        retries: 1,
        crashes: 0,
        ..Config::default()
    };
    Producer {
        topology: Topology {
            replicas: 3,
            producers: 1,
            consumer: false,
        },
        producer_id: ProducerId(1),
        params: ActorParams::model(&config.clone().validate().expect("valid")),
        config,
    }
}

/// Answers the producer's requests, in order, with `errors`; returns its final state.
fn answer(errors: &[ErrorCode]) -> ProducerState {
    let p = producer();
    let mut o: Out<Node> = Out::new();
    let mut state = p.on_start(Some((BrokerId(0), Epoch(1))), &mut o);
    for (request, &error) in errors.iter().enumerate() {
        let mut o: Out<Node> = Out::new();
        p.on_msg(
            &mut state,
            Msg::ProduceResponse {
                request: RequestId(request as u32),
                result: Err(error),
            },
            &mut o,
        );
        // NOT_ENOUGH_REPLICAS keeps the leader: the retry goes out at once.
        if state.leader.is_none() {
            state.leader = Some((BrokerId(0), Epoch(1)));
        }
    }
    state
}

#[test]
fn a_refused_retry_of_an_appended_record_is_indeterminate() {
    let state = answer(&[
        ErrorCode::NotEnoughReplicasAfterAppend,
        ErrorCode::NotEnoughReplicas,
    ]);
    assert_eq!(
        state.outcomes,
        vec![Some(Outcome::Indeterminate(ErrorCode::NotEnoughReplicas))]
    );
}

#[test]
fn two_outright_refusals_are_a_definite_failure() {
    let state = answer(&[ErrorCode::NotEnoughReplicas, ErrorCode::NotEnoughReplicas]);
    assert_eq!(
        state.outcomes,
        vec![Some(Outcome::Failed(ErrorCode::NotEnoughReplicas))]
    );
}
