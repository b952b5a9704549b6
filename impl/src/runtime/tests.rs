//! Runtime behaviour, exercised with a small ping/pong actor that can also be
//! told (via `Msg::Do`) to emit any command.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stateright::actor::{Actor, Id, Out};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

use super::*;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Msg {
    Ping(u64),
    Pong(u64),
    Do(Vec<Op>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Op {
    Send(Id, Box<Msg>),
    SendPings(Id, usize),
    Save(u64),
    SetTimer(Timer, u64, u64),
    CancelTimer(Timer),
    Choose(String, Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Timer {
    Resend,
    A,
    B,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct State {
    /// Durable: restored from storage on (re)start.
    counter: u64,
    /// Volatile: Pongs received by this incarnation.
    pongs: u64,
    pings: u64,
    fired: Vec<Timer>,
    randoms: Vec<u8>,
}

/// Pings `peer` at start and every `PERIOD`, counting answers in storage;
/// answers every Ping with a Pong.
struct Toy {
    peer: Option<Id>,
}

const PERIOD: Duration = Duration::from_millis(100);

impl Actor for Toy {
    type Msg = Msg;
    type State = State;
    type Timer = Timer;
    type Storage = u64;
    type Random = u8;

    fn on_start(&self, _id: Id, storage: &Option<u64>, o: &mut Out<Self>) -> State {
        let counter = storage.unwrap_or(0);
        if let Some(peer) = self.peer {
            o.send(peer, Msg::Ping(counter));
            o.set_timer(Timer::Resend, PERIOD..PERIOD);
        }
        State {
            counter,
            ..State::default()
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<State>, src: Id, msg: Msg, o: &mut Out<Self>) {
        let state = state.to_mut();
        match msg {
            Msg::Ping(n) => {
                state.pings += 1;
                o.send(src, Msg::Pong(n));
            }
            Msg::Pong(_) => {
                state.pongs += 1;
                state.counter += 1;
                o.save(state.counter);
            }
            Msg::Do(ops) => {
                for op in ops {
                    match op {
                        Op::Send(dst, msg) => o.send(dst, *msg),
                        Op::SendPings(dst, n) => {
                            for i in 0..n {
                                o.send(dst, Msg::Ping(i as u64));
                            }
                        }
                        Op::Save(v) => {
                            state.counter = v;
                            o.save(v);
                        }
                        Op::SetTimer(t, lo, hi) => {
                            o.set_timer(t, Duration::from_millis(lo)..Duration::from_millis(hi))
                        }
                        Op::CancelTimer(t) => o.cancel_timer(t),
                        Op::Choose(key, choices) => o.choose_random(key, choices),
                    }
                }
            }
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<State>, timer: &Timer, o: &mut Out<Self>) {
        let state = state.to_mut();
        state.fired.push(timer.clone());
        if let (Timer::Resend, Some(peer)) = (timer, self.peer) {
            o.send(peer, Msg::Ping(state.counter));
            o.set_timer(Timer::Resend, PERIOD..PERIOD);
        }
    }

    fn on_random(&self, _id: Id, state: &mut Cow<State>, random: &u8, _o: &mut Out<Self>) {
        state.to_mut().randoms.push(*random);
    }
}

fn id(i: usize) -> Id {
    Id::from(i)
}

/// An id with no actor: a client whose replies arrive in the outbox.
fn client() -> Id {
    id(9)
}

fn memory() -> Arc<MemoryStorage<u64>> {
    Arc::new(MemoryStorage::new())
}

/// Actor 0 pings actor 1, which only answers.
fn ping_pong(config: RuntimeConfig) -> (Runtime<Toy>, Arc<MemoryStorage<u64>>) {
    let storage = memory();
    let actors = vec![Toy { peer: Some(id(1)) }, Toy { peer: None }];
    let runtime = Runtime::start(actors, storage.clone(), config).expect("start");
    (runtime, storage)
}

fn solo(count: usize, config: RuntimeConfig) -> Runtime<Toy> {
    let actors = (0..count).map(|_| Toy { peer: None }).collect();
    Runtime::start(actors, memory(), config).expect("start")
}

async fn state(runtime: &Runtime<Toy>, i: usize) -> State {
    runtime
        .inspect(id(i), State::clone)
        .await
        .expect("actor is running")
}

/// Lets every ready task run (paused time advances only once all are idle).
async fn settle() {
    sleep(Duration::from_millis(1)).await;
}

async fn tell(runtime: &Runtime<Toy>, i: usize, ops: Vec<Op>) {
    assert!(
        runtime
            .send_from(client(), id(i), Msg::Do(ops), Route::Direct)
            .await
    );
}

fn drain<M>(rx: &mut mpsc::UnboundedReceiver<M>) -> Vec<M> {
    let mut got = Vec::new();
    while let Ok(m) = rx.try_recv() {
        got.push(m);
    }
    got
}

#[tokio::test(start_paused = true)]
async fn messages_flow_between_actors() {
    let (runtime, storage) = ping_pong(RuntimeConfig::default());
    sleep(Duration::from_millis(350)).await; // pings at 0, 100, 200, 300
    let pinger = state(&runtime, 0).await;
    assert_eq!((pinger.counter, pinger.pongs), (4, 4));
    assert_eq!(pinger.fired, vec![Timer::Resend; 3]);
    assert_eq!(state(&runtime, 1).await.pings, 4);
    assert_eq!(storage.load(id(0)), Ok(Some(4)));
    let stats = runtime.network().stats();
    assert_eq!(
        stats,
        NetworkStats {
            sent: 8,
            delivered: 8,
            ..NetworkStats::default()
        }
    );
    runtime.shutdown().await;
}

/// As in stateright's model, the armed timers are a set: setting an armed timer keeps its
/// deadline, so a timer set on every step still fires.
#[tokio::test(start_paused = true)]
async fn setting_an_armed_timer_keeps_its_deadline() {
    let runtime = solo(1, RuntimeConfig::default());
    tell(&runtime, 0, vec![Op::SetTimer(Timer::A, 100, 100)]).await;
    for _ in 0..4 {
        sleep(Duration::from_millis(20)).await;
        tell(&runtime, 0, vec![Op::SetTimer(Timer::A, 100, 100)]).await;
    }
    sleep(Duration::from_millis(30)).await; // t = 110
    assert_eq!(state(&runtime, 0).await.fired, vec![Timer::A]);
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn timers_fire_and_are_cancellable_and_resettable() {
    let runtime = solo(1, RuntimeConfig::default().traced());
    let start = Instant::now();
    tell(
        &runtime,
        0,
        vec![
            Op::SetTimer(Timer::A, 100, 100),
            Op::SetTimer(Timer::B, 100, 100),
        ],
    )
    .await;
    sleep(Duration::from_millis(50)).await;
    // A's first sleep is under way: cancelling and setting it again (a reset) must make
    // that firing stale.
    tell(
        &runtime,
        0,
        vec![
            Op::CancelTimer(Timer::A),
            Op::SetTimer(Timer::A, 200, 200),
            Op::CancelTimer(Timer::B),
        ],
    )
    .await;
    sleep(Duration::from_millis(100)).await; // t = 150
    assert_eq!(state(&runtime, 0).await.fired, vec![]);
    sleep(Duration::from_millis(150)).await; // t = 300
    assert_eq!(state(&runtime, 0).await.fired, vec![Timer::A]);
    sleep(Duration::from_secs(5)).await;
    assert_eq!(state(&runtime, 0).await.fired, vec![Timer::A]);
    let fired: Vec<_> = runtime
        .take_trace()
        .expect("traced")
        .events
        .into_iter()
        .filter(|e| matches!(e.kind, TraceKind::TimerFired { .. }))
        .collect();
    assert_eq!(
        fired,
        vec![TraceEvent {
            at: Duration::from_millis(250),
            actor: id(0),
            kind: TraceKind::TimerFired { timer: Timer::A },
        }]
    );
    assert!(start.elapsed() >= Duration::from_secs(5));
    runtime.shutdown().await;
}

/// When timer `A`, drawn from 100..1000ms, fires under `seed`.
async fn timer_draw(seed: u64) -> Duration {
    let runtime = solo(1, RuntimeConfig::with_seed(seed).traced());
    tell(&runtime, 0, vec![Op::SetTimer(Timer::A, 100, 1000)]).await;
    sleep(Duration::from_secs(2)).await;
    let events = runtime.take_trace().expect("traced").events;
    runtime.shutdown().await;
    let at: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, TraceKind::TimerFired { .. }))
        .map(|e| e.at)
        .collect();
    assert_eq!(at.len(), 1, "{events:?}");
    at[0]
}

#[tokio::test(start_paused = true)]
async fn timer_durations_come_from_the_seeded_rng() {
    let first = timer_draw(7).await;
    assert!(
        (Duration::from_millis(100)..Duration::from_millis(1000)).contains(&first),
        "{first:?}"
    );
    assert_eq!(timer_draw(7).await, first);
    let others: Vec<_> = [8, 9, 10].into_iter().map(timer_draw).collect();
    let mut differs = false;
    for other in others {
        differs |= other.await != first;
    }
    assert!(differs, "every seed drew {first:?}");
}

#[tokio::test(start_paused = true)]
async fn choose_random_is_answered_by_the_seeded_rng() {
    let runtime = solo(1, RuntimeConfig::with_seed(3).traced());
    tell(&runtime, 0, vec![Op::Choose("k".into(), vec![1, 2, 3])]).await;
    settle().await;
    let randoms = state(&runtime, 0).await.randoms;
    assert_eq!(randoms.len(), 1);
    assert!([1, 2, 3].contains(&randoms[0]), "{randoms:?}");
    // Choosing from nothing withdraws the pending choice of that key.
    tell(
        &runtime,
        0,
        vec![
            Op::Choose("k".into(), vec![4]),
            Op::Choose("k".into(), vec![]),
            Op::Choose("a".into(), vec![5]),
            Op::Choose("b".into(), vec![6]),
        ],
    )
    .await;
    settle().await;
    assert_eq!(state(&runtime, 0).await.randoms, vec![randoms[0], 5, 6]);
    let chosen: Vec<_> = runtime
        .take_trace()
        .expect("traced")
        .events
        .into_iter()
        .filter_map(|e| match e.kind {
            TraceKind::RandomChosen { key, random } => Some((key, random)),
            _ => None,
        })
        .collect();
    assert_eq!(
        chosen,
        vec![("k".into(), randoms[0]), ("a".into(), 5), ("b".into(), 6)]
    );
    runtime.shutdown().await;
}

#[derive(Debug, PartialEq)]
enum Seen {
    Saved(u64),
    Observed(OutboxMsg<Msg>),
}

/// Logs each save after logging whatever had already reached the outbox, so a
/// message sent before its step's save shows up before it.
#[derive(Default)]
struct RecordingStorage {
    log: Mutex<Vec<Seen>>,
    outbox: Mutex<Option<mpsc::UnboundedReceiver<OutboxMsg<Msg>>>>,
}

impl RecordingStorage {
    fn observe(&self, log: &mut Vec<Seen>) {
        if let Some(rx) = self.outbox.lock().unwrap().as_mut() {
            log.extend(drain(rx).into_iter().map(Seen::Observed));
        }
    }
}

impl StorageBackend<u64> for RecordingStorage {
    fn save(&self, _id: Id, storage: &u64) -> Result<(), StorageError> {
        let mut log = self.log.lock().unwrap();
        self.observe(&mut log);
        log.push(Seen::Saved(*storage));
        Ok(())
    }

    fn load(&self, _id: Id) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
}

#[tokio::test(start_paused = true)]
async fn a_steps_save_is_durable_before_its_sends_leave() {
    let storage = Arc::new(RecordingStorage::default());
    let runtime = Runtime::start(
        vec![Toy { peer: None }],
        storage.clone(),
        RuntimeConfig::default(),
    )
    .expect("start");
    *storage.outbox.lock().unwrap() = runtime.outbox();
    // The actor emits the Send before the Save; the runtime must reorder.
    tell(
        &runtime,
        0,
        vec![Op::Send(client(), Box::new(Msg::Ping(7))), Op::Save(7)],
    )
    .await;
    settle().await;
    let log = {
        let mut log = storage.log.lock().unwrap();
        storage.observe(&mut log);
        std::mem::take(&mut *log)
    };
    assert_eq!(
        log,
        vec![
            Seen::Saved(7),
            Seen::Observed((id(0), client(), Msg::Ping(7)))
        ]
    );
    runtime.shutdown().await;
}

struct FailingStorage;

impl StorageBackend<u64> for FailingStorage {
    fn save(&self, _id: Id, _storage: &u64) -> Result<(), StorageError> {
        Err(StorageError::new("disk on fire"))
    }

    fn load(&self, _id: Id) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_save_keeps_the_steps_messages_in_and_crashes_the_actor() {
    let runtime = Runtime::start(
        vec![Toy { peer: None }],
        Arc::new(FailingStorage),
        RuntimeConfig::default().traced(),
    )
    .expect("start");
    let mut outbox = runtime.outbox().expect("first take");
    tell(
        &runtime,
        0,
        vec![Op::Send(client(), Box::new(Msg::Ping(1))), Op::Save(1)],
    )
    .await;
    settle().await;
    assert_eq!(drain(&mut outbox), vec![]);
    assert!(!runtime.is_running(id(0)));
    assert_eq!(runtime.inspect(id(0), State::clone).await, None);
    assert!(!runtime.crash(id(0)).await, "already crashed");
    let kinds: Vec<_> = runtime
        .take_trace()
        .expect("traced")
        .events
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        matches!(kinds.last(), Some(TraceKind::SaveFailed)),
        "{kinds:?}"
    );
    assert_eq!(runtime.restart(id(0)).await, Ok(true));
    assert_eq!(state(&runtime, 0).await, State::default());
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn crash_drops_volatile_state_and_timers_and_restart_resumes_from_storage() {
    let (runtime, storage) = ping_pong(RuntimeConfig::default());
    sleep(Duration::from_millis(350)).await;
    assert_eq!(state(&runtime, 0).await.pongs, 4);
    assert!(runtime.crash(id(0)).await);
    assert!(!runtime.crash(id(0)).await, "second crash is a no-op");
    assert!(!runtime.is_running(id(0)));
    assert_eq!(runtime.inspect(id(0), State::clone).await, None);
    sleep(Duration::from_millis(500)).await;
    assert_eq!(state(&runtime, 1).await.pings, 4, "crashed timers fired");
    assert_eq!(storage.load(id(0)), Ok(Some(4)));

    assert_eq!(runtime.restart(id(0)).await, Ok(true));
    assert_eq!(runtime.restart(id(0)).await, Ok(false), "already running");
    settle().await;
    let pinger = state(&runtime, 0).await;
    // Durable counter resumed (4, +1 for the restart's ping); volatile pongs reset.
    assert_eq!((pinger.counter, pinger.pongs), (5, 1));
    assert_eq!(state(&runtime, 1).await.pings, 5);
    sleep(Duration::from_millis(100)).await;
    assert_eq!(state(&runtime, 0).await.counter, 6, "timers run again");
    assert_eq!(
        runtime.restart(id(7)).await,
        Err(RuntimeError::UnknownActor(id(7)))
    );
    assert!(!runtime.crash(id(7)).await);
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn crash_discards_the_pending_mailbox() {
    let runtime = solo(1, RuntimeConfig::default());
    for n in 0..5 {
        assert!(runtime.try_send_from(client(), id(0), Msg::Ping(n), Route::Direct));
    }
    // The actor has not run yet: all five are still in its mailbox.
    assert!(runtime.crash(id(0)).await);
    assert_eq!(runtime.restart(id(0)).await, Ok(true));
    settle().await;
    assert_eq!(state(&runtime, 0).await.pings, 0);
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn partition_blocks_messages_between_groups_and_heal_restores_them() {
    let (runtime, _) = ping_pong(RuntimeConfig::default());
    let network = runtime.network();
    network.partition(vec![vec![id(0)], vec![id(1)]]);
    assert!(network.is_partitioned(id(0), id(1)));
    sleep(Duration::from_millis(350)).await;
    assert_eq!(state(&runtime, 1).await.pings, 0);
    assert_eq!(state(&runtime, 0).await.counter, 0);
    assert_eq!(network.stats().dropped, 4);

    network.heal();
    assert!(!network.is_partitioned(id(0), id(1)));
    sleep(Duration::from_millis(100)).await; // the ping at 400 gets through
    assert_eq!(state(&runtime, 1).await.pings, 1);
    assert_eq!(state(&runtime, 0).await.counter, 1);

    // Isolating 1 leaves 0 and unlisted ids (the client) together.
    network.isolate(id(1));
    assert!(network.is_partitioned(id(0), id(1)));
    assert!(network.is_partitioned(client(), id(1)));
    assert!(!network.is_partitioned(client(), id(0)));
    assert!(
        !runtime
            .send_from(client(), id(1), Msg::Ping(0), Route::Network)
            .await
    );
    assert!(
        runtime
            .send_from(client(), id(0), Msg::Ping(0), Route::Network)
            .await
    );
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn drop_rate_one_drops_everything() {
    let (runtime, _) = ping_pong(RuntimeConfig::default());
    let network = runtime.network();
    network.set_drop_rate(1.0);
    sleep(Duration::from_millis(950)).await; // pings at 0, 100, ..., 900
    assert_eq!(state(&runtime, 1).await.pings, 0);
    assert_eq!(
        network.stats(),
        NetworkStats {
            sent: 10,
            dropped: 10,
            ..NetworkStats::default()
        }
    );
    // Out-of-range rates are clamped rather than panicking.
    network.set_drop_rate(f64::NAN);
    sleep(Duration::from_millis(100)).await;
    assert_eq!(state(&runtime, 1).await.pings, 1);
    runtime.shutdown().await;
}

/// Replies to the application wait in the outbox however many pile up before it reads them: a
/// dropped reply is an outcome a client waits for forever. (A 4,096-message outbox dropped the
/// rest and hung the benchmark relay at batch sizes below 100.)
#[tokio::test(start_paused = true)]
async fn the_outbox_keeps_every_reply_until_the_application_reads_it() {
    const PINGS: u64 = 10_000;
    let runtime = solo(1, RuntimeConfig::default());
    let mut outbox = runtime.outbox().expect("first take");
    for n in 0..PINGS {
        assert!(
            runtime
                .send_from(client(), id(0), Msg::Ping(n), Route::Direct)
                .await
        );
    }
    settle().await;
    let replies = drain(&mut outbox);
    assert_eq!(replies.len() as u64, PINGS);
    assert_eq!(
        replies.last(),
        Some(&(id(0), client(), Msg::Pong(PINGS - 1)))
    );
    assert_eq!(runtime.network().stats().dropped, 0);
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn duplicate_rate_one_duplicates_every_message() {
    let runtime = solo(1, RuntimeConfig::default());
    let mut outbox = runtime.outbox().expect("first take");
    assert!(runtime.outbox().is_none(), "taken once");
    runtime.network().set_duplicate_rate(7.0); // clamped to 1
    assert!(
        runtime
            .send_from(client(), id(0), Msg::Ping(3), Route::Network)
            .await
    );
    settle().await;
    assert_eq!(state(&runtime, 0).await.pings, 2);
    // The two Pongs go to the application, which shares the clients' process: no faults.
    assert_eq!(drain(&mut outbox), vec![(id(0), client(), Msg::Pong(3)); 2]);
    assert_eq!(
        runtime.network().stats(),
        NetworkStats {
            sent: 3,
            delivered: 4,
            duplicated: 1,
            ..NetworkStats::default()
        }
    );
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn delays_and_slow_links_postpone_delivery() {
    let runtime = solo(2, RuntimeConfig::default());
    let mut outbox = runtime.outbox().expect("first take");
    let network = runtime.network();
    network.set_delay(Duration::from_millis(50)..Duration::from_millis(50));
    assert!(
        runtime
            .send_from(client(), id(0), Msg::Ping(1), Route::Network)
            .await
    );
    sleep(Duration::from_millis(40)).await;
    assert_eq!(state(&runtime, 0).await.pings, 0);
    assert_eq!(network.stats().in_flight, 1);
    sleep(Duration::from_millis(20)).await; // t = 60
    assert_eq!(state(&runtime, 0).await.pings, 1);
    assert_eq!(
        drain(&mut outbox),
        vec![(id(0), client(), Msg::Pong(1))],
        "the application is not behind the network: its Pong is not delayed"
    );

    network.clear_delay();
    network.slow(id(1), Duration::from_millis(30));
    assert!(
        runtime
            .send_from(client(), id(1), Msg::Ping(2), Route::Network)
            .await
    );
    assert!(
        runtime
            .send_from(client(), id(0), Msg::Ping(2), Route::Network)
            .await
    );
    settle().await;
    assert_eq!(state(&runtime, 0).await.pings, 2, "0's link is not slow");
    assert_eq!(state(&runtime, 1).await.pings, 0);
    sleep(Duration::from_millis(35)).await;
    assert_eq!(state(&runtime, 1).await.pings, 1);

    // Random delays: everything still arrives, in whatever order.
    network.slow(id(1), Duration::ZERO);
    network.set_delay(Duration::from_millis(1)..Duration::from_millis(100));
    for n in 0..20 {
        assert!(
            runtime
                .send_from(client(), id(1), Msg::Ping(n), Route::Network)
                .await
        );
    }
    sleep(Duration::from_millis(300)).await;
    assert_eq!(state(&runtime, 1).await.pings, 21);
    assert_eq!(network.stats().in_flight, 0);
    assert_eq!(network.stats().dropped, 0);
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn injection_direct_bypasses_faults_and_inspect_reads_state() {
    let runtime = solo(1, RuntimeConfig::default());
    let mut outbox = runtime.outbox().expect("first take");
    runtime.network().set_drop_rate(1.0);
    assert!(
        !runtime
            .send_from(client(), id(0), Msg::Ping(1), Route::Network)
            .await
    );
    assert!(
        runtime
            .send_from(client(), id(0), Msg::Ping(2), Route::Direct)
            .await
    );
    assert!(runtime.try_send_from(client(), id(0), Msg::Ping(3), Route::Direct));
    settle().await;
    assert_eq!(runtime.inspect(id(0), |s| s.pings).await, Some(2));
    assert_eq!(
        drain(&mut outbox),
        vec![
            (id(0), client(), Msg::Pong(2)),
            (id(0), client(), Msg::Pong(3))
        ],
        "the actor's Pongs reach the application past the faults"
    );
    assert_eq!(runtime.network().stats().dropped, 1);
    assert_eq!(
        runtime.inspect(id(5), |s| s.pings).await,
        None,
        "no such actor"
    );
    assert!(runtime.crash(id(0)).await);
    assert!(
        !runtime
            .send_from(client(), id(0), Msg::Ping(4), Route::Direct)
            .await
    );
    assert!(!runtime.try_send_from(client(), id(0), Msg::Ping(4), Route::Direct));
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_mailbox_drops_actor_messages_instead_of_growing() {
    let runtime = solo(2, RuntimeConfig::default());
    let extra = 10;
    tell(
        &runtime,
        0,
        vec![Op::SendPings(id(1), MAILBOX_CAPACITY + extra)],
    )
    .await;
    settle().await;
    assert_eq!(state(&runtime, 1).await.pings, MAILBOX_CAPACITY as u64);
    let stats = runtime.network().stats();
    // The Pongs back to 0 fit its mailbox, 1 never has more than it can hold.
    assert_eq!(stats.dropped, extra as u64);
    assert_eq!(state(&runtime, 0).await.counter, MAILBOX_CAPACITY as u64);
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_trace_records_deliveries_timers_crashes_and_restarts() {
    let (runtime, _) = ping_pong(RuntimeConfig::default().traced());
    sleep(Duration::from_millis(150)).await;
    assert!(runtime.crash(id(1)).await);
    assert_eq!(runtime.restart(id(1)).await, Ok(true));
    settle().await;
    let at = Duration::from_millis;
    let event = |ms, actor, kind| TraceEvent {
        at: at(ms),
        actor: id(actor),
        kind,
    };
    let log = runtime.take_trace().expect("traced");
    assert_eq!(log.overflowed, 0);
    assert_eq!(
        log.events,
        vec![
            event(
                0,
                1,
                TraceKind::Delivered {
                    src: id(0),
                    msg: Msg::Ping(0)
                }
            ),
            event(
                0,
                0,
                TraceKind::Delivered {
                    src: id(1),
                    msg: Msg::Pong(0)
                }
            ),
            event(
                100,
                0,
                TraceKind::TimerFired {
                    timer: Timer::Resend
                }
            ),
            event(
                100,
                1,
                TraceKind::Delivered {
                    src: id(0),
                    msg: Msg::Ping(1)
                }
            ),
            event(
                100,
                0,
                TraceKind::Delivered {
                    src: id(1),
                    msg: Msg::Pong(1)
                }
            ),
            event(150, 1, TraceKind::Crashed),
            event(150, 1, TraceKind::Restarted),
        ]
    );
    assert_eq!(
        runtime.take_trace().expect("traced").events,
        vec![],
        "drained"
    );
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_trace_is_bounded_and_counts_overflow() {
    let (runtime, _) = ping_pong(RuntimeConfig::default().trace_capacity(3));
    sleep(Duration::from_millis(350)).await; // 2 events at t=0, then 3 per period
    let log = runtime.take_trace().expect("traced");
    assert_eq!(log.events.len(), 3);
    assert_eq!(log.overflowed, 8);
    assert!(solo(1, RuntimeConfig::default()).take_trace().is_none());
    runtime.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_every_task_and_delayed_message() {
    let (runtime, storage) = ping_pong(RuntimeConfig::default());
    let network = runtime.network();
    network.set_delay(Duration::from_secs(1)..Duration::from_secs(1));
    sleep(Duration::from_millis(150)).await;
    assert_eq!(network.stats().in_flight, 2); // pings of t=0 and t=100
    runtime.shutdown().await;
    assert_eq!(network.stats().in_flight, 0);
    assert_eq!(network.stats().dropped, 2);
    for i in 0..2 {
        assert!(!runtime.is_running(id(i)));
        assert_eq!(runtime.inspect(id(i), State::clone).await, None);
        assert!(!runtime.crash(id(i)).await);
        assert_eq!(runtime.restart(id(i)).await, Err(RuntimeError::ShutDown));
    }
    assert!(
        !runtime
            .send_from(client(), id(1), Msg::Ping(0), Route::Direct)
            .await
    );
    assert!(
        !runtime
            .send_from(client(), id(1), Msg::Ping(0), Route::Network)
            .await
    );
    sleep(Duration::from_secs(5)).await;
    assert_eq!(storage.load(id(0)), Ok(None), "no pong ever arrived");
    assert_eq!(network.stats().sent, 4, "no timer fired after shutdown");
    runtime.shutdown().await; // idempotent
}

#[test]
fn start_needs_a_tokio_runtime() {
    let started = Runtime::start(vec![Toy { peer: None }], memory(), RuntimeConfig::default());
    assert_eq!(started.err(), Some(RuntimeError::NoTokioRuntime));
}

struct UnreadableStorage;

impl StorageBackend<u64> for UnreadableStorage {
    fn save(&self, _id: Id, _storage: &u64) -> Result<(), StorageError> {
        Ok(())
    }

    fn load(&self, _id: Id) -> Result<Option<u64>, StorageError> {
        Err(StorageError::Corrupt("bad checksum".into()))
    }
}

#[tokio::test]
async fn start_reports_a_storage_load_failure() {
    let started = Runtime::start(
        vec![Toy { peer: None }],
        Arc::new(UnreadableStorage),
        RuntimeConfig::default(),
    );
    assert_eq!(
        started.err(),
        Some(RuntimeError::Storage {
            id: id(0),
            error: StorageError::Corrupt("bad checksum".into())
        })
    );
}

#[tokio::test(start_paused = true)]
async fn start_resumes_from_storage_already_saved() {
    let storage = memory();
    storage.save(id(0), &41).expect("save");
    let runtime = Runtime::start(
        vec![Toy { peer: Some(id(1)) }, Toy { peer: None }],
        storage.clone(),
        RuntimeConfig::default(),
    )
    .expect("start");
    settle().await;
    assert_eq!(state(&runtime, 0).await.counter, 42);
    assert_eq!(state(&runtime, 1).await.pings, 1);
    runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_a_multi_threaded_runtime_in_real_time() {
    fn shareable<T: Send + Sync>(_: &T) {}
    let (runtime, storage) = ping_pong(RuntimeConfig::default());
    shareable(&runtime);
    let runtime = Arc::new(runtime);
    // The runtime's futures must be spawnable, as an application will.
    let crasher = Arc::clone(&runtime);
    let crashed = tokio::spawn(async move {
        sleep(Duration::from_millis(450)).await;
        let pongs = crasher.inspect(id(0), |s| s.pongs).await;
        (pongs, crasher.crash(id(0)).await)
    });
    let (pongs, crashed) = crashed.await.expect("crasher task");
    assert!(crashed);
    let saved = storage.load(id(0)).expect("load").unwrap_or(0);
    let pongs = pongs.expect("running before the crash");
    // A Pong may land between the inspection and the crash.
    assert!(saved == pongs || saved == pongs + 1, "{saved} vs {pongs}");
    assert!(
        (3..=6).contains(&saved),
        "{saved} pongs in 450ms at one per 100ms"
    );
    runtime.shutdown().await;
}

/// A delay that shrinks (or a slow link cleared) must not let later messages overtake earlier
/// ones on a connection: TCP keeps order, and the protocol counts on it.
#[tokio::test(start_paused = true)]
async fn a_connection_stays_fifo_when_its_delay_shrinks() {
    let runtime = solo(1, RuntimeConfig::default());
    let mut outbox = runtime.outbox().expect("first take");
    let network = runtime.network();
    network.set_delay(Duration::from_millis(100)..Duration::from_millis(100));
    assert!(
        runtime
            .send_from(client(), id(0), Msg::Ping(1), Route::Network)
            .await
    );
    network.set_delay(Duration::from_millis(1)..Duration::from_millis(1));
    assert!(
        runtime
            .send_from(client(), id(0), Msg::Ping(2), Route::Network)
            .await
    );
    network.clear_delay();
    assert!(
        runtime
            .send_from(client(), id(0), Msg::Ping(3), Route::Network)
            .await
    );
    sleep(Duration::from_millis(50)).await;
    assert_eq!(
        state(&runtime, 0).await.pings,
        0,
        "nothing overtakes Ping(1)"
    );
    sleep(Duration::from_millis(60)).await;
    assert_eq!(state(&runtime, 0).await.pings, 3);
    // Each Ping is answered as it arrives: the Pongs show the order of arrival.
    let pong = |n| (id(0), client(), Msg::Pong(n));
    assert_eq!(drain(&mut outbox), vec![pong(1), pong(2), pong(3)]);
    runtime.shutdown().await;
}

/// How long [`SlowStorage`] takes over a save.
const SLOW_SAVE: Duration = Duration::from_millis(400);

/// A disk that takes [`SLOW_SAVE`] over every save, blocking its thread as an fsync does.
#[derive(Default)]
struct SlowStorage {
    saved: Mutex<Vec<u64>>,
}

impl StorageBackend<u64> for SlowStorage {
    fn save(&self, _id: Id, storage: &u64) -> Result<(), StorageError> {
        std::thread::sleep(SLOW_SAVE);
        self.saved.lock().unwrap().push(*storage);
        Ok(())
    }

    fn load(&self, _id: Id) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }

    fn is_blocking(&self) -> bool {
        true
    }
}

/// Setup: two actors on one tokio thread, on a disk whose saves take 400 ms.
/// Steps: actor 1 arms a 50 ms timer; actor 0 sends a message and saves in one step.
/// Expected: actor 1's timer fires at about 50 ms, while actor 0's save is still under way
/// (a save on the async worker would hold every actor up for 400 ms); actor 0's message leaves
/// only after its save (write-ahead).
#[tokio::test(flavor = "current_thread")]
async fn a_slow_save_does_not_hold_up_another_actors_timers() {
    let storage = Arc::new(SlowStorage::default());
    let runtime = Runtime::start(
        vec![Toy { peer: None }, Toy { peer: None }],
        storage.clone(),
        RuntimeConfig::default().traced(),
    )
    .expect("start");
    let mut outbox = runtime.outbox().expect("outbox");
    tell(&runtime, 1, vec![Op::SetTimer(Timer::A, 50, 50)]).await;
    tell(
        &runtime,
        0,
        vec![Op::Send(client(), Box::new(Msg::Ping(7))), Op::Save(7)],
    )
    .await;
    sleep(SLOW_SAVE / 2).await;
    assert!(drain(&mut outbox).is_empty(), "sent before its save ended");
    assert!(storage.saved.lock().unwrap().is_empty());
    sleep(SLOW_SAVE).await;
    assert_eq!(*storage.saved.lock().unwrap(), vec![7]);
    assert_eq!(drain(&mut outbox), vec![(id(0), client(), Msg::Ping(7))]);
    let log = runtime.take_trace().expect("traced");
    let fired = log
        .events
        .iter()
        .find(|e| e.actor == id(1) && matches!(e.kind, TraceKind::TimerFired { .. }))
        .expect("actor 1's timer fired");
    assert!(
        fired.at < SLOW_SAVE / 2,
        "actor 1's 50 ms timer fired at {:?}, held up by actor 0's save",
        fired.at
    );
    runtime.shutdown().await;
}
