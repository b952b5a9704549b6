//! TCP between processes: carries what a process's actors send to actors hosted elsewhere,
//! and delivers what arrives to the local ones. Brokers and the controller listen on the
//! addresses of the cluster layout; a client (the producer and consumer behind the client
//! API) only dials, and is answered over the connections it opened.
//!
//! Every connection starts with a `Hello` from each side naming the configuration and the
//! actors it hosts; a peer running another configuration, a bad or oversized frame, or a
//! message for an actor this process does not host is logged and the connection closed. A
//! lost connection is redialled; messages queued while it was down are sent after, and
//! those that did not fit are dropped, as a network would: the protocol's timeouts and
//! epochs are built for that.

use crate::runtime::{Route, Runtime};
use crate::wire::{read_frame, write_frame, Envelope, Frame};
use insync_model::msg::Msg;
use insync_model::node::{Node, Topology};
use stateright::actor::Id;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Messages waiting for one connection; beyond this they are dropped.
const LINK_QUEUE: usize = 16_384;
/// Longest wait between two attempts to dial a peer that is down.
const REDIAL_MAX: Duration = Duration::from_secs(1);

/// Where the brokers and the controller of a cluster listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterAddrs {
    /// Broker `i` listens on `brokers[i]`.
    pub brokers: Vec<SocketAddr>,
    pub controller: SocketAddr,
}

impl ClusterAddrs {
    /// Checks the layout against the partition's replica count.
    pub fn validate(&self, topology: &Topology) -> anyhow::Result<()> {
        if self.brokers.len() != topology.replicas {
            anyhow::bail!(
                "INVALID_CONFIG: --brokers lists {} addresses but --replicas is {}; give one \
                 address per replica",
                self.brokers.len(),
                topology.replicas
            );
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

/// Everything a connection needs to know about its process.
struct Local {
    runtime: Arc<Runtime<Node>>,
    /// The configuration, as the `Hello` carries it.
    config: String,
    /// Actor indices this process hosts.
    hosts: Vec<usize>,
    /// Routes to actors hosted by clients, learned from their `Hello`.
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
            config,
            hosts,
            clients: Mutex::new(HashMap::new()),
        });
        let mut by_address: HashMap<SocketAddr, mpsc::Sender<Envelope>> = HashMap::new();
        let mut links = HashMap::new();
        for index in 0..topology.actor_count() {
            if local.hosts.contains(&index) {
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
        let tx = self
            .links
            .get(&envelope.dst)
            .cloned()
            .or_else(|| lock(&self.local.clients).get(&envelope.dst).cloned());
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

/// Keeps one outgoing connection up: dial, hello, write queued messages; redial when it
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
        wait = Duration::from_millis(50);
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (ended_tx, mut ended) = tokio::sync::oneshot::channel::<()>();
        let reader = tokio::spawn({
            let local = Arc::clone(&local);
            async move {
                serve_connection(local, addr, read, None).await;
                let _ = ended_tx.send(());
            }
        });
        let mut writer = BufWriter::new(write);
        let outcome = async {
            write_frame(
                &mut writer,
                &Frame::Hello {
                    config: local.config.clone(),
                    hosts: local.hosts.clone(),
                },
            )
            .await?;
            writer.flush().await?;
            write_queue(&mut writer, &mut queue, &mut ended).await
        }
        .await;
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
) -> Result<Closed, crate::wire::WireError> {
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
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let local = Arc::clone(&local);
                tokio::spawn(async move {
                    let (read, write) = stream.into_split();
                    // Answer the dialler's hello with ours, then serve the messages it sends;
                    // replies to the actors it hosts use this connection (see `read_loop`).
                    let mut writer = BufWriter::new(write);
                    let hello = Frame::Hello {
                        config: local.config.clone(),
                        hosts: local.hosts.clone(),
                    };
                    let greeted: Result<(), crate::wire::WireError> = async {
                        write_frame(&mut writer, &hello).await?;
                        Ok(writer.flush().await?)
                    }
                    .await;
                    if let Err(e) = greeted {
                        tracing::warn!(%peer, "could not greet: {e}");
                        return;
                    }
                    let (tx, mut rx) = mpsc::channel::<Envelope>(LINK_QUEUE);
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
                    serve_connection(local, peer, read, Some(tx)).await;
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

/// Reads one connection: the peer's hello, then its messages, delivered to the local
/// actors (waiting while a mailbox is full, which slows the peer down). With `replies`,
/// actors the peer hosts that have no listening address (clients) are answered through it.
async fn serve_connection(
    local: Arc<Local>,
    peer: SocketAddr,
    mut read: OwnedReadHalf,
    replies: Option<mpsc::Sender<Envelope>>,
) {
    let peer_hosts = match read_frame(&mut read).await {
        Ok(Some(Frame::Hello { config, hosts })) => {
            if config != local.config {
                tracing::error!(
                    %peer,
                    "peer runs another configuration ({config}); this process runs {}; \
                     start every process of the cluster with the same configuration flags",
                    local.config
                );
                return;
            }
            hosts
        }
        Ok(Some(Frame::Message(_))) => {
            tracing::error!(%peer, "peer sent a message before its hello; closing");
            return;
        }
        Ok(None) => return,
        Err(e) => return report_read_error(peer, e),
    };
    if let Some(replies) = &replies {
        let mut clients = lock(&local.clients);
        for &index in &peer_hosts {
            if !local.hosts.contains(&index) {
                clients.insert(index, replies.clone());
            }
        }
    }
    loop {
        let envelope = match read_frame(&mut read).await {
            Ok(Some(Frame::Message(envelope))) => envelope,
            Ok(Some(Frame::Hello { .. })) => {
                tracing::error!(%peer, "peer repeated its hello; closing");
                return;
            }
            Ok(None) => return,
            Err(e) => return report_read_error(peer, e),
        };
        if !local.hosts.contains(&envelope.dst) || !peer_hosts.contains(&envelope.src) {
            tracing::error!(
                %peer,
                src = envelope.src,
                dst = envelope.dst,
                "message between actors the hellos did not name; closing"
            );
            return;
        }
        local
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
fn report_read_error(peer: SocketAddr, e: crate::wire::WireError) {
    match e {
        crate::wire::WireError::Io(e) => tracing::warn!(%peer, "connection lost: {e}"),
        e => tracing::error!(%peer, "bad frame: {e}; closing the connection"),
    }
}
