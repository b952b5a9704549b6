//! TCP between processes: carries what a process's actors send to actors hosted elsewhere,
//! and delivers what arrives to the local ones. Brokers and the controller listen on the
//! addresses of the cluster layout; a client (the producer and consumer behind the client
//! API) only dials, and is answered over the connections it opened.
//!
//! Every connection starts with a handshake ([`handshake`]): a `Hello` from each side naming
//! the configuration, the actors it hosts, its cluster id and (with `--secret-file`) a fresh
//! nonce, then, with a secret, a `Proof` from each side: an HMAC-SHA256 under the cluster's
//! secret over both nonces and what it claimed ([`crate::auth`]). Nothing a peer sends is
//! delivered, and no reply route is learned from it, before its proof checks out. Without a
//! secret (allowed only when every address of the layout is loopback) the hellos are all.
//! A peer that fails the handshake, runs another configuration, sends a bad or oversized
//! frame, or a message for an actor this process does not host is logged and the connection
//! closed. A lost connection is redialled; messages queued while it was down are sent after, and
//! those that did not fit are dropped, as a network would: the protocol's timeouts and
//! epochs are built for that.
//!
//! Bounds: a listener serves at most [`CONNECTIONS_MAX`] connections at once; a peer has
//! [`HANDSHAKE_TIMEOUT`] for its handshake, whose frames may hold at most
//! [`HANDSHAKE_FRAME_BYTES_MAX`] (a hello is about a kilobyte), and, once accepted, [`IDLE_TIMEOUT`] between whole
//! frames; a frame's buffer grows as its bytes arrive, up to [`crate::wire::FRAME_BYTES_MAX`];
//! a peer may claim only the cluster's actor indices, and the reply routes its connection
//! added leave with it. What a refused peer sent is logged truncated.
//!
//! Besides its actors, a server process may host endpoints (its Kafka listener's
//! connections) that ask the controller for producer ids and metadata: their ids lie in the
//! block of the actor the process hosts ([`endpoint_ids`]), a peer may send as an endpoint
//! of an actor it proved to host, and answers to an endpoint go to that actor's process.

use crate::auth::{Claim, PeerRole, Secret};
use crate::error::UsageError;
use crate::runtime::{Route, Runtime};
use crate::wire::{
    read_frame, read_frame_within, write_frame, Envelope, Frame, WireError,
    HANDSHAKE_FRAME_BYTES_MAX,
};
use insync_model::msg::Msg;
use insync_model::node::{Node, Topology};
use stateright::actor::Id;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Messages waiting for one connection; beyond this they are dropped.
const LINK_QUEUE: usize = 16_384;
/// Longest wait between two attempts to dial a peer that is down.
const REDIAL_MAX: Duration = Duration::from_secs(1);
/// Longest a peer may take over its handshake (hello, and with a secret the proofs) before it
/// is cut off.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an accepted connection may go without a whole frame arriving before it is closed
/// (Kafka's `connections.max.idle.ms`, shorter). Its dialler redials when it has something to
/// send. A frame trickled in slower than this is cut off too.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most connections one listener serves at once; beyond it a new connection is closed at
/// once (Kafka's `max.connections`). A cluster needs a handful per process.
pub const CONNECTIONS_MAX: usize = 128;
/// Most characters of a peer's claims (configuration, cluster id) that a log line shows.
const LOGGED_CHARS: usize = 120;

/// Where the brokers and the controller of a cluster listen, and how its processes know
/// each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAddrs {
    /// Broker `i` listens on `brokers[i]`.
    pub brokers: Vec<SocketAddr>,
    pub controller: SocketAddr,
    /// The cluster's shared secret (`--secret-file`); every connection proves it.
    pub secret: Option<Secret>,
    /// The cluster id this process was started with (`--cluster-id`), which its handshake
    /// proofs cover; a peer naming another is refused.
    pub cluster_id: Option<String>,
}

impl ClusterAddrs {
    /// Checks the layout against the partition's replica count.
    pub fn validate(&self, topology: &Topology) -> anyhow::Result<()> {
        if self.brokers.len() != topology.replicas {
            anyhow::bail!(UsageError::InvalidConfig(format!(
                "--brokers lists {} addresses but --replicas is {}; give one \
                 address per replica",
                self.brokers.len(),
                topology.replicas
            )));
        }
        if self.secret.is_none() {
            if let Some(open) = self
                .brokers
                .iter()
                .chain(std::iter::once(&self.controller))
                .find(|a| !a.ip().is_loopback())
            {
                anyhow::bail!(UsageError::InvalidConfig(format!(
                    "{open} is not a loopback address, and without a shared \
                     secret anyone who reaches it could pose as a member of the cluster; pass \
                     --secret-file FILE (the same file on every process, e.g. made by \
                     `openssl rand -hex 32 > FILE; chmod 600 FILE`)"
                )));
            }
        }
        Ok(())
    }

    /// The address of the process hosting actor `index`; `None` for clients.
    pub fn address_of(&self, topology: &Topology, index: usize) -> Option<SocketAddr> {
        if index < topology.replicas {
            self.brokers.get(index).copied()
        } else if Id::from(index) == topology.controller() {
            Some(self.controller)
        } else {
            None
        }
    }
}

/// Ids for outside parties of one process (a Kafka listener's client connections, see
/// [`crate::engine::Endpoint`]) come in blocks of this many, one block per hosted actor, so
/// that any process can tell which process an endpoint id belongs to and route an answer
/// there. An in-process cluster numbers its endpoints below the first block.
pub const ENDPOINT_BLOCK: usize = 1 << 24;

/// The endpoint ids of the process that hosts actor `host`: the block after
/// `host` blocks (block 0 holds the actors and an in-process cluster's endpoints).
pub fn endpoint_ids(host: usize) -> std::ops::Range<usize> {
    (host + 1) * ENDPOINT_BLOCK..(host + 2) * ENDPOINT_BLOCK
}

/// The actor whose process an endpoint id belongs to; `None` for actors' own ids (and an
/// in-process cluster's endpoints).
pub fn endpoint_host(id: usize) -> Option<usize> {
    (id >= ENDPOINT_BLOCK).then(|| id / ENDPOINT_BLOCK - 1)
}

/// What this process says and proves in a handshake.
#[derive(Clone, Debug)]
pub struct Greeting {
    /// The configuration, as the `Hello` carries it.
    pub config: String,
    /// Actor indices this process hosts.
    pub hosts: Vec<usize>,
    pub cluster_id: Option<String>,
    pub secret: Option<Secret>,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("the peer closed the connection during the handshake")]
    Closed,
    #[error("the peer took longer than {HANDSHAKE_TIMEOUT:?} over its handshake")]
    Timeout,
    #[error("{0}")]
    Refused(String),
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        HandshakeError::Wire(WireError::Io(e))
    }
}

/// At most [`LOGGED_CHARS`] of what a peer sent, for a log line.
fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(LOGGED_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

fn shown_hosts(hosts: &[usize]) -> String {
    let mut out = format!("{:?}", &hosts[..hosts.len().min(8)]);
    if hosts.len() > 8 {
        out.push_str(&format!(" (and {} more)", hosts.len() - 8));
    }
    out
}

/// One side of a connection's handshake: send our hello, read the peer's, and with a secret
/// exchange proofs. Returns the actor indices the peer hosts, once it has proved it belongs
/// to the cluster (or, without a secret, once its hello matches).
pub async fn handshake<R, W>(
    me: &Greeting,
    role: PeerRole,
    read: &mut R,
    write: &mut W,
) -> Result<Vec<usize>, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange(me, role, read, write)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(HandshakeError::Timeout),
    }
}

async fn exchange<R, W>(
    me: &Greeting,
    role: PeerRole,
    read: &mut R,
    write: &mut W,
) -> Result<Vec<usize>, HandshakeError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let refuse = |why: String| Err(HandshakeError::Refused(why));
    let mine = me.secret.as_ref().map(|_| crate::auth::nonce());
    write_frame(
        write,
        &Frame::Hello {
            config: me.config.clone(),
            hosts: me.hosts.clone(),
            cluster_id: me.cluster_id.clone(),
            nonce: mine,
        },
    )
    .await?;
    write.flush().await?;
    let (config, hosts, cluster_id, theirs) =
        match read_frame_within(read, HANDSHAKE_FRAME_BYTES_MAX).await? {
            Some(Frame::Hello {
                config,
                hosts,
                cluster_id,
                nonce,
            }) => (config, hosts, cluster_id, nonce),
            Some(_) => return refuse("the peer sent something before its hello".into()),
            None => return Err(HandshakeError::Closed),
        };
    if config != me.config {
        return refuse(format!(
            "the peer runs another configuration ({}); this process runs {}; start every \
             process of the cluster with the same configuration flags",
            shown(&config),
            me.config
        ));
    }
    if let (Some(ours), Some(other)) = (&me.cluster_id, &cluster_id) {
        if ours != other {
            return refuse(format!(
                "the peer belongs to cluster {:?}, this process to {ours:?}",
                shown(other)
            ));
        }
    }
    let (secret, mine, theirs) = match (&me.secret, mine, theirs) {
        (None, _, None) => return Ok(hosts),
        (None, _, Some(_)) => {
            return refuse(
                "the peer authenticates with a shared secret and this process has none; pass \
                 --secret-file with the cluster's secret"
                    .into(),
            )
        }
        (Some(_), _, None) => {
            return refuse(format!(
                "the peer (claiming actors {}) did not authenticate; every process of this \
                 cluster needs --secret-file with the cluster's secret",
                shown_hosts(&hosts)
            ))
        }
        (Some(secret), Some(mine), Some(theirs)) => (secret, mine, theirs),
        (Some(_), None, Some(_)) => unreachable!("a process with a secret sends a nonce"),
    };
    if theirs == mine {
        return refuse("the peer sent back this process's own nonce (a reflection)".into());
    }
    let (dialer_nonce, acceptor_nonce) = match role {
        PeerRole::Dialer => (mine, theirs),
        PeerRole::Acceptor => (theirs, mine),
    };
    let ours = Claim {
        role,
        cluster_id: me.cluster_id.as_deref(),
        config: &me.config,
        hosts: &me.hosts,
    };
    let mac = crate::auth::prove(secret, &ours, &dialer_nonce, &acceptor_nonce);
    write_frame(write, &Frame::Proof { mac }).await?;
    write.flush().await?;
    let proof = match read_frame_within(read, HANDSHAKE_FRAME_BYTES_MAX).await? {
        Some(Frame::Proof { mac }) => mac,
        Some(_) => return refuse("the peer sent something other than its proof".into()),
        None => return Err(HandshakeError::Closed),
    };
    let peers = Claim {
        role: role.other(),
        cluster_id: cluster_id.as_deref(),
        config: &config,
        hosts: &hosts,
    };
    if !crate::auth::verify(secret, &peers, &dialer_nonce, &acceptor_nonce, &proof) {
        let head: String = proof.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return refuse(format!(
            "the peer (claiming actors {}) failed to prove the cluster's secret (proof of {} \
             bytes starting {head}…); is its --secret-file the cluster's?",
            shown_hosts(&hosts),
            proof.len()
        ));
    }
    Ok(hosts)
}

/// Everything a connection needs to know about its process.
struct Local {
    runtime: Arc<Runtime<Node>>,
    greeting: Greeting,
    /// Actors in the cluster: a peer claiming an index at or beyond it is refused, so the
    /// route map below holds at most one entry per actor.
    actor_count: usize,
    /// Routes to actors hosted by clients, learned from their `Hello`; an entry leaves when its
    /// connection closes.
    clients: Mutex<HashMap<usize, mpsc::Sender<Envelope>>>,
}

/// The transport of one process.
pub struct Transport {
    local: Arc<Local>,
    /// Dialled links, by the actor index they reach.
    links: HashMap<usize, mpsc::Sender<Envelope>>,
}

impl Transport {
    /// Starts dialling every peer that hosts an actor this process does not, and, with a
    /// listener, accepting connections.
    pub fn start(
        runtime: Arc<Runtime<Node>>,
        config: String,
        hosts: Vec<usize>,
        topology: Topology,
        addrs: &ClusterAddrs,
        listener: Option<TcpListener>,
    ) -> Transport {
        let local = Arc::new(Local {
            runtime,
            greeting: Greeting {
                config,
                hosts,
                cluster_id: addrs.cluster_id.clone(),
                secret: addrs.secret.clone(),
            },
            actor_count: topology.actor_count(),
            clients: Mutex::new(HashMap::new()),
        });
        let mut by_address: HashMap<SocketAddr, mpsc::Sender<Envelope>> = HashMap::new();
        let mut links = HashMap::new();
        for index in 0..topology.actor_count() {
            if local.greeting.hosts.contains(&index) {
                continue;
            }
            let Some(addr) = addrs.address_of(&topology, index) else {
                continue;
            };
            let tx = by_address
                .entry(addr)
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(LINK_QUEUE);
                    tokio::spawn(dial(Arc::clone(&local), addr, rx));
                    tx
                })
                .clone();
            links.insert(index, tx);
        }
        if let Some(listener) = listener {
            tokio::spawn(accept(Arc::clone(&local), listener));
        }
        Transport { local, links }
    }

    /// Hands a message for a remote actor to its connection, never waiting: when the
    /// connection is down and its queue full, the message is lost.
    pub fn forward(&self, src: Id, dst: Id, msg: Msg) {
        let envelope = Envelope {
            src: usize::from(src),
            dst: usize::from(dst),
            msg,
        };
        // An endpoint is reached through the process hosting its actor.
        let tx = self
            .links
            .get(&envelope.dst)
            .cloned()
            .or_else(|| lock(&self.local.clients).get(&envelope.dst).cloned())
            .or_else(|| {
                endpoint_host(envelope.dst).and_then(|host| self.links.get(&host).cloned())
            });
        match tx {
            Some(tx) => {
                if tx.try_send(envelope).is_err() {
                    tracing::debug!(
                        dst = usize::from(dst),
                        "connection queue full; message dropped"
                    );
                }
            }
            None => tracing::debug!(
                dst = usize::from(dst),
                "no connection reaches this actor yet; message dropped"
            ),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps are replaced entry by entry; a poisoned one is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps one outgoing connection up: dial, handshake, write queued messages; redial when it
/// breaks.
async fn dial(local: Arc<Local>, addr: SocketAddr, mut queue: mpsc::Receiver<Envelope>) {
    let mut wait = Duration::from_millis(50);
    loop {
        let stream = match TcpStream::connect(addr).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%addr, "dial failed: {e}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(REDIAL_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (mut read, write) = stream.into_split();
        let mut writer = BufWriter::new(write);
        let peer_hosts =
            match handshake(&local.greeting, PeerRole::Dialer, &mut read, &mut writer).await {
                Ok(hosts) => hosts,
                Err(e) => {
                    match &e {
                        HandshakeError::Refused(_) => {
                            tracing::error!(%addr, "handshake refused: {e}; retrying in {wait:?}")
                        }
                        _ => tracing::warn!(%addr, "handshake failed: {e}; retrying in {wait:?}"),
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(REDIAL_MAX);
                    continue;
                }
            };
        wait = Duration::from_millis(50);
        let (ended_tx, mut ended) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn({
            let local = Arc::clone(&local);
            async move {
                // The acceptor writes nothing on a dialled connection but to clients, which
                // wait for answers as long as they like: no idle timeout on this side.
                serve_connection(local, addr, read, peer_hosts, None).await;
                let _ = ended_tx.send(());
            }
        });
        let outcome = write_queue(&mut writer, &mut queue, &mut ended).await;
        reader.abort();
        match outcome {
            Ok(Closed::Queue) => return,
            Ok(Closed::Peer) => tracing::warn!(%addr, "peer closed the connection; redialling"),
            Err(e) => tracing::warn!(%addr, "connection lost: {e}; redialling"),
        }
    }
}

enum Closed {
    /// Nothing will be queued any more: the process is ending.
    Queue,
    /// The peer ended the connection (or broke its protocol).
    Peer,
}

/// Writes queued messages, flushing whenever the queue runs dry, until the queue closes or
/// the connection's reader ends.
async fn write_queue(
    writer: &mut BufWriter<OwnedWriteHalf>,
    queue: &mut mpsc::Receiver<Envelope>,
    reader_ended: &mut tokio::sync::oneshot::Receiver<()>,
) -> Result<Closed, WireError> {
    loop {
        let next = tokio::select! {
            next = queue.recv() => next,
            _ = &mut *reader_ended => return Ok(Closed::Peer),
        };
        let Some(envelope) = next else {
            return Ok(Closed::Queue);
        };
        write_frame(writer, &Frame::Message(envelope)).await?;
        while let Ok(envelope) = queue.try_recv() {
            write_frame(writer, &Frame::Message(envelope)).await?;
        }
        writer.flush().await?;
    }
}

async fn accept(local: Arc<Local>, listener: TcpListener) {
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    // Refusals are logged at most once a second, with how many there were.
    let mut refused = 0u64;
    let mut refusals_logged: Option<tokio::time::Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    drop(stream);
                    refused += 1;
                    let due = match refusals_logged {
                        None => true,
                        Some(at) => at.elapsed() >= Duration::from_secs(1),
                    };
                    if due {
                        tracing::warn!(
                            %peer,
                            "{CONNECTIONS_MAX} connections open on this listener; closed {refused} \
                             new one(s)"
                        );
                        refused = 0;
                        refusals_logged = Some(tokio::time::Instant::now());
                    }
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let local = Arc::clone(&local);
                tokio::spawn(async move {
                    // Held until the connection is done with.
                    let _slot = slot;
                    let (mut read, write) = stream.into_split();
                    // The handshake first: until the dialler has proved it belongs to the
                    // cluster, nothing it sends is read and it claims no route.
                    let mut writer = BufWriter::new(write);
                    let peer_hosts = match handshake(
                        &local.greeting,
                        PeerRole::Acceptor,
                        &mut read,
                        &mut writer,
                    )
                    .await
                    {
                        Ok(hosts) => hosts,
                        Err(HandshakeError::Closed) => return,
                        Err(HandshakeError::Wire(WireError::Io(e))) => {
                            tracing::warn!(%peer, "connection lost during the handshake: {e}");
                            return;
                        }
                        Err(e) => {
                            tracing::error!(%peer, "handshake refused: {e}; closing");
                            return;
                        }
                    };
                    if let Some(&index) = peer_hosts.iter().find(|&&i| i >= local.actor_count) {
                        tracing::error!(
                            %peer,
                            "the peer claims actor {index}, but the cluster has {} actors; \
                             closing",
                            local.actor_count
                        );
                        return;
                    }
                    // Replies to the actors it hosts that have no address of their own
                    // (clients) use this connection.
                    let (tx, mut rx) = mpsc::channel::<Envelope>(LINK_QUEUE);
                    {
                        let mut clients = lock(&local.clients);
                        for &index in &peer_hosts {
                            if !local.greeting.hosts.contains(&index) {
                                clients.insert(index, tx.clone());
                            }
                        }
                    }
                    let hosts = peer_hosts.clone();
                    let writing = tokio::spawn(async move {
                        while let Some(envelope) = rx.recv().await {
                            let mut result =
                                write_frame(&mut writer, &Frame::Message(envelope)).await;
                            while let (Ok(()), Ok(envelope)) = (&result, rx.try_recv()) {
                                result = write_frame(&mut writer, &Frame::Message(envelope)).await;
                            }
                            if result.is_err() || writer.flush().await.is_err() {
                                return;
                            }
                        }
                    });
                    serve_connection(
                        Arc::clone(&local),
                        peer,
                        read,
                        peer_hosts,
                        Some(IDLE_TIMEOUT),
                    )
                    .await;
                    // The routes through this connection go with it (a newer connection of
                    // the same client may have replaced them: those stay).
                    lock(&local.clients)
                        .retain(|index, route| !(hosts.contains(index) && route.same_channel(&tx)));
                    // Held until now: the writer ends (closing our side) when every sender has.
                    drop(tx);
                    writing.abort();
                });
            }
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads one connection after its handshake: the peer's messages, delivered to the local
/// actors (waiting while a mailbox is full, which slows the peer down). With `idle`, a
/// connection on which no whole frame arrives for that long is closed.
async fn serve_connection(
    local: Arc<Local>,
    peer: SocketAddr,
    mut read: OwnedReadHalf,
    peer_hosts: Vec<usize>,
    idle: Option<Duration>,
) {
    loop {
        let next = match idle {
            Some(idle) => match tokio::time::timeout(idle, read_frame(&mut read)).await {
                Ok(next) => next,
                Err(_) => {
                    tracing::info!(%peer, "no frame for {idle:?}; closing the idle connection");
                    return;
                }
            },
            None => read_frame(&mut read).await,
        };
        let envelope = match next {
            Ok(Some(Frame::Message(envelope))) => envelope,
            Ok(Some(_)) => {
                tracing::error!(%peer, "peer repeated its handshake; closing");
                return;
            }
            Ok(None) => return,
            Err(e) => return report_read_error(peer, e),
        };
        // An actor or an endpoint of its process, on either side.
        let of = |hosts: &[usize], id: usize| {
            hosts.contains(&id) || endpoint_host(id).is_some_and(|host| hosts.contains(&host))
        };
        if !of(&local.greeting.hosts, envelope.dst) || !of(&peer_hosts, envelope.src) {
            tracing::error!(
                %peer,
                src = envelope.src,
                dst = envelope.dst,
                "message between actors the hellos did not name; closing"
            );
            return;
        }
        // Dropped (a crashed or unknown destination, a fault): lost, as on any network.
        let _ = local
            .runtime
            .send_from(
                Id::from(envelope.src),
                Id::from(envelope.dst),
                envelope.msg,
                Route::Network,
            )
            .await;
    }
}

/// A broken connection is a warning (peers come and go); a bad frame is the peer's error.
fn report_read_error(peer: SocketAddr, e: WireError) {
    match e {
        WireError::Io(e) => tracing::warn!(%peer, "connection lost: {e}"),
        e => tracing::error!(%peer, "bad frame: {e}; closing the connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    fn greeting(hosts: Vec<usize>, secret: Option<&str>) -> Greeting {
        Greeting {
            config: "rf=3 test".into(),
            hosts,
            cluster_id: Some("cluster-a".into()),
            secret: secret.map(|s| Secret::new(s.as_bytes().to_vec()).expect("secret")),
        }
    }

    const SECRET: &str = "correct horse battery staple";

    #[test]
    fn an_endpoint_id_names_the_process_of_its_actor() {
        for host in [0, 3, 70] {
            let ids = endpoint_ids(host);
            assert_eq!(endpoint_host(ids.start), Some(host));
            assert_eq!(endpoint_host(ids.end - 1), Some(host));
            assert_eq!(endpoint_host(ids.end), Some(host + 1));
        }
        // Actors, and an in-process cluster's endpoints, belong to no other process.
        assert_eq!(endpoint_host(0), None);
        assert_eq!(endpoint_host(ENDPOINT_BLOCK - 1), None);
    }

    /// A writer that keeps a copy of everything written through it.
    struct Tee<W> {
        inner: W,
        copy: Arc<Mutex<Vec<u8>>>,
    }

    impl<W: AsyncWrite + Unpin> AsyncWrite for Tee<W> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = &polled {
                lock(&self.copy).extend_from_slice(&buf[..*n]);
            }
            polled
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Runs a dialler and an acceptor against each other; also returns the dialler's bytes.
    async fn connect(
        dialer: &Greeting,
        acceptor: &Greeting,
    ) -> (
        Result<Vec<usize>, HandshakeError>,
        Result<Vec<usize>, HandshakeError>,
        Vec<u8>,
    ) {
        let (d, a) = tokio::io::duplex(1 << 16);
        let (mut d_read, d_write) = tokio::io::split(d);
        let (mut a_read, mut a_write) = tokio::io::split(a);
        let copy = Arc::new(Mutex::new(Vec::new()));
        let mut d_write = Tee {
            inner: d_write,
            copy: Arc::clone(&copy),
        };
        let (dialed, accepted) = tokio::join!(
            handshake(dialer, PeerRole::Dialer, &mut d_read, &mut d_write),
            handshake(acceptor, PeerRole::Acceptor, &mut a_read, &mut a_write),
        );
        let bytes = lock(&copy).clone();
        (dialed, accepted, bytes)
    }

    #[tokio::test]
    async fn members_with_the_secret_learn_each_others_hosts() {
        let (dialed, accepted, _) = connect(
            &greeting(vec![4, 5], Some(SECRET)),
            &greeting(vec![0], Some(SECRET)),
        )
        .await;
        assert_eq!(dialed.expect("dialer"), vec![0]);
        assert_eq!(accepted.expect("acceptor"), vec![4, 5]);
        // Without a secret on either side (loopback only), the hellos are all.
        let (dialed, accepted, _) =
            connect(&greeting(vec![4], None), &greeting(vec![0], None)).await;
        assert_eq!(dialed.expect("dialer"), vec![0]);
        assert_eq!(accepted.expect("acceptor"), vec![4]);
    }

    #[tokio::test]
    async fn a_wrong_secret_or_none_is_refused_on_both_sides() {
        let (dialed, accepted, _) = connect(
            &greeting(vec![3], Some("not the cluster's secret")),
            &greeting(vec![0], Some(SECRET)),
        )
        .await;
        let accepted = accepted.expect_err("acceptor refuses");
        assert!(
            accepted.to_string().contains("failed to prove"),
            "{accepted}"
        );
        assert!(dialed.is_err(), "the dialer refuses the acceptor too");

        let (dialed, accepted, _) =
            connect(&greeting(vec![3], None), &greeting(vec![0], Some(SECRET))).await;
        let accepted = accepted.expect_err("no secret");
        assert!(
            accepted.to_string().contains("did not authenticate"),
            "{accepted}"
        );
        let dialed = dialed.expect_err("no secret");
        assert!(
            dialed.to_string().contains("pass --secret-file"),
            "{dialed}"
        );

        let mut other = greeting(vec![3], Some(SECRET));
        other.cluster_id = Some("cluster-b".into());
        let (_, accepted, _) = connect(&other, &greeting(vec![0], Some(SECRET))).await;
        assert!(accepted
            .expect_err("cluster")
            .to_string()
            .contains("cluster-b"));
    }

    #[tokio::test]
    async fn a_replayed_handshake_transcript_is_refused() {
        // A real member's handshake, recorded on the wire.
        let member = greeting(vec![3], Some(SECRET));
        let broker = greeting(vec![0], Some(SECRET));
        let (dialed, accepted, recorded) = connect(&member, &broker).await;
        assert_eq!(dialed.expect("dialer"), vec![0]);
        assert_eq!(accepted.expect("acceptor"), vec![3]);
        // Replayed byte for byte to the same broker: its fresh nonce makes the old proof wrong.
        let (attacker, a) = tokio::io::duplex(1 << 16);
        let (mut a_read, mut a_write) = tokio::io::split(a);
        let (_attacker_read, mut attacker_write) = tokio::io::split(attacker);
        attacker_write.write_all(&recorded).await.expect("replay");
        let replayed = handshake(&broker, PeerRole::Acceptor, &mut a_read, &mut a_write)
            .await
            .expect_err("a replay is refused");
        assert!(
            matches!(&replayed, HandshakeError::Refused(why) if why.contains("failed to prove")),
            "{replayed}"
        );
    }

    #[tokio::test]
    async fn a_proof_reflected_back_to_its_maker_is_refused() {
        let broker = greeting(vec![0], Some(SECRET));
        let (attacker, a) = tokio::io::duplex(1 << 16);
        let (mut a_read, mut a_write) = tokio::io::split(a);
        let (mut attacker_read, mut attacker_write) = tokio::io::split(attacker);
        let mirror = async {
            // Send back the broker's hello, then its proof, as if they were ours.
            for _ in 0..2 {
                let Ok(Some(frame)) = read_frame(&mut attacker_read).await else {
                    return;
                };
                let mut frame = frame;
                if let Frame::Hello { nonce, .. } = &mut frame {
                    // With the broker's own nonce it refuses at once; with a new one, the
                    // reflected proof names the wrong nonce and direction.
                    *nonce = Some([7; crate::auth::NONCE_BYTES]);
                }
                if write_frame(&mut attacker_write, &frame).await.is_err() {
                    return;
                }
            }
        };
        let (refused, ()) = tokio::join!(
            handshake(&broker, PeerRole::Acceptor, &mut a_read, &mut a_write),
            mirror
        );
        let refused = refused.expect_err("a reflection is refused");
        assert!(refused.to_string().contains("failed to prove"), "{refused}");
    }
}
