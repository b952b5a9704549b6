//! What the actors' unit tests share: reading the commands a handler emitted.

use crate::msg::{Msg, Timer};
use crate::node::Node;
use stateright::actor::{Command, Out};

/// The messages a handler sent, as (destination index, message), in order.
pub fn sent(o: &Out<Node>) -> Vec<(usize, Msg)> {
    o.iter()
        .filter_map(|c| match c {
            Command::Send(dst, m) => Some((usize::from(*dst), m.clone())),
            _ => None,
        })
        .collect()
}

/// Whether a handler armed `timer`.
pub fn sets(o: &Out<Node>, timer: Timer) -> bool {
    o.iter()
        .any(|c| matches!(c, Command::SetTimer(t, _) if *t == timer))
}
