//! The Kafka listener, driven by `kafka-protocol` as a client: requests encoded as a Kafka
//! client encodes them, responses decoded as it decodes them. Covers the translation rules
//! (KIP-98 producer ids and sequences, KIP-320 fencing, KIP-511 ApiVersions fallback) without
//! Python or a real client.

use bytes::{BufMut, Bytes, BytesMut};
use insync::engine::{Cluster, EngineOptions};
use insync::kafka::{listen, KafkaOptions};
use insync_model::config::Config;
use insync_model::types::BrokerId;
use kafka_protocol::messages::{
    fetch_request, list_offsets_request, metadata_request, produce_request, ApiKey,
    ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOPIC: &str = "insync";

async fn cluster() -> (Arc<Cluster>, insync::kafka::KafkaListeners) {
    let config = Config {
        records: 1,
        ..Config::default()
    }
    .validate()
    .expect("valid config");
    let cluster = Arc::new(
        Cluster::start(config, EngineOptions::default())
            .await
            .expect("cluster starts"),
    );
    let listeners = listen(
        Arc::clone(&cluster),
        KafkaOptions {
            listen: vec!["127.0.0.1:0".parse().expect("address"); 3],
            topic: TOPIC.into(),
        },
    )
    .await
    .expect("listeners bind");
    (cluster, listeners)
}

struct Client {
    stream: TcpStream,
    correlation: i32,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.expect("connects"),
            correlation: 0,
        }
    }

    async fn send_frame(&mut self, frame: &[u8]) {
        let mut out = BytesMut::new();
        out.put_i32(frame.len() as i32);
        out.extend_from_slice(frame);
        self.stream.write_all(&out).await.expect("writes");
    }

    /// The next response frame, or `None` if the listener closed the connection.
    async fn read_frame(&mut self) -> Option<Bytes> {
        let read = async {
            let len = self.stream.read_i32().await.ok()?;
            let mut frame = vec![0u8; len as usize];
            self.stream.read_exact(&mut frame).await.ok()?;
            Some(Bytes::from(frame))
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("an answer or a close within 20 s")
    }

    async fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, R::header_version(version))
            .expect("header encodes");
        request
            .encode(&mut frame, version)
            .expect("request encodes");
        self.send_frame(&frame).await;
        let mut answer = self.read_frame().await.expect("an answer");
        let header = ResponseHeader::decode(&mut answer, R::Response::header_version(version))
            .expect("response header decodes");
        assert_eq!(header.correlation_id, self.correlation);
        R::Response::decode(&mut answer, version).expect("response decodes")
    }
}

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn batch(producer_id: i64, base_sequence: i32, values: &[&str]) -> Bytes {
    let records: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id >= 0 { base_sequence } else { -1 } + i as i32,
            timestamp: 0,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("batch encodes");
    buf.freeze()
}

fn produce(acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic())
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])])
}

/// (error code, base offset) of partition 0.
fn produced(r: &ProduceResponse) -> (i16, i64) {
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch(offset: i64, current_leader_epoch: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(300)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic())
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(current_leader_epoch)
                .with_partition_max_bytes(1 << 20)])])
}

/// (error code, high watermark, values) of partition 0.
fn fetched(r: &FetchResponse) -> (i16, i64, Vec<(i64, String)>) {
    let p = &r.responses[0].partitions[0];
    let mut values = Vec::new();
    if let Some(mut records) = p.records.clone() {
        for set in RecordBatchDecoder::decode_all(&mut records).expect("batches decode") {
            for r in set.records {
                let v = String::from_utf8(r.value.expect("a value").to_vec()).expect("utf-8");
                values.push((r.offset, v));
            }
        }
    }
    (p.error_code, p.high_watermark, values)
}

async fn leader_and_epoch(client: &mut Client) -> (i32, i32) {
    let metadata: MetadataResponse = client
        .call(
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
            ])),
            9,
        )
        .await;
    let p = &metadata.topics[0].partitions[0];
    (p.leader_id.0, p.leader_epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_requests_become_the_models_messages_and_back() {
    let (cluster, listeners) = cluster().await;
    let mut any = Client::connect(listeners.addrs[1]).await;

    // ApiVersions advertises exactly what is served.
    let versions: ApiVersionsResponse = any.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(versions.error_code, 0);
    let produce_range = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("Produce is advertised");
    assert_eq!(
        (produce_range.min_version, produce_range.max_version),
        (3, 9)
    );

    // Metadata: three brokers, the controller's leader and epoch; an unknown topic is named so.
    let metadata: MetadataResponse = any
        .call(
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
                metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("other")))),
            ])),
            9,
        )
        .await;
    assert_eq!(metadata.brokers.len(), 3);
    let leader = metadata.topics[0].partitions[0].leader_id.0;
    let epoch = metadata.topics[0].partitions[0].leader_epoch;
    assert_eq!((leader, epoch), (0, 1));
    assert_eq!(
        metadata.topics[1].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    // KIP-98: producer ids come from the controller, a new one per call.
    let first: InitProducerIdResponse = any
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1),
            1,
        )
        .await;
    let second: InitProducerIdResponse = any
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1),
            1,
        )
        .await;
    assert_eq!(first.error_code, 0);
    assert!(
        first.producer_id.0 >= 1 << 16,
        "above the topology's own ids"
    );
    assert_ne!(first.producer_id, second.producer_id);
    let pid = first.producer_id.0;

    // Produce to a follower: NOT_LEADER_OR_FOLLOWER, from the broker actor.
    let refused: ProduceResponse = any.call(&produce(-1, batch(pid, 0, &["x"])), 7).await;
    assert_eq!(produced(&refused).0, 6);

    // Produce to the leader, idempotently: appended, a retry answered with the same offsets,
    // a gap refused (the model's check_sequence, KIP-98).
    let mut leader_conn = Client::connect(listeners.addrs[leader as usize]).await;
    let ok: ProduceResponse = leader_conn
        .call(&produce(-1, batch(pid, 0, &["a", "b", "c"])), 7)
        .await;
    assert_eq!(produced(&ok), (0, 0));
    let retry: ProduceResponse = leader_conn
        .call(&produce(-1, batch(pid, 0, &["a", "b", "c"])), 7)
        .await;
    assert_eq!(
        produced(&retry),
        (0, 0),
        "a duplicate batch gets its original offset"
    );
    let gap: ProduceResponse = leader_conn
        .call(&produce(-1, batch(pid, 7, &["z"])), 7)
        .await;
    assert_eq!(produced(&gap).0, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let plain: ProduceResponse = leader_conn
        .call(&produce(1, batch(-1, -1, &["d", "e"])), 7)
        .await;
    assert_eq!(produced(&plain), (0, 3));
    let bad_acks: ProduceResponse = leader_conn
        .call(&produce(2, batch(-1, -1, &["f"])), 7)
        .await;
    assert_eq!(produced(&bad_acks).0, 21, "INVALID_REQUIRED_ACKS");

    // acks=0: the broker appends and Kafka sends no response, so the next answer on the
    // connection is the next request's.
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(7)
        .with_correlation_id(1000)
        .encode(&mut frame, ProduceRequest::header_version(7))
        .expect("header encodes");
    produce(0, batch(-1, -1, &["f"]))
        .encode(&mut frame, 7)
        .expect("request encodes");
    leader_conn.send_frame(&frame).await;
    // A batch over message.max.bytes (1,048,588 bytes) but within a frame:
    // the model's leader refuses it.
    let big = "x".repeat(1024 * 1024 + 64);
    let too_large: ProduceResponse = leader_conn
        .call(&produce(1, batch(-1, -1, &[big.as_str()])), 7)
        .await;
    assert_eq!(produced(&too_large).0, 10, "MESSAGE_TOO_LARGE");

    // Fetch: committed records only, as RecordBatch v2; KIP-320 fencing by epoch.
    let mut values = Vec::new();
    for _ in 0..50 {
        let answer: FetchResponse = leader_conn.call(&fetch(0, epoch), 11).await;
        let (code, hw, got) = fetched(&answer);
        assert_eq!(code, 0);
        if hw == 6 && got.len() == 6 {
            values = got;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected: Vec<(i64, String)> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_string()))
        .collect();
    assert_eq!(values, expected);
    let stale: FetchResponse = leader_conn.call(&fetch(0, epoch - 1), 11).await;
    assert_eq!(fetched(&stale).0, 74, "FENCED_LEADER_EPOCH");
    let future: FetchResponse = leader_conn.call(&fetch(0, epoch + 1), 11).await;
    assert_eq!(fetched(&future).0, 75, "UNKNOWN_LEADER_EPOCH");
    let past_end: FetchResponse = leader_conn.call(&fetch(100, epoch), 11).await;
    assert_eq!(fetched(&past_end).0, 1, "OFFSET_OUT_OF_RANGE");
    // Nothing committed past the end within max_wait_ms: an empty answer, no error.
    let at_end: FetchResponse = leader_conn.call(&fetch(6, epoch), 11).await;
    assert_eq!(fetched(&at_end), (0, 6, vec![]));

    // ListOffsets: earliest 0, latest the high watermark.
    let list = |timestamp| {
        ListOffsetsRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic())
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(epoch)
                        .with_timestamp(timestamp),
                ])])
    };
    let earliest: ListOffsetsResponse = leader_conn.call(&list(-2), 5).await;
    let latest: ListOffsetsResponse = leader_conn.call(&list(-1), 5).await;
    assert_eq!(earliest.topics[0].partitions[0].offset, 0);
    assert_eq!(latest.topics[0].partitions[0].offset, 6);
    let from_follower: ListOffsetsResponse = any.call(&list(-1), 5).await;
    assert_eq!(from_follower.topics[0].partitions[0].error_code, 6);

    // The leader crashes: its listener closes connections; Metadata names a new leader in a
    // newer epoch, which serves the committed records.
    assert!(
        cluster.crash(BrokerId(leader as u8)).await,
        "the leader was up"
    );
    let mut new_leader = (leader, epoch);
    for _ in 0..100 {
        new_leader = leader_and_epoch(&mut any).await;
        if new_leader.0 >= 0 && new_leader.0 != leader {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(new_leader.0, leader, "a new leader within 10 s");
    assert!(new_leader.1 > epoch);
    let mut closed = Client::connect(listeners.addrs[leader as usize]).await;
    closed.send_frame(&[0, 18, 0, 0, 0, 0, 0, 1, 0, 0]).await;
    assert!(
        closed.read_frame().await.is_none(),
        "a down broker's listener closes"
    );
    let mut served = Vec::new();
    for _ in 0..100 {
        let mut c = Client::connect(listeners.addrs[new_leader.0 as usize]).await;
        let answer: FetchResponse = c.call(&fetch(0, new_leader.1), 11).await;
        let (code, _, got) = fetched(&answer);
        if code == 0 && got.len() == 6 {
            served = got;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, expected, "the new leader serves what was committed");
    drop(listeners);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_kafkas_answers_and_never_bring_the_listener_down() {
    let (cluster, listeners) = cluster().await;
    let addr = listeners.addrs[0];

    // KIP-511: an ApiVersions version the broker does not know gets UNSUPPORTED_VERSION in a
    // v0 response that lists what is served.
    let mut c = Client::connect(addr).await;
    let mut frame = BytesMut::new();
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(42);
    frame.put_i16(-1); // no client id
    frame.put_u8(0); // no tagged fields
    c.send_frame(&frame).await;
    let mut answer = c.read_frame().await.expect("an answer");
    let header = ResponseHeader::decode(&mut answer, 0).expect("v0 header");
    assert_eq!(header.correlation_id, 42);
    let versions = ApiVersionsResponse::decode(&mut answer, 0).expect("v0 body");
    assert_eq!(versions.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(!versions.api_keys.is_empty());

    // Kafka closes the connection on an unknown API key, an API it does not serve, an
    // unsupported version of another API, a malformed request and an oversized frame.
    let closes: Vec<Vec<u8>> = vec![
        vec![0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff], // unknown API key
        vec![0, 19, 0, 2, 0, 0, 0, 1, 0xff, 0xff],      // CreateTopics: not served
        vec![0, 0, 0, 99, 0, 0, 0, 1, 0xff, 0xff],      // Produce v99
        vec![0, 3, 0, 9, 0, 0, 0, 1, 0, 5, b'x', 0x80], // Metadata v9, truncated
        vec![0, 1],                                     // too short for a header
    ];
    for bytes in closes {
        let mut c = Client::connect(addr).await;
        c.send_frame(&bytes).await;
        assert!(c.read_frame().await.is_none(), "closed after {bytes:?}");
    }
    let mut c = Client::connect(addr).await;
    c.stream
        .write_all(&(64 * 1024 * 1024i32).to_be_bytes())
        .await
        .expect("writes");
    assert!(c.read_frame().await.is_none(), "an oversized frame closes");

    // Every truncation of valid requests: answered or closed, never a crash. (Not random
    // bytes: kafka-protocol reserves memory by an array's count before reading it, a known
    // gap the module doc names.)
    let mut valid: Vec<Vec<u8>> = Vec::new();
    let mut encode_request = |key: ApiKey, version: i16, body: &dyn Fn(&mut BytesMut)| {
        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut frame, key.request_header_version(version))
            .expect("header encodes");
        body(&mut frame);
        valid.push(frame.to_vec());
    };
    encode_request(ApiKey::Produce, 7, &|b| {
        produce(-1, batch(-1, -1, &["a", "b"]))
            .encode(b, 7)
            .expect("encodes")
    });
    encode_request(ApiKey::Produce, 9, &|b| {
        produce(1, batch(-1, -1, &["a"]))
            .encode(b, 9)
            .expect("encodes")
    });
    encode_request(ApiKey::Fetch, 12, &|b| {
        fetch(0, 1).encode(b, 12).expect("encodes")
    });
    encode_request(ApiKey::Metadata, 12, &|b| {
        MetadataRequest::default().encode(b, 12).expect("encodes")
    });
    for frame in valid {
        for cut in 0..frame.len() {
            let mut c = Client::connect(addr).await;
            c.send_frame(&frame[..cut]).await;
            let _ = c.read_frame().await;
        }
    }

    // At most CONNECTIONS_MAX connections per broker: one more is closed at once; a place
    // freed is taken again. (First, let the connections closed above be noticed.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut open = Vec::new();
    // The connection of the KIP-511 check above is still open: it holds one place.
    for i in 1..insync::kafka::KAFKA_CONNECTIONS_MAX {
        let mut c = Client::connect(addr).await;
        c.send_frame(&[0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff]).await;
        assert!(c.read_frame().await.is_some(), "connection {i} is served");
        open.push(c);
    }
    let mut extra = Client::connect(addr).await;
    extra
        .send_frame(&[0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff])
        .await;
    assert!(extra.read_frame().await.is_none(), "over the cap: closed");
    drop(open);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The listener still serves.
    let mut c = Client::connect(addr).await;
    let versions: ApiVersionsResponse = c.call(&ApiVersionsRequest::default(), 0).await;
    assert_eq!(versions.error_code, 0);
    drop(listeners);
    cluster.shutdown().await;
}

/// min.insync.replicas through the listener: with both followers down the controller's ISR
/// shrinks to the leader, and the leader refuses acks=all (NOT_ENOUGH_REPLICAS) while it
/// still takes acks=1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_below_min_insync_gets_not_enough_replicas() {
    let (cluster, listeners) = cluster().await;
    let mut leader = Client::connect(listeners.addrs[0]).await;
    let ok: ProduceResponse = leader.call(&produce(-1, batch(-1, -1, &["a"])), 7).await;
    assert_eq!(produced(&ok), (0, 0));
    assert!(cluster.crash(BrokerId(1)).await, "broker 1 was up");
    assert!(cluster.crash(BrokerId(2)).await, "broker 2 was up");
    let mut code = 0;
    for _ in 0..100 {
        let answer: ProduceResponse = leader
            .call(&produce(-1, batch(-1, -1, &["b"])).with_timeout_ms(500), 7)
            .await;
        code = produced(&answer).0;
        if code == 19 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        code, 19,
        "NOT_ENOUGH_REPLICAS once the ISR is the leader alone"
    );
    let metadata: MetadataResponse = leader
        .call(
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic())),
            ])),
            9,
        )
        .await;
    let isr: Vec<i32> = metadata.topics[0].partitions[0]
        .isr_nodes
        .iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(isr, vec![0]);
    let one: ProduceResponse = leader.call(&produce(1, batch(-1, -1, &["c"])), 7).await;
    assert_eq!(produced(&one).0, 0, "acks=1 is still taken");
    drop(listeners);
    cluster.shutdown().await;
}

/// Consumer-group membership for one member (`impl/src/kafka/group.rs`), over the wire: a
/// member joins and is its group's leader, syncs its own assignment, heartbeats, commits in
/// its generation; a second member is refused with GROUP_MAX_SIZE_REACHED; a stale
/// generation is fenced; after LeaveGroup the next member takes the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_groups_join_sync_heartbeat_commit_and_leave() {
    use kafka_protocol::messages::{
        join_group_request, leave_group_request, offset_commit_request, sync_group_request,
        GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest,
        SyncGroupRequest,
    };
    let (cluster, listeners) = cluster().await;
    let mut client = Client::connect(listeners.addrs[1]).await;
    let group = GroupId(StrBytes::from_static_str("g"));
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(group.clone())
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
    };
    for version in [1, 5, 9] {
        let joined = client.call(&join(""), version).await;
        assert_eq!(joined.error_code, 0, "v{version}: {joined:?}");
        let me = joined.member_id.clone();
        assert_eq!(joined.leader, me, "the only member leads");
        assert_eq!(joined.members.len(), 1);
        assert_eq!(
            joined.members[0].metadata,
            Bytes::from_static(b"subscription")
        );
        let generation = joined.generation_id;

        // Another consumer of the group, on another connection: refused.
        let mut other = Client::connect(listeners.addrs[2]).await;
        let refused = other.call(&join(""), version).await;
        assert_eq!(
            refused.error_code, 81,
            "GROUP_MAX_SIZE_REACHED: {refused:?}"
        );

        let synced = client
            .call(
                &SyncGroupRequest::default()
                    .with_group_id(group.clone())
                    .with_generation_id(generation)
                    .with_member_id(me.clone())
                    .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                    .with_protocol_name(Some(StrBytes::from_static_str("range")))
                    .with_assignments(vec![
                        sync_group_request::SyncGroupRequestAssignment::default()
                            .with_member_id(me.clone())
                            .with_assignment(Bytes::from_static(b"partition 0")),
                    ]),
                3,
            )
            .await;
        assert_eq!(synced.error_code, 0);
        assert_eq!(synced.assignment, Bytes::from_static(b"partition 0"));
        let beat = |generation: i32| {
            HeartbeatRequest::default()
                .with_group_id(group.clone())
                .with_generation_id(generation)
                .with_member_id(me.clone())
        };
        assert_eq!(client.call(&beat(generation), 3).await.error_code, 0);
        assert_eq!(
            client.call(&beat(generation - 1), 3).await.error_code,
            22,
            "ILLEGAL_GENERATION"
        );
        let commit = |generation: i32| {
            OffsetCommitRequest::default()
                .with_group_id(group.clone())
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(me.clone())
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic())
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(7),
                        ]),
                ])
        };
        let committed = client.call(&commit(generation), 7).await;
        assert_eq!(committed.topics[0].partitions[0].error_code, 0);
        let stale = client.call(&commit(generation - 1), 7).await;
        assert_eq!(stale.topics[0].partitions[0].error_code, 22);

        let leave = if version < 3 {
            LeaveGroupRequest::default()
                .with_group_id(group.clone())
                .with_member_id(me.clone())
        } else {
            LeaveGroupRequest::default()
                .with_group_id(group.clone())
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(me.clone())
                ])
        };
        let version = version.min(5);
        let left = client.call(&leave, version).await;
        let error = left
            .members
            .first()
            .map_or(left.error_code, |m| m.error_code);
        assert_eq!(error, 0, "{left:?}");
        // Gone: its heartbeat is no longer known, and the next member may join.
        assert_eq!(
            client.call(&beat(generation), 3).await.error_code,
            25,
            "UNKNOWN_MEMBER_ID"
        );
    }
    // ApiVersions advertises the four APIs.
    let versions: ApiVersionsResponse = client.call(&ApiVersionsRequest::default(), 3).await;
    for key in [
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
    ] {
        assert!(
            versions.api_keys.iter().any(|v| v.api_key == key as i16),
            "{key:?} advertised"
        );
    }
    cluster.shutdown().await;
}
