//! Kafka's wire protocol in front of the engine's brokers, so stock Kafka clients (librdkafka,
//! kafka-python, the Java client) produce to and consume from the model's actors.
//!
//! One listener per broker: every broker of an in-process [`Cluster`] (`insync run
//! --kafka-listen`), or the one broker of an `insync broker --kafka-listen` process, which
//! reaches the controller process over the cluster's connections ([`Host`]). It translates,
//! and decides nothing:
//! a Kafka request becomes the model's message to that broker's actor (or the controller's),
//! and the actor's answer becomes the Kafka response. The broker's produce and fetch rules,
//! the idempotent producer's sequence check and the controller's producer ids are the model's
//! own, the same code the checker explores. One topic (`--kafka-topic`) with one partition, 0.
//!
//! | Kafka API (versions served) | Becomes |
//! |---|---|
//! | ApiVersions (0-3) | answered here: the table below. An unsupported version gets `UNSUPPORTED_VERSION` in a v0 response listing what is served (KIP-511), as Kafka does. |
//! | Metadata (0-12) | the controller's partition state (leader, leader epoch, ISR; KIP-320 epochs from v7) read from the controller actor in-process; in a broker process `Msg::Metadata` to the controller (leader and epoch; the ISR is this broker's own if it leads, else every replica); every broker as a node, at the addresses `--kafka-listen` lists. |
//! | InitProducerId (0-4) | `Msg::InitProducerId` to the controller, which allocates the id (KIP-98) and saves it before answering. Epoch 0: every call gets a new id (which KIP-360's bump allows a client to take). |
//! | Produce (3-9) | `Msg::Produce` to the broker, with `acks`, and the batch's producer id and sequence numbers (KIP-98); the answer's error is Kafka's code. `acks=0` gets no response, as in Kafka. |
//! | Fetch (4-12) | `Msg::ConsumerFetch` with the request's `current_leader_epoch` (KIP-320, v9+), so the broker fences it; records below the high watermark only, as RecordBatch v2. No fetch sessions (KIP-227: session id 0 in every answer). |
//! | ListOffsets (1-7) | read from the broker's state: earliest 0, latest the high watermark; fenced by `current_leader_epoch` (KIP-320, v4+). |
//! | FindCoordinator (0-3) | in-process the broker asked (the listeners share one store); in a cluster of processes, where each broker process keeps its own groups and offsets, the partition's leader, and a broker that does not lead answers group requests `NOT_COORDINATOR`. |
//! | OffsetCommit (2-8), OffsetFetch (1-7) | the engine's offset store ([`OffsetStore`]); a commit with a generation must come from the group's member in it. |
//! | JoinGroup (0-9), SyncGroup (0-5), Heartbeat (0-4), LeaveGroup (0-5) | the listener's coordinator of one-member groups ([`group`]): a second member is refused with `GROUP_MAX_SIZE_REACHED`. |
//!
//! What Kafka does that this listener copies rather than decides:
//! - An unknown API key, an API not in the table, or an unsupported version of one (except
//!   ApiVersions) closes the connection, as Kafka's `SocketServer` does for a request it
//!   cannot parse. So does a malformed request or a frame over [`KAFKA_FRAME_BYTES_MAX`].
//! - Each broker's listener serves at most [`KAFKA_CONNECTIONS_MAX`] connections and closes more at
//!   once; a connection with no whole request for [`KAFKA_IDLE_TIMEOUT`] is closed (Kafka's
//!   `max.connections` and `connections.max.idle.ms`).
//! - A connection to a broker that is down is closed (a crashed broker's socket is gone),
//!   and a request its actor cannot take closes it too; clients reconnect and ask for
//!   metadata, as they do when a Kafka broker dies.
//! - `acks=all` waits for the model's answer for the request's `timeout_ms` (at most
//!   [`WAIT_MAX`]), then answers `REQUEST_TIMED_OUT` (Kafka's delayed produce expires the
//!   same way); a fetch waits at most its `max_wait_ms` and then answers without records.
//!
//! Known gap: `kafka-protocol` 0.18 reserves memory by the element count of each array on the
//! wire before it reads the elements. The frame cap bounds the bytes, not the count, so a
//! crafted request can ask for a block of hundreds of gigabytes. The `insync` binary's
//! allocator (mimalloc) reserves it as address space only and the request is refused when its
//! elements run out (`tests/kafka_clients.rs`, `the_binary_survives_array_counts_past_the_frame`,
//! on this machine); under the system allocator the same frame fails the allocation, and Rust
//! aborts. Record batches are walked before decoding ([`batch::check_batch`]); the request
//! arrays are not.

pub mod batch;
pub mod group;

use crate::engine::{Cluster, Endpoint, Host};
use crate::error::UsageError;
use crate::runtime::Route;
use bytes::{BufMut, Bytes, BytesMut};
use insync_model::config::Acks;
use insync_model::msg::{ErrorCode, Msg, RequestId};
use insync_model::types::{BrokerId, Epoch, Offset};
use kafka_protocol::messages::{
    api_versions_response::ApiVersion, fetch_response, find_coordinator_response,
    join_group_response, leave_group_response, list_offsets_response, metadata_response,
    offset_commit_response, offset_fetch_response, produce_response, ApiKey, ApiVersionsResponse,
    BrokerId as KafkaBrokerId, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse, InitProducerIdRequest,
    InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use stateright::actor::Id;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The largest request frame: a produce request of `message.max.bytes` (1 MiB and a record's
/// overhead, [`insync_model::limits::SizeLimits::KAFKA`]) and room for its headers. Kafka's
/// `socket.request.max.bytes` is 100 MiB; nothing here needs more than one batch.
pub const KAFKA_FRAME_BYTES_MAX: usize = 1024 * 1024 + 64 * 1024;

/// The longest a request waits for the model's answer, whatever its timeout says.
pub const WAIT_MAX: Duration = Duration::from_secs(30);

/// How often a waiting request looks whether its broker is still up.
const LIVENESS_POLL: Duration = Duration::from_millis(100);

/// Most client connections one broker's listener serves at once; more are closed at once.
pub const KAFKA_CONNECTIONS_MAX: usize = 256;

/// A connection on which no whole request arrives for this long is closed (Kafka's
/// `connections.max.idle.ms` is 10 minutes).
pub const KAFKA_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Most consumer groups the offset store keeps.
pub const GROUPS_MAX: usize = 1024;

/// The longest a broker process's Metadata waits for the controller's answer.
pub const METADATA_WAIT: Duration = Duration::from_secs(2);

/// The partition as a Metadata response gives it.
struct Partition {
    leader: Option<BrokerId>,
    leader_epoch: Epoch,
    isr: Vec<BrokerId>,
}

/// Kafka's error codes the listener answers with (Kafka's `Errors` class).
mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_REQUEST: i16 = 42;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
}

/// The model's error as Kafka's code. The model answers a duplicate of an appended batch with
/// its original offsets (Kafka since 1.0 does so for the last five batches, KIP-98), so
/// `DUPLICATE_SEQUENCE_NUMBER` never comes from it.
pub fn error_code(e: ErrorCode) -> i16 {
    match e {
        ErrorCode::NotLeaderOrFollower => code::NOT_LEADER_OR_FOLLOWER,
        ErrorCode::LeaderNotAvailable => code::LEADER_NOT_AVAILABLE,
        ErrorCode::NotEnoughReplicas => code::NOT_ENOUGH_REPLICAS,
        ErrorCode::NotEnoughReplicasAfterAppend => code::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode::OutOfOrderSequenceNumber => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
        ErrorCode::FencedLeaderEpoch => code::FENCED_LEADER_EPOCH,
        ErrorCode::UnknownLeaderEpoch => code::UNKNOWN_LEADER_EPOCH,
        ErrorCode::OffsetOutOfRange => code::OFFSET_OUT_OF_RANGE,
        ErrorCode::RequestTimedOut => code::REQUEST_TIMED_OUT,
        ErrorCode::MessageTooLarge | ErrorCode::RecordTooLarge => code::MESSAGE_TOO_LARGE,
        // Controller-side answers to a leader; no client request gets them.
        ErrorCode::InvalidUpdateVersion | ErrorCode::IneligibleReplica => {
            code::UNKNOWN_SERVER_ERROR
        }
    }
}

/// The APIs and versions served (see the module doc); ApiVersions advertises exactly these.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
];

fn supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|&(k, min, max)| k == key && (min..=max).contains(&version))
}

/// Where the listeners listen and what they serve.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// One address per broker, broker `i` at `listen[i]`.
    pub listen: Vec<SocketAddr>,
    /// The one topic; its one partition is 0.
    pub topic: String,
}

impl KafkaOptions {
    /// `--kafka-listen`: either one address, broker `i` on its port plus `i` (port 0: every
    /// broker on a free port), or a comma-separated list with one address per broker.
    pub fn parse_listen(spec: &str, replicas: usize) -> anyhow::Result<Vec<SocketAddr>> {
        let parsed: Vec<SocketAddr> = spec
            .split(',')
            .map(|a| {
                a.trim().parse().map_err(|e| {
                    anyhow::anyhow!(UsageError::InvalidConfig(format!(
                        "--kafka-listen {a:?} is not HOST:PORT ({e})"
                    )))
                })
            })
            .collect::<anyhow::Result<_>>()?;
        match parsed.as_slice() {
            [one] if replicas > 1 => (0..replicas)
                .map(|i| {
                    let port = if one.port() == 0 {
                        Some(0)
                    } else {
                        one.port().checked_add(i as u16)
                    };
                    port.map(|p| SocketAddr::new(one.ip(), p)).ok_or_else(|| {
                        anyhow::anyhow!(UsageError::InvalidConfig(format!(
                            "--kafka-listen port {} + {i} is past 65535",
                            one.port()
                        )))
                    })
                })
                .collect(),
            list if list.len() == replicas => Ok(list.to_vec()),
            list => anyhow::bail!(UsageError::InvalidConfig(format!(
                "--kafka-listen has {} addresses for {replicas} brokers; give one \
                 (broker i listens on its port + i) or one per broker",
                list.len()
            ))),
        }
    }
}

/// The consumer groups' committed offsets for the one partition, kept by the engine process.
///
/// Kafka keeps them in the replicated `__consumer_offsets` topic; the model has no such
/// topic, and its consumer actor's committed offset belongs to the engine's own consumer (its
/// position, its fetch loop), not to an outside group. So the store lives here, beside the
/// actors: it survives any broker's crash (no broker holds it) and ends with the process.
#[derive(Default)]
pub struct OffsetStore {
    groups: Mutex<HashMap<String, i64>>,
}

impl OffsetStore {
    /// Commits `offset` for `group`; false if the store is full of other groups.
    #[must_use = "false: the store is full and the offset was not committed"]
    pub fn commit(&self, group: &str, offset: i64) -> bool {
        let mut groups = self.groups.lock().expect("offsets lock");
        if groups.len() >= GROUPS_MAX && !groups.contains_key(group) {
            return false;
        }
        groups.insert(group.to_string(), offset);
        true
    }

    pub fn committed(&self, group: &str) -> Option<i64> {
        self.groups
            .lock()
            .expect("offsets lock")
            .get(group)
            .copied()
    }
}

/// What every listener of a process shares.
struct Shared {
    host: Host,
    topic: String,
    /// Broker `i`'s listener address, as Metadata advertises it.
    addrs: Vec<SocketAddr>,
    offsets: OffsetStore,
    groups: group::Groups,
    /// Whether the groups' coordinator is the partition's leader: in a cluster of processes,
    /// where each process keeps its own groups and offsets, so that a group's clients all
    /// meet in one process. An in-process cluster's listeners share one store, and every
    /// broker coordinates.
    coordinator_is_leader: bool,
}

/// The running listeners; dropping it stops them (open connections end with the runtime).
pub struct KafkaListeners {
    /// Broker `i`'s address: bound here for the brokers this process hosts, as given for the
    /// others.
    pub addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for KafkaListeners {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Binds one listener per broker of `cluster` (an in-process one) and serves Kafka clients.
pub async fn listen(
    cluster: Arc<Cluster>,
    options: KafkaOptions,
) -> anyhow::Result<KafkaListeners> {
    if cluster.is_remote() {
        anyhow::bail!(UsageError::InvalidConfig(
            "the Kafka listener of `insync run` serves an in-process cluster \
             only; give `insync broker` --kafka-listen instead"
                .to_string()
        ));
    }
    listen_on(cluster.host(), options).await
}

/// Binds a listener for each broker `host` runs (every broker of an in-process cluster, or
/// the one broker of an `insync broker` process) and serves Kafka clients. `options.listen`
/// names every broker's address, as Metadata advertises them: a process that does not host
/// every broker needs them as fixed ports, since it cannot learn where another process bound.
pub async fn listen_on(host: Host, options: KafkaOptions) -> anyhow::Result<KafkaListeners> {
    let topology = host.topology();
    if options.listen.len() != topology.replicas {
        anyhow::bail!(UsageError::InvalidConfig(format!(
            "{} Kafka listener addresses for {} brokers",
            options.listen.len(),
            topology.replicas
        )));
    }
    if options.topic.is_empty() || options.topic.len() > 249 {
        anyhow::bail!(UsageError::InvalidConfig(
            "a Kafka topic name has 1 to 249 characters".to_string()
        ));
    }
    let hosted: Vec<BrokerId> = topology
        .brokers()
        .filter(|&b| host.hosts(topology.broker(b)))
        .collect();
    if hosted.len() < topology.replicas {
        if let Some(zero) = options.listen.iter().find(|a| a.port() == 0) {
            anyhow::bail!(UsageError::InvalidConfig(format!(
                "--kafka-listen {zero} has port 0, but every broker process \
                 advertises the others' Kafka addresses as given; give fixed ports, the same \
                 list to every broker"
            )));
        }
    }
    let mut addrs = options.listen.clone();
    let mut listeners = Vec::new();
    for &b in &hosted {
        let addr = options.listen[b.index()];
        let l = TcpListener::bind(addr).await.map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr} for Kafka clients: {e}; is the port in use?")
        })?;
        addrs[b.index()] = l.local_addr()?;
        listeners.push((b, l));
    }
    let shared = Arc::new(Shared {
        host,
        topic: options.topic,
        addrs: addrs.clone(),
        offsets: OffsetStore::default(),
        groups: group::Groups::default(),
        coordinator_is_leader: hosted.len() < topology.replicas,
    });
    let tasks = listeners
        .into_iter()
        .map(|(b, l)| {
            let shared = Arc::clone(&shared);
            tokio::spawn(accept_loop(shared, b, l))
        })
        .collect();
    Ok(KafkaListeners { addrs, tasks })
}

async fn accept_loop(shared: Arc<Shared>, broker: BrokerId, listener: TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(KAFKA_CONNECTIONS_MAX));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(broker = broker.0, "kafka accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(
                broker = broker.0,
                %peer,
                "kafka listener at {KAFKA_CONNECTIONS_MAX} connections; closing a new one"
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Some(endpoint) = shared.host.endpoint() else {
            tracing::warn!(
                broker = broker.0,
                %peer,
                "this process has used up its endpoint ids; closing a new Kafka connection \
                 (restart the process)"
            );
            continue;
        };
        let mut conn = Connection {
            endpoint,
            shared: Arc::clone(&shared),
            broker,
            next_request: 0,
        };
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(why) = conn.serve(stream).await {
                tracing::debug!(broker = broker.0, %peer, "kafka connection closed: {why}");
            }
        });
    }
}

/// How a request ends.
enum Reply {
    /// A response body, encoded for the request's version.
    Body(BytesMut),
    /// No response (produce with `acks=0`).
    Nothing,
}

/// Why a connection is closed (see the module doc); logged, never sent.
type Close = String;

/// One client connection to one broker: an endpoint of its own, so the actors' answers come
/// back to it. Requests are handled one at a time, in order, as Kafka handles a connection's
/// requests (it mutes the socket until the response is sent).
struct Connection {
    shared: Arc<Shared>,
    broker: BrokerId,
    endpoint: Endpoint,
    next_request: u32,
}

impl Connection {
    fn broker_id(&self) -> Id {
        self.shared.host.topology().broker(self.broker)
    }

    fn running(&self, id: Id) -> bool {
        self.shared.host.runtime().is_running(id)
    }

    async fn serve(&mut self, mut stream: TcpStream) -> Result<(), Close> {
        loop {
            let read = async {
                let mut len = [0u8; 4];
                if stream.read_exact(&mut len).await.is_err() {
                    return Ok(None); // the client hung up
                }
                let len = i32::from_be_bytes(len);
                if len < 0 || len as usize > KAFKA_FRAME_BYTES_MAX {
                    return Err(format!(
                        "a frame of {len} bytes (at most {KAFKA_FRAME_BYTES_MAX})"
                    ));
                }
                let mut frame = vec![0u8; len as usize];
                stream
                    .read_exact(&mut frame)
                    .await
                    .map_err(|e| format!("reading a frame: {e}"))?;
                Ok(Some(frame))
            };
            let frame = match tokio::time::timeout(KAFKA_IDLE_TIMEOUT, read).await {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(why)) => return Err(why),
                Err(_) => return Err(format!("no whole request for {KAFKA_IDLE_TIMEOUT:?}")),
            };
            if !self.running(self.broker_id()) {
                return Err(format!("broker {} is down", self.broker.0));
            }
            let (correlation, header_version, reply) = self.handle(Bytes::from(frame)).await?;
            let Reply::Body(body) = reply else {
                continue;
            };
            let mut header = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(correlation)
                .encode(&mut header, header_version)
                .map_err(|e| format!("encoding a response header: {e}"))?;
            let mut out = BytesMut::with_capacity(4 + header.len() + body.len());
            out.put_i32((header.len() + body.len()) as i32);
            out.extend_from_slice(&header);
            out.extend_from_slice(&body);
            stream
                .write_all(&out)
                .await
                .map_err(|e| format!("writing a response: {e}"))?;
        }
    }

    /// One request frame: its correlation id, the response header version, and the reply.
    async fn handle(&mut self, mut frame: Bytes) -> Result<(i32, i16, Reply), Close> {
        if frame.len() < 8 {
            return Err(format!("a request of {} bytes has no header", frame.len()));
        }
        let api_key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let key = ApiKey::try_from(api_key).map_err(|_| format!("unknown API key {api_key}"))?;
        if key == ApiKey::ApiVersions && !supported(key, version) {
            // KIP-511: the broker answers an ApiVersions it cannot parse with version 0 and
            // UNSUPPORTED_VERSION, listing what it serves, so the client can pick a version.
            let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
            let body = encode(&api_versions(code::UNSUPPORTED_VERSION), 0)?;
            return Ok((correlation, 0, Reply::Body(body)));
        }
        if !supported(key, version) {
            return Err(format!("{key:?} v{version} is not served"));
        }
        let header = decode::<RequestHeader>(&mut frame, key.request_header_version(version))?;
        let correlation = header.correlation_id;
        let response_header = key.response_header_version(version);
        let body = match key {
            ApiKey::ApiVersions => encode(&api_versions(code::NONE), version)?,
            ApiKey::Metadata => {
                let request = decode::<MetadataRequest>(&mut frame, version)?;
                encode(&self.metadata(request, version).await?, version)?
            }
            ApiKey::InitProducerId => {
                let request = decode::<InitProducerIdRequest>(&mut frame, version)?;
                encode(&self.init_producer_id(request).await?, version)?
            }
            ApiKey::Produce => {
                let request = decode::<ProduceRequest>(&mut frame, version)?;
                match self.produce(request).await? {
                    Some(response) => encode(&response, version)?,
                    None => return Ok((correlation, response_header, Reply::Nothing)),
                }
            }
            ApiKey::Fetch => {
                let request = decode::<FetchRequest>(&mut frame, version)?;
                encode(&self.fetch(request).await?, version)?
            }
            ApiKey::ListOffsets => {
                let request = decode::<ListOffsetsRequest>(&mut frame, version)?;
                encode(&self.list_offsets(request).await?, version)?
            }
            ApiKey::FindCoordinator => {
                let request = decode::<FindCoordinatorRequest>(&mut frame, version)?;
                encode(&self.find_coordinator(request).await?, version)?
            }
            ApiKey::OffsetCommit => {
                let request = decode::<OffsetCommitRequest>(&mut frame, version)?;
                let coordinating = self.coordinates().await?;
                encode(&self.offset_commit(request, coordinating), version)?
            }
            ApiKey::OffsetFetch => {
                let request = decode::<OffsetFetchRequest>(&mut frame, version)?;
                let coordinating = self.coordinates().await?;
                encode(&self.offset_fetch(request, coordinating), version)?
            }
            ApiKey::JoinGroup => {
                let request = decode::<JoinGroupRequest>(&mut frame, version)?;
                let client_id = header.client_id.as_ref().map_or("", |c| c.as_str());
                let response = if self.coordinates().await? {
                    self.join_group(request, client_id)
                } else {
                    JoinGroupResponse::default()
                        .with_error_code(code::NOT_COORDINATOR)
                        .with_generation_id(-1)
                        .with_member_id(request.member_id)
                };
                encode(&response, version)?
            }
            ApiKey::SyncGroup => {
                let request = decode::<SyncGroupRequest>(&mut frame, version)?;
                let response = if self.coordinates().await? {
                    self.sync_group(request)
                } else {
                    SyncGroupResponse::default().with_error_code(code::NOT_COORDINATOR)
                };
                encode(&response, version)?
            }
            ApiKey::Heartbeat => {
                let request = decode::<HeartbeatRequest>(&mut frame, version)?;
                let response = if self.coordinates().await? {
                    self.heartbeat(request)
                } else {
                    HeartbeatResponse::default().with_error_code(code::NOT_COORDINATOR)
                };
                encode(&response, version)?
            }
            ApiKey::LeaveGroup => {
                let request = decode::<LeaveGroupRequest>(&mut frame, version)?;
                let response = if self.coordinates().await? {
                    self.leave_group(request, version)
                } else {
                    LeaveGroupResponse::default().with_error_code(code::NOT_COORDINATOR)
                };
                encode(&response, version)?
            }
            other => return Err(format!("{other:?} is not served")),
        };
        Ok((correlation, response_header, Reply::Body(body)))
    }

    /// Sends `msg` to actor `to` and waits up to `wait` for the answer `accept` picks (other
    /// mail is a late answer to an earlier request, and dropped). `Err` if `to` is down.
    async fn ask(
        &mut self,
        to: Id,
        msg: Msg,
        wait: Duration,
        accept: impl Fn(Id, &Msg) -> bool,
    ) -> Result<Option<Msg>, Close> {
        let runtime = self.shared.host.runtime();
        if !runtime
            .send_from(self.endpoint.id, to, msg, Route::Direct)
            .await
        {
            return Err(format!("actor {} took no request (down?)", usize::from(to)));
        }
        // An actor of another process cannot be watched from here: its deadline alone ends
        // the wait.
        let watched = self.shared.host.hosts(to);
        let deadline = tokio::time::Instant::now() + wait.min(WAIT_MAX);
        loop {
            let poll = (tokio::time::Instant::now() + LIVENESS_POLL).min(deadline);
            match tokio::time::timeout_at(poll, self.endpoint.mail.recv()).await {
                Ok(Some((src, answer))) => {
                    if accept(src, &answer) {
                        return Ok(Some(answer));
                    }
                }
                Ok(None) => return Err("the engine stopped".into()),
                Err(_) => {
                    if watched && !self.shared.host.runtime().is_running(to) {
                        return Err(format!("actor {} went down", usize::from(to)));
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn next_request(&mut self) -> RequestId {
        self.next_request = self.next_request.wrapping_add(1);
        RequestId(self.next_request)
    }

    fn is_topic(&self, name: &TopicName) -> bool {
        name.0.as_str() == self.shared.topic
    }

    fn topic_name(&self) -> TopicName {
        TopicName(StrBytes::from_string(self.shared.topic.clone()))
    }

    // ------------------------------------------------------------------ metadata

    /// The partition as the controller has it. In-process it is read from the controller's
    /// state, ISR included. A broker process asks the controller (`Msg::Metadata`, over the
    /// cluster's connections), which answers the leader and its epoch; the ISR is then the
    /// one this broker holds if it leads in that epoch, else (unknown here) every replica.
    /// No answer within [`METADATA_WAIT`] is a partition without a leader, which clients
    /// retry.
    async fn partition(&mut self) -> Result<Partition, Close> {
        let host = self.shared.host.clone();
        let topology = host.topology();
        let controller = topology.controller();
        if host.hosts(controller) {
            let p = host
                .runtime()
                .inspect(controller, |s| s.as_controller().map(|c| c.partition))
                .await
                .flatten()
                .ok_or("the controller is down")?;
            return Ok(Partition {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                isr: p.isr.iter().collect(),
            });
        }
        let answer = self
            .ask(controller, Msg::Metadata, METADATA_WAIT, |src, m| {
                src == controller && matches!(m, Msg::MetadataResponse { .. })
            })
            .await?;
        let Some(Msg::MetadataResponse {
            leader,
            leader_epoch,
        }) = answer
        else {
            return Ok(Partition {
                leader: None,
                leader_epoch: Epoch(0),
                isr: Vec::new(),
            });
        };
        let held = host
            .runtime()
            .inspect(self.broker_id(), move |s| {
                s.as_broker().and_then(|b| {
                    b.leader_state()
                        .filter(|_| b.leader_epoch == leader_epoch)
                        .map(|l| l.isr.iter().collect::<Vec<_>>())
                })
            })
            .await
            .flatten();
        Ok(Partition {
            leader,
            leader_epoch,
            isr: held.unwrap_or_else(|| topology.brokers().collect()),
        })
    }

    /// The controller's view of the partition (KIP-320 leader epochs from Metadata v7).
    async fn metadata(
        &mut self,
        request: MetadataRequest,
        version: i16,
    ) -> Result<MetadataResponse, Close> {
        let topology = self.shared.host.topology();
        let partition = self.partition().await?;
        let brokers = self
            .shared
            .addrs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                metadata_response::MetadataResponseBroker::default()
                    .with_node_id(KafkaBrokerId(i as i32))
                    .with_host(StrBytes::from_string(a.ip().to_string()))
                    .with_port(i32::from(a.port()))
            })
            .collect();
        let ours = || {
            let (error, leader) = match partition.leader {
                Some(b) => (code::NONE, i32::from(b.0)),
                None => (code::LEADER_NOT_AVAILABLE, -1),
            };
            metadata_response::MetadataResponseTopic::default()
                .with_name(Some(self.topic_name()))
                .with_partitions(vec![metadata_response::MetadataResponsePartition::default(
                )
                .with_error_code(error)
                .with_partition_index(0)
                .with_leader_id(KafkaBrokerId(leader))
                .with_leader_epoch(partition.leader_epoch.0 as i32)
                .with_replica_nodes(
                    topology
                        .brokers()
                        .map(|b| KafkaBrokerId(i32::from(b.0)))
                        .collect(),
                )
                .with_isr_nodes(
                    partition
                        .isr
                        .iter()
                        .map(|b| KafkaBrokerId(i32::from(b.0)))
                        .collect(),
                )])
        };
        // Every topic: null (v1+) or, in v0, an empty list.
        let all = match &request.topics {
            None => true,
            Some(t) => t.is_empty() && version == 0,
        };
        let topics = if all {
            vec![ours()]
        } else {
            request
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| match t.name {
                    Some(name) if self.is_topic(&name) => ours(),
                    name => metadata_response::MetadataResponseTopic::default()
                        .with_name(name)
                        .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
                })
                .collect()
        };
        Ok(MetadataResponse::default()
            .with_brokers(brokers)
            .with_cluster_id(Some(StrBytes::from_static_str("insync")))
            .with_controller_id(KafkaBrokerId(-1))
            .with_topics(topics))
    }

    // ------------------------------------------------------------------ producer ids

    /// KIP-98: the controller allocates the id (KIP-360's bump is a new id here).
    async fn init_producer_id(
        &mut self,
        request: InitProducerIdRequest,
    ) -> Result<InitProducerIdResponse, Close> {
        if request.transactional_id.is_some() {
            // Transactions (KIP-98's second half) are not served.
            return Ok(InitProducerIdResponse::default()
                .with_error_code(code::INVALID_REQUEST)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1));
        }
        let request_id = self.next_request();
        let controller = self.shared.host.topology().controller();
        let answer = self
            .ask(
                controller,
                Msg::InitProducerId {
                    request: request_id,
                },
                Duration::from_secs(5),
                |src, m| {
                    src == controller
                        && matches!(m, Msg::InitProducerIdResponse { request, .. } if *request == request_id)
                },
            )
            .await?;
        Ok(match answer {
            Some(Msg::InitProducerIdResponse { producer, .. }) => InitProducerIdResponse::default()
                .with_producer_id(kafka_protocol::messages::ProducerId(i64::from(producer.0)))
                .with_producer_epoch(0),
            _ => InitProducerIdResponse::default()
                .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1),
        })
    }

    // ------------------------------------------------------------------ produce

    /// Each partition's batch becomes one `Msg::Produce` to this broker; `None` for `acks=0`.
    async fn produce(&mut self, request: ProduceRequest) -> Result<Option<ProduceResponse>, Close> {
        let acks = match request.acks {
            0 => Some(Acks::Zero),
            1 => Some(Acks::One),
            -1 => Some(Acks::All),
            _ => None,
        };
        let wait = Duration::from_millis(request.timeout_ms.max(1) as u64);
        let transactional = request.transactional_id.is_some();
        let mut responses = Vec::new();
        for topic in request.topic_data {
            let mut partitions = Vec::new();
            for p in topic.partition_data {
                let answer = |code: i16, base: i64| {
                    produce_response::PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(code)
                        .with_base_offset(base)
                        .with_log_append_time_ms(-1)
                };
                let response = if !self.is_topic(&topic.name) || p.index != 0 {
                    answer(code::UNKNOWN_TOPIC_OR_PARTITION, -1)
                } else if transactional {
                    answer(code::INVALID_REQUEST, -1)
                } else if let Some(acks) = acks {
                    let (code, base) = self.produce_batch(acks, p.records, wait).await?;
                    answer(code, base)
                } else {
                    answer(code::INVALID_REQUIRED_ACKS, -1)
                };
                partitions.push(response);
            }
            responses.push(
                produce_response::TopicProduceResponse::default()
                    .with_name(topic.name)
                    .with_partition_responses(partitions),
            );
        }
        Ok(
            (acks != Some(Acks::Zero))
                .then(|| ProduceResponse::default().with_responses(responses)),
        )
    }

    /// One batch to the broker actor: the error code and base offset of its answer.
    async fn produce_batch(
        &mut self,
        acks: Acks,
        records: Option<Bytes>,
        wait: Duration,
    ) -> Result<(i16, i64), Close> {
        let batch = match records.as_ref().map(batch::decode_produced) {
            Some(Ok(batch)) => batch,
            Some(Err(e)) => {
                tracing::debug!("produce refused: {e:?}");
                return Ok((e.code(), -1));
            }
            None => return Ok((batch::BatchError::Corrupt("no records".into()).code(), -1)),
        };
        let request_id = self.next_request();
        let broker = self.broker_id();
        let msg = Msg::Produce {
            request: request_id,
            producer: batch.producer,
            acks,
            records: batch.records.into(),
        };
        if acks == Acks::Zero {
            let runtime = self.shared.host.runtime();
            if !runtime
                .send_from(self.endpoint.id, broker, msg, Route::Direct)
                .await
            {
                return Err(format!("broker {} took no request (down?)", self.broker.0));
            }
            return Ok((code::NONE, -1));
        }
        let answer = self
            .ask(broker, msg, wait, |src, m| {
                src == broker
                    && matches!(m, Msg::ProduceResponse { request, .. } if *request == request_id)
            })
            .await?;
        Ok(match answer {
            Some(Msg::ProduceResponse { result, .. }) => match result {
                Ok(base) => (code::NONE, base.0 as i64),
                Err(e) => (error_code(e), -1),
            },
            _ => (code::REQUEST_TIMED_OUT, -1),
        })
    }

    // ------------------------------------------------------------------ fetch

    /// The broker's epoch and high watermark, read between two of its steps.
    async fn broker_view(&self) -> Result<(bool, Epoch, Offset), Close> {
        self.shared
            .host
            .runtime()
            .inspect(self.broker_id(), |s| {
                s.as_broker()
                    .map(|b| (b.is_leader(), b.leader_epoch, b.high_watermark))
            })
            .await
            .flatten()
            .ok_or_else(|| format!("broker {} is down", self.broker.0))
    }

    /// `Msg::ConsumerFetch` for partition 0: the broker serves records below its high
    /// watermark only, and fences the fetch by leader epoch (KIP-320).
    async fn fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, Close> {
        if request.session_id != 0 {
            // KIP-227: this broker never creates fetch sessions, so any id is unknown.
            return Ok(FetchResponse::default()
                .with_error_code(code::FETCH_SESSION_ID_NOT_FOUND)
                .with_session_id(0));
        }
        let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64);
        let mut responses = Vec::new();
        for topic in request.topics {
            let mut partitions = Vec::new();
            for p in topic.partitions {
                let data = if !self.is_topic(&topic.topic) || p.partition != 0 {
                    fetch_response::PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                        .with_high_watermark(-1)
                } else {
                    self.fetch_partition(p.fetch_offset, p.current_leader_epoch, wait)
                        .await?
                };
                partitions.push(data);
            }
            responses.push(
                fetch_response::FetchableTopicResponse::default()
                    .with_topic(topic.topic)
                    .with_partitions(partitions),
            );
        }
        Ok(FetchResponse::default()
            .with_session_id(0)
            .with_responses(responses))
    }

    async fn fetch_partition(
        &mut self,
        fetch_offset: i64,
        current_leader_epoch: i32,
        wait: Duration,
    ) -> Result<fetch_response::PartitionData, Close> {
        let partition = |code: i16, hw: i64| {
            fetch_response::PartitionData::default()
                .with_partition_index(0)
                .with_error_code(code)
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(0)
        };
        if fetch_offset < 0 {
            return Ok(partition(code::OFFSET_OUT_OF_RANGE, -1));
        }
        // KIP-320: a fetch that carries the client's leader epoch is fenced by the broker. One
        // that carries none (-1, before v9) is meant for whoever leads now: it goes in the
        // broker's current epoch, and a fencing answer means only that the leader moved.
        let (epoch, fenced_by_client) = if current_leader_epoch >= 0 {
            (Epoch(current_leader_epoch as u32), true)
        } else {
            (self.broker_view().await?.1, false)
        };
        let broker = self.broker_id();
        let offset = Offset(fetch_offset as u64);
        let answer = self
            .ask(
                broker,
                Msg::ConsumerFetch {
                    leader_epoch: epoch,
                    offset,
                },
                wait,
                |src, m| {
                    src == broker
                        && match m {
                            Msg::ConsumerFetchResponse {
                                result: Ok((from, _)),
                                ..
                            } => *from == offset,
                            Msg::ConsumerFetchResponse { result: Err(_), .. } => true,
                            _ => false,
                        }
                },
            )
            .await?;
        let (_, _, high_watermark) = self.broker_view().await?;
        let hw = high_watermark.0 as i64;
        Ok(match answer {
            Some(Msg::ConsumerFetchResponse { result, .. }) => match result {
                Ok((from, records)) => {
                    let bytes = batch::encode_fetched(from, &records)
                        .map_err(|e| format!("encoding fetched records: {e}"))?;
                    partition(code::NONE, hw).with_records(Some(bytes))
                }
                Err(ErrorCode::FencedLeaderEpoch | ErrorCode::UnknownLeaderEpoch)
                    if !fenced_by_client =>
                {
                    partition(code::NOT_LEADER_OR_FOLLOWER, -1)
                }
                Err(e) => partition(error_code(e), -1),
            },
            // Nothing committed past the offset within max_wait_ms: an empty answer.
            _ => partition(code::NONE, hw).with_records(Some(Bytes::new())),
        })
    }

    // ------------------------------------------------------------------ list offsets

    /// The model has no ListOffsets message, so this reads the broker's state: earliest is
    /// 0 (the log is never deleted), latest the high watermark (what a consumer may read);
    /// there are no timestamps to search (-1, "none found"). Only the leader answers, fenced
    /// by `current_leader_epoch` as KIP-320 says.
    async fn list_offsets(
        &mut self,
        request: ListOffsetsRequest,
    ) -> Result<ListOffsetsResponse, Close> {
        let (leads, epoch, hw) = self.broker_view().await?;
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let ours = self.is_topic(&t.name);
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let answer = list_offsets_response::ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1);
                        let asked = p.current_leader_epoch;
                        if !ours || p.partition_index != 0 {
                            answer.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                        } else if asked >= 0 && (asked as u32) < epoch.0 {
                            answer.with_error_code(code::FENCED_LEADER_EPOCH)
                        } else if asked >= 0 && (asked as u32) > epoch.0 {
                            answer.with_error_code(code::UNKNOWN_LEADER_EPOCH)
                        } else if !leads {
                            answer.with_error_code(code::NOT_LEADER_OR_FOLLOWER)
                        } else {
                            let offset = match p.timestamp {
                                -2 => 0,
                                -1 => hw.0 as i64,
                                _ => -1,
                            };
                            answer.with_offset(offset).with_leader_epoch(epoch.0 as i32)
                        }
                    })
                    .collect();
                list_offsets_response::ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        Ok(ListOffsetsResponse::default().with_topics(topics))
    }

    // ------------------------------------------------------------------ groups

    /// Whether this broker coordinates groups now (see [`Shared::coordinator_is_leader`]):
    /// in a cluster of processes, while it leads.
    async fn coordinates(&self) -> Result<bool, Close> {
        if !self.shared.coordinator_is_leader {
            return Ok(true);
        }
        Ok(self.broker_view().await?.0)
    }

    /// The coordinator of every group: in-process the broker asked (the store is the
    /// engine's, not a broker's); in a cluster of processes the partition's leader as the
    /// controller names it (Kafka's coordinator is the leader of the group's
    /// `__consumer_offsets` partition; here the one partition stands in for it), and
    /// `COORDINATOR_NOT_AVAILABLE` while there is none.
    async fn find_coordinator(
        &mut self,
        request: FindCoordinatorRequest,
    ) -> Result<FindCoordinatorResponse, Close> {
        let coordinator = if self.shared.coordinator_is_leader {
            self.partition().await?.leader
        } else {
            Some(self.broker)
        };
        let error = match coordinator {
            _ if request.key_type != 0 => code::COORDINATOR_NOT_AVAILABLE,
            Some(_) => code::NONE,
            None => code::COORDINATOR_NOT_AVAILABLE,
        };
        let (node, host, port) = match coordinator {
            Some(b) if error == code::NONE => {
                let addr = self.shared.addrs[b.index()];
                (
                    i32::from(b.0),
                    StrBytes::from_string(addr.ip().to_string()),
                    i32::from(addr.port()),
                )
            }
            _ => (-1, StrBytes::new(), -1),
        };
        let coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                find_coordinator_response::Coordinator::default()
                    .with_key(key)
                    .with_node_id(KafkaBrokerId(node))
                    .with_host(host.clone())
                    .with_port(port)
                    .with_error_code(error)
            })
            .collect();
        Ok(FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_node_id(KafkaBrokerId(node))
            .with_host(host)
            .with_port(port)
            .with_coordinators(coordinators))
    }

    // ------------------------------------------------------------------ group membership

    /// JoinGroup: the coordinator of one-member groups ([`group`]) answers at once (a new
    /// member gets its id in the same answer; KIP-394's second round trip is not asked for).
    fn join_group(&self, request: JoinGroupRequest, client_id: &str) -> JoinGroupResponse {
        let join = group::Join {
            group: request.group_id.0.as_str(),
            member_id: request.member_id.as_str(),
            client_id,
            protocol_type: request.protocol_type.as_str(),
            protocols: request
                .protocols
                .iter()
                .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
                .collect(),
            session: Duration::from_millis(request.session_timeout_ms.max(0) as u64),
        };
        match self.shared.groups.join(join, std::time::Instant::now()) {
            Ok(joined) => {
                let member = StrBytes::from_string(joined.member_id);
                JoinGroupResponse::default()
                    .with_generation_id(joined.generation)
                    .with_protocol_type(Some(StrBytes::from_string(joined.protocol_type)))
                    .with_protocol_name(Some(StrBytes::from_string(joined.protocol)))
                    .with_leader(member.clone())
                    .with_member_id(member.clone())
                    .with_members(vec![join_group_response::JoinGroupResponseMember::default(
                    )
                    .with_member_id(member)
                    .with_group_instance_id(request.group_instance_id)
                    .with_metadata(joined.metadata)])
            }
            Err(error) => JoinGroupResponse::default()
                .with_error_code(error)
                .with_generation_id(-1)
                .with_member_id(request.member_id),
        }
    }

    fn sync_group(&self, request: SyncGroupRequest) -> SyncGroupResponse {
        let assignments: Vec<(String, Bytes)> = request
            .assignments
            .iter()
            .map(|a| (a.member_id.as_str().to_string(), a.assignment.clone()))
            .collect();
        match self.shared.groups.sync(
            request.group_id.0.as_str(),
            request.generation_id,
            request.member_id.as_str(),
            &assignments,
            std::time::Instant::now(),
        ) {
            Ok((assignment, protocol_type, protocol)) => SyncGroupResponse::default()
                .with_protocol_type(Some(StrBytes::from_string(protocol_type)))
                .with_protocol_name(Some(StrBytes::from_string(protocol)))
                .with_assignment(assignment),
            Err(error) => SyncGroupResponse::default().with_error_code(error),
        }
    }

    fn heartbeat(&self, request: HeartbeatRequest) -> HeartbeatResponse {
        let answer = self.shared.groups.heartbeat(
            request.group_id.0.as_str(),
            request.generation_id,
            request.member_id.as_str(),
            std::time::Instant::now(),
        );
        HeartbeatResponse::default().with_error_code(answer.err().unwrap_or(code::NONE))
    }

    /// LeaveGroup: one member (before v3) or a list of them, each answered.
    fn leave_group(&self, request: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let group = request.group_id.0.as_str();
        let leave = |id: &str| {
            self.shared
                .groups
                .leave(group, id)
                .err()
                .unwrap_or(code::NONE)
        };
        if version < 3 {
            return LeaveGroupResponse::default()
                .with_error_code(leave(request.member_id.as_str()));
        }
        let members = request
            .members
            .into_iter()
            .map(|m| {
                leave_group_response::MemberResponse::default()
                    .with_error_code(leave(m.member_id.as_str()))
                    .with_member_id(m.member_id)
                    .with_group_instance_id(m.group_instance_id)
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    }

    fn offset_commit(
        &self,
        request: OffsetCommitRequest,
        coordinating: bool,
    ) -> OffsetCommitResponse {
        let group = request.group_id.0.as_str().to_string();
        // A member's commit in a generation it is not (or no longer) in is refused.
        let fenced = if coordinating {
            self.shared
                .groups
                .may_commit(
                    &group,
                    request.generation_id_or_member_epoch,
                    request.member_id.as_str(),
                    std::time::Instant::now(),
                )
                .err()
        } else {
            Some(code::NOT_COORDINATOR)
        };
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let ours = self.is_topic(&t.name);
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let error = if !ours || p.partition_index != 0 {
                            code::UNKNOWN_TOPIC_OR_PARTITION
                        } else if let Some(error) = fenced {
                            error
                        } else if self.shared.offsets.commit(&group, p.committed_offset) {
                            code::NONE
                        } else {
                            code::COORDINATOR_NOT_AVAILABLE
                        };
                        offset_commit_response::OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error)
                    })
                    .collect();
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    fn offset_fetch(&self, request: OffsetFetchRequest, coordinating: bool) -> OffsetFetchResponse {
        let committed = self
            .shared
            .offsets
            .committed(request.group_id.0.as_str())
            .unwrap_or(-1);
        let asked = request.topics.unwrap_or_else(|| {
            vec![
                kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(self.topic_name())
                    .with_partition_indexes(vec![0]),
            ]
        });
        let topics = asked
            .into_iter()
            .map(|t| {
                let ours = self.is_topic(&t.name);
                let partitions = t
                    .partition_indexes
                    .into_iter()
                    .map(|i| {
                        let p = offset_fetch_response::OffsetFetchResponsePartition::default()
                            .with_partition_index(i)
                            .with_committed_leader_epoch(-1)
                            .with_metadata(Some(StrBytes::new()));
                        if !coordinating {
                            p.with_committed_offset(-1)
                                .with_error_code(code::NOT_COORDINATOR)
                        } else if ours && i == 0 {
                            p.with_committed_offset(committed)
                        } else {
                            p.with_committed_offset(-1)
                                .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                        }
                    })
                    .collect();
                offset_fetch_response::OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        let error = if coordinating {
            code::NONE
        } else {
            code::NOT_COORDINATOR
        };
        OffsetFetchResponse::default()
            .with_error_code(error)
            .with_topics(topics)
    }
}

/// ApiVersions' answer: exactly the table the listener serves.
fn api_versions(error: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|&(key, min, max)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        )
}

/// Decodes a request part; a malformed one closes the connection (as Kafka does). The
/// decoder returns errors for what it cannot read; a panic in it is caught all the same.
fn decode<T: Decodable>(buf: &mut Bytes, version: i16) -> Result<T, Close> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::decode(buf, version))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("a malformed request: {e}")),
        Err(_) => Err("a request the decoder could not read".into()),
    }
}

fn encode<T: Encodable>(message: &T, version: i16) -> Result<BytesMut, Close> {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .map_err(|e| format!("encoding a response: {e}"))?;
    Ok(buf)
}

/// Reads one length-prefixed Kafka frame (the client side, for tests and tools).
pub async fn read_kafka_frame(stream: &mut TcpStream) -> std::io::Result<Bytes> {
    let len = stream.read_i32().await?;
    if len < 0 || len as usize > 64 * KAFKA_FRAME_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes"),
        ));
    }
    let mut frame = vec![0u8; len as usize];
    stream.read_exact(&mut frame).await?;
    Ok(Bytes::from(frame))
}
