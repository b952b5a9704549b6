use insync_model::{Config, Insync};
use stateright::{Checker, Model};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut c = Config::default();
    for a in &args[1..] {
        let (k, v) = a.split_once('=').unwrap();
        match k {
            "replicas" => c.replicas = v.parse().unwrap(),
            "min_insync" => c.min_insync = v.parse().unwrap(),
            "acks" => c.acks = v.parse().unwrap(),
            "records" => c.records = v.parse().unwrap(),
            "crashes" => c.crashes = v.parse().unwrap(),
            "elections" => c.elections = v.parse().unwrap(),
            "isr" => c.isr_changes = v.parse().unwrap(),
            "consumer" => c.consumer = v.parse().unwrap(),
            "idem" => c.idempotence = v.parse().unwrap(),
            "unclean" => c.unclean_election = v.parse().unwrap(),
            "retries" => c.retries = v.parse().unwrap(),
            "flush" => c.flush = v.parse().unwrap(),
            "trunc" => c.truncation = v.parse().unwrap(),
            _ => panic!("{k}"),
        }
    }
    let m = Insync::new(c.validate().unwrap()).into_model();
    let t = Instant::now();
    let ch = m.checker().spawn_dfs().join();
    println!("unique {} total {} depth {} in {:?}", ch.unique_state_count(), ch.state_count(), ch.max_depth(), t.elapsed());
    let props = ch.model().properties();
    for p in props { println!("{:30} {:?} {}", p.name, p.expectation, ch.discovery(p.name).map(|d| format!("found len {}", d.into_actions().len())).unwrap_or("-".into())); }
}
