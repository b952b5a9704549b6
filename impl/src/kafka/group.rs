//! Consumer groups of one member: enough of Kafka's group coordinator (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) for a client's `subscribe()` to take the one partition.
//!
//! Kafka's classic rebalance protocol: a member joins (JoinGroup) and the coordinator names
//! a generation and a leader among the members; the leader computes the assignment with its
//! own assignor (client-side) and hands it over in SyncGroup; members heartbeat to keep
//! their session, and leave (LeaveGroup) when they close. With one member the leader is that
//! member, its assignment is its own, and a rebalance is a new generation on every join.
//!
//! **A second member is refused** with `GROUP_MAX_SIZE_REACHED` (Kafka's answer when a
//! group is at `group.max.size`, KIP-389; here the size is 1). Admitting it would need the
//! coordinator's rebalance (holding every member's JoinGroup until all have rejoined, telling
//! the others `REBALANCE_IN_PROGRESS` through their heartbeats), and with one partition the
//! second member would be given nothing anyway. A member whose session ran out (no
//! heartbeat, join, sync or commit for its `session.timeout.ms`) is dropped, so a consumer
//! that crashed without leaving blocks a new one for at most that long.
//!
//! Not the model's: the model's consumer actor is the engine's own consumer, and group
//! membership decides no property it checks. The coordinator lives in the listener's process
//! like the offset store ([`super::OffsetStore`]), and ends with it. Time is an input: every
//! call takes `now`.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kafka's error codes for groups (Kafka's `Errors` class).
pub mod code {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
}

/// Kafka's `group.min.session.timeout.ms` and `group.max.session.timeout.ms` (defaults).
pub const SESSION_MIN: Duration = Duration::from_millis(6_000);
pub const SESSION_MAX: Duration = Duration::from_millis(1_800_000);

/// Most groups one coordinator keeps (with or without a member).
use super::GROUPS_MAX;

/// Longest member id kept (client ids are echoed into it).
const MEMBER_ID_CHARS_MAX: usize = 255;

/// A JoinGroup as the coordinator reads it.
pub struct Join<'a> {
    pub group: &'a str,
    /// Empty for a new member.
    pub member_id: &'a str,
    pub client_id: &'a str,
    pub protocol_type: &'a str,
    /// The member's assignors in its order of preference, with its metadata for each.
    pub protocols: Vec<(String, Bytes)>,
    pub session: Duration,
}

/// A successful join: the member is the group's leader and only member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub generation: i32,
    pub member_id: String,
    pub protocol_type: String,
    /// The chosen assignor: the member's first.
    pub protocol: String,
    /// The member's metadata for it (the leader's member list holds it).
    pub metadata: Bytes,
}

#[derive(Clone, Debug)]
struct Member {
    id: String,
    protocol_type: String,
    protocol: String,
    session: Duration,
    seen: Instant,
}

#[derive(Clone, Debug, Default)]
struct Group {
    /// Bumped on every join, as Kafka bumps it on every rebalance.
    generation: i32,
    member: Option<Member>,
}

impl Group {
    /// Drops the member whose session ran out.
    fn expire(&mut self, now: Instant) {
        if self
            .member
            .as_ref()
            .is_some_and(|m| now.saturating_duration_since(m.seen) > m.session)
        {
            self.member = None;
        }
    }

    /// The member named `member_id` in `generation`, or why not (Kafka's order: an unknown
    /// member first, then a stale generation).
    fn member(&mut self, member_id: &str, generation: i32) -> Result<&mut Member, i16> {
        let generation_now = self.generation;
        match &mut self.member {
            Some(m) if m.id == member_id => {
                if generation == generation_now {
                    Ok(m)
                } else {
                    Err(code::ILLEGAL_GENERATION)
                }
            }
            _ => Err(code::UNKNOWN_MEMBER_ID),
        }
    }
}

/// The coordinator of every group this listener's process serves.
pub struct Groups {
    groups: Mutex<HashMap<String, Group>>,
    /// Makes member ids unique across restarts of the process: a client holding an id from
    /// an earlier process is told `UNKNOWN_MEMBER_ID`, never mistaken for a new member.
    token: u32,
    next_member: std::sync::atomic::AtomicU64,
}

impl Default for Groups {
    fn default() -> Self {
        Groups {
            groups: Mutex::new(HashMap::new()),
            token: rand::random(),
            next_member: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

impl Groups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        // Each call leaves the map consistent; a poisoned lock is still usable.
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// JoinGroup: a new member (empty id) takes an empty group; the member rejoins with its
    /// id. Either way the generation moves on.
    pub fn join(&self, join: Join<'_>, now: Instant) -> Result<Joined, i16> {
        if join.group.is_empty() {
            return Err(code::INVALID_GROUP_ID);
        }
        let Some((protocol, metadata)) = join.protocols.first().cloned() else {
            return Err(code::INCONSISTENT_GROUP_PROTOCOL);
        };
        if join.protocol_type.is_empty() {
            return Err(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        if !(SESSION_MIN..=SESSION_MAX).contains(&join.session) {
            return Err(code::INVALID_SESSION_TIMEOUT);
        }
        let mut groups = self.lock();
        if !groups.contains_key(join.group) && groups.len() >= GROUPS_MAX {
            // Make room from groups nobody is in.
            groups.retain(|_, g| {
                g.expire(now);
                g.member.is_some()
            });
            if groups.len() >= GROUPS_MAX {
                return Err(code::COORDINATOR_NOT_AVAILABLE);
            }
        }
        let group = groups.entry(join.group.to_string()).or_default();
        group.expire(now);
        let member_id = match &group.member {
            Some(m) if m.id == join.member_id => m.id.clone(),
            Some(_) if join.member_id.is_empty() => return Err(code::GROUP_MAX_SIZE_REACHED),
            // A member id this coordinator did not give, or no longer knows (its session ran
            // out, it left, or the process restarted): the client joins again without one.
            _ if !join.member_id.is_empty() => return Err(code::UNKNOWN_MEMBER_ID),
            _ => {
                let n = self
                    .next_member
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut id = format!("{}-{:08x}-{n}", join.client_id, self.token);
                if id.len() > MEMBER_ID_CHARS_MAX {
                    id = format!("member-{:08x}-{n}", self.token);
                }
                id
            }
        };
        group.generation = group.generation.wrapping_add(1).max(1);
        group.member = Some(Member {
            id: member_id.clone(),
            protocol_type: join.protocol_type.to_string(),
            protocol: protocol.clone(),
            session: join.session,
            seen: now,
        });
        Ok(Joined {
            generation: group.generation,
            member_id,
            protocol_type: join.protocol_type.to_string(),
            protocol,
            metadata,
        })
    }

    /// SyncGroup: the leader (the only member) hands over its assignments; it gets its own
    /// back, with the protocol type and assignor its join chose.
    pub fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        assignments: &[(String, Bytes)],
        now: Instant,
    ) -> Result<(Bytes, String, String), i16> {
        let mut groups = self.lock();
        let group = groups.get_mut(group).ok_or(code::UNKNOWN_MEMBER_ID)?;
        group.expire(now);
        let member = group.member(member_id, generation)?;
        member.seen = now;
        let mine = assignments
            .iter()
            .find(|(id, _)| id == member_id)
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        Ok((mine, member.protocol_type.clone(), member.protocol.clone()))
    }

    /// Heartbeat: keeps the member's session.
    pub fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        now: Instant,
    ) -> Result<(), i16> {
        let mut groups = self.lock();
        let group = groups.get_mut(group).ok_or(code::UNKNOWN_MEMBER_ID)?;
        group.expire(now);
        group.member(member_id, generation)?.seen = now;
        Ok(())
    }

    /// LeaveGroup: the member goes; the group is empty for the next one.
    pub fn leave(&self, group: &str, member_id: &str) -> Result<(), i16> {
        let mut groups = self.lock();
        let group = groups.get_mut(group).ok_or(code::UNKNOWN_MEMBER_ID)?;
        match &group.member {
            Some(m) if m.id == member_id => {
                group.member = None;
                Ok(())
            }
            _ => Err(code::UNKNOWN_MEMBER_ID),
        }
    }

    /// May this OffsetCommit go through? One without a generation (-1: a consumer that
    /// `assign()`s) always may; one with a generation must come from the group's member in
    /// that generation (Kafka fences a commit from a member that lost its partitions).
    pub fn may_commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        now: Instant,
    ) -> Result<(), i16> {
        if generation < 0 {
            return Ok(());
        }
        self.heartbeat(group, generation, member_id, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join<'a>(member_id: &'a str, session_ms: u64) -> Join<'a> {
        Join {
            group: "g",
            member_id,
            client_id: "client",
            protocol_type: "consumer",
            protocols: vec![
                ("range".into(), Bytes::from_static(b"r")),
                ("roundrobin".into(), Bytes::from_static(b"rr")),
            ],
            session: Duration::from_millis(session_ms),
        }
    }

    #[test]
    fn one_member_joins_syncs_heartbeats_and_leaves() {
        let groups = Groups::default();
        let t = Instant::now();
        let first = groups.join(join("", 10_000), t).expect("joins");
        assert_eq!(first.generation, 1);
        assert_eq!(first.protocol, "range", "the member's first assignor");
        assert_eq!(first.metadata, Bytes::from_static(b"r"));
        let id = first.member_id.clone();
        let mine = vec![(id.clone(), Bytes::from_static(b"partition 0"))];
        let (assignment, kind, protocol) = groups.sync("g", 1, &id, &mine, t).expect("syncs");
        assert_eq!(assignment, Bytes::from_static(b"partition 0"));
        assert_eq!((kind.as_str(), protocol.as_str()), ("consumer", "range"));
        assert_eq!(groups.heartbeat("g", 1, &id, t), Ok(()));
        assert_eq!(
            groups.heartbeat("g", 0, &id, t),
            Err(code::ILLEGAL_GENERATION)
        );
        assert_eq!(
            groups.heartbeat("g", 1, "someone", t),
            Err(code::UNKNOWN_MEMBER_ID)
        );
        // Rejoining with its id is a new generation for the same member.
        let again = groups.join(join(&id, 10_000), t).expect("rejoins");
        assert_eq!((again.generation, again.member_id.as_str()), (2, &id[..]));
        assert_eq!(
            groups.may_commit("g", 1, &id, t),
            Err(code::ILLEGAL_GENERATION)
        );
        assert_eq!(groups.may_commit("g", 2, &id, t), Ok(()));
        assert_eq!(groups.may_commit("g", -1, "", t), Ok(()), "assign()ed");
        assert_eq!(groups.leave("g", &id), Ok(()));
        assert_eq!(groups.leave("g", &id), Err(code::UNKNOWN_MEMBER_ID));
        // The id is forgotten; a new member takes the group in the next generation.
        assert_eq!(
            groups.join(join(&id, 10_000), t),
            Err(code::UNKNOWN_MEMBER_ID)
        );
        let next = groups.join(join("", 10_000), t).expect("joins");
        assert_eq!(next.generation, 3);
        assert_ne!(next.member_id, id);
    }

    #[test]
    fn a_second_member_is_refused_until_the_first_leaves_or_expires() {
        let groups = Groups::default();
        let t = Instant::now();
        let first = groups.join(join("", 10_000), t).expect("joins");
        assert_eq!(
            groups.join(join("", 10_000), t + Duration::from_secs(10)),
            Err(code::GROUP_MAX_SIZE_REACHED)
        );
        // A heartbeat at 9 s keeps the session to 19 s.
        let at = |s: u64| t + Duration::from_secs(s);
        groups
            .heartbeat("g", 1, &first.member_id, at(9))
            .expect("heartbeats");
        assert_eq!(
            groups.join(join("", 10_000), at(19)),
            Err(code::GROUP_MAX_SIZE_REACHED)
        );
        let second = groups.join(join("", 10_000), at(20)).expect("expired");
        assert_eq!(second.generation, 2);
        assert_eq!(
            groups.heartbeat("g", 1, &first.member_id, at(20)),
            Err(code::UNKNOWN_MEMBER_ID),
            "the expired member learns it is out"
        );
    }

    #[test]
    fn bad_joins_get_kafkas_codes() {
        let groups = Groups::default();
        let t = Instant::now();
        assert_eq!(
            groups.join(join("", 1_000), t),
            Err(code::INVALID_SESSION_TIMEOUT)
        );
        let mut none = join("", 10_000);
        none.protocols.clear();
        assert_eq!(groups.join(none, t), Err(code::INCONSISTENT_GROUP_PROTOCOL));
        let mut nameless = join("", 10_000);
        nameless.group = "";
        assert_eq!(groups.join(nameless, t), Err(code::INVALID_GROUP_ID));
        assert_eq!(
            groups.sync("nope", 1, "m", &[], t),
            Err(code::UNKNOWN_MEMBER_ID)
        );
    }
}
