//! `insync explore`: stateright's Explorer, speaking Kafka.
//!
//! [`ExplorerModel`] wraps the checker's `ActorModel` and changes only what the Explorer
//! shows: actions and steps in the one-line format of counterexamples
//! ([`insync_model::trace`]), and for every state a picture of the partition (brokers and
//! their logs, the controller, the clients, the messages in flight, the safety properties
//! the state breaks). [`serve_explorer`] puts a page of insync's own in front of stateright's server
//! and forwards the Explorer's JSON API (`/.status`, `/.states/...`) to it; stateright's own
//! page stays at `/stateright/`. [`open`] finds where it opens: a counterexample of
//! `insync explore --path` or of `insync check --explore`.

use anyhow::{bail, Context};
use insync_model::broker::Role as BrokerRole;
use insync_model::node::{InsyncModel, InsyncState};
use insync_model::producer::Outcome;
use insync_model::trace::{actor_name, describe_action, describe_envelope, describe_step};
use stateright::actor::Id;
use stateright::{Expectation, Model, Path, Property};
use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::time::{Duration, Instant};

type Action = <InsyncModel as Model>::Action;
type Condition = fn(&InsyncModel, &InsyncState) -> bool;

/// The checker's model with the Explorer's words and pictures.
pub struct ExplorerModel {
    pub inner: InsyncModel,
    properties: Vec<(Expectation, &'static str, Condition)>,
}

impl ExplorerModel {
    pub fn new(inner: InsyncModel) -> ExplorerModel {
        let properties = inner
            .properties()
            .into_iter()
            .map(|p| (p.expectation, p.name, p.condition))
            .collect();
        ExplorerModel { inner, properties }
    }

    /// The `always` properties that `state` breaks.
    pub fn broken_here(&self, state: &InsyncState) -> Vec<&'static str> {
        self.properties
            .iter()
            .filter(|(e, _, c)| matches!(e, Expectation::Always) && !c(&self.inner, state))
            .map(|(_, name, _)| *name)
            .collect()
    }
}

/// `properties` takes plain `fn` pointers, so each of the inner model's properties is reached
/// through a function of its own that knows its index.
fn condition<const I: usize>(model: &ExplorerModel, state: &InsyncState) -> bool {
    (model.properties[I].2)(&model.inner, state)
}

macro_rules! conditions {
    ($($i:literal)*) => {
        [$(condition::<$i> as fn(&ExplorerModel, &InsyncState) -> bool),*]
    };
}

const CONDITIONS: [fn(&ExplorerModel, &InsyncState) -> bool; 48] = conditions!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23
    24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47
);

impl Model for ExplorerModel {
    type State = InsyncState;
    type Action = Action;

    fn init_states(&self) -> Vec<InsyncState> {
        self.inner.init_states()
    }

    fn actions(&self, state: &InsyncState, actions: &mut Vec<Action>) {
        self.inner.actions(state, actions);
    }

    fn next_state(&self, state: &InsyncState, action: Action) -> Option<InsyncState> {
        self.inner.next_state(state, action)
    }

    fn format_action(&self, action: &Action) -> String {
        describe_action(&self.inner, None, action)
    }

    fn format_step(&self, last_state: &InsyncState, action: Action) -> Option<String> {
        let next = self.inner.next_state(last_state, action.clone());
        Some(describe_step(
            &self.inner,
            last_state,
            &action,
            next.as_ref(),
        ))
    }

    fn as_svg(&self, path: Path<InsyncState, Action>) -> Option<String> {
        Some(picture(self, path.last_state()))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        assert!(
            self.properties.len() <= CONDITIONS.len(),
            "the Explorer relays at most {} properties; raise CONDITIONS",
            CONDITIONS.len()
        );
        self.properties
            .iter()
            .zip(CONDITIONS)
            .map(|((expectation, name, _), condition)| Property {
                expectation: expectation.clone(),
                name,
                condition,
            })
            .collect()
    }

    fn within_boundary(&self, state: &InsyncState) -> bool {
        Model::within_boundary(&self.inner, state)
    }
}

/// Escapes text for HTML element content and quoted attributes (the timeline of `insync-fuzz`
/// uses it too).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The picture's styles, scoped to `.kp` so that it reads the same on insync's page and on
/// stateright's.
const STYLE: &str = "<style>\
.kp{font:13px/1.35 system-ui,sans-serif;color:#1d2430;background:#f7f8fa;padding:10px;border-radius:6px;white-space:normal}\
.kp h4{margin:8px 0 4px;font-size:13px}\
.kp .bad{background:#fde2e1;border:2px solid #c62828;color:#8e1c1c;padding:6px 8px;border-radius:4px;font-weight:600}\
.kp .ok{background:#e3f4e6;border:1px solid #6fae78;color:#245c2d;padding:4px 8px;border-radius:4px}\
.kp .box{background:#fff;border:1px solid #c9ced8;border-radius:4px;padding:6px 8px;margin:6px 0}\
.kp table.log{border-collapse:separate;border-spacing:3px;margin:4px 0}\
.kp table.log th{text-align:left;font-weight:normal;color:#5a6372;padding:0 6px 0 0;white-space:nowrap}\
.kp table.log th.who{font-weight:600;color:#1d2430;vertical-align:top;min-width:11em}\
.kp table.log th.who small{display:block;font-weight:normal;color:#5a6372}\
.kp td.cell{width:44px;height:34px;text-align:center;border:2px solid #7b8798;border-radius:4px;background:#fff;font-family:ui-monospace,monospace}\
.kp td.cell.committed{background:#cfe9d4;border-color:#3f8f4d}\
.kp td.cell.unflushed{border-style:dashed}.kp td.cell.unflushed:not(.committed){background:#fff6d6}\
.kp td.cell small{display:block;color:#5a6372;font-size:11px}\
.kp td.empty{width:44px;height:34px;border:1px dotted #c9ced8;border-radius:4px}.kp td.past{border:none}\
.kp td.mark{font-size:11px;color:#1f4fa8;font-weight:600;text-align:left;white-space:nowrap;vertical-align:top}\
.kp tr.crashed th.who,.kp tr.crashed td.cell{opacity:.45}\
.kp tr.crashed th.who small{color:#c62828;opacity:1}\
.kp .tag{display:inline-block;padding:0 5px;border-radius:3px;background:#e4e8ef;margin-right:4px}\
.kp .tag.leader{background:#1f4fa8;color:#fff}\
.kp .tag.down{background:#c62828;color:#fff}\
.kp ul{margin:2px 0;padding-left:18px}\
.kp code{font-family:ui-monospace,monospace}\
.kp .legend{color:#5a6372;font-size:11px}\
</style>";

/// The partition in one state, as HTML.
pub fn picture(model: &ExplorerModel, state: &InsyncState) -> String {
    let inner = &model.inner;
    let t = inner.cfg.topology;
    let config = &inner.cfg.config;
    let mut h = String::from(STYLE);
    h.push_str("<div class='kp'>");

    let broken = model.broken_here(state);
    if broken.is_empty() {
        h.push_str(
            "<div class='ok verdict'>every <code>always</code> property holds in this state</div>",
        );
    } else {
        let _ = write!(
            h,
            "<div class='bad verdict'>violated in this state: {}</div>",
            broken
                .iter()
                .map(|n| format!("<code class='broken'>{}</code>", esc(n)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // The controller.
    let ctl = usize::from(t.controller());
    if let Some(c) = state.actor_states[ctl].as_controller() {
        let p = c.partition;
        let _ = write!(
            h,
            "<div class='box controller'><b>controller</b>: leader <b>{}</b> · leader epoch {} · \
             partition epoch {} · ISR <b class='isr'>{}</b>",
            p.leader.map_or("none".to_string(), |l| l.to_string()),
            p.leader_epoch,
            p.partition_epoch.0,
            p.isr
        );
        if config.elr {
            let _ = write!(h, " · ELR <b class='elr'>{}</b>", p.elr);
        }
        if !c.fenced.is_empty() {
            let _ = write!(h, " · fenced {}", c.fenced);
        }
        if c.unclean_elections > 0 {
            let _ = write!(h, " · unclean elections {}", c.unclean_elections);
        }
        h.push_str("</div>");
    }

    // One row per broker, its log as cells, offsets aligned across brokers.
    let brokers: Vec<_> = t
        .brokers()
        .filter_map(|b| {
            let i = usize::from(t.broker(b));
            state.actor_states[i]
                .as_broker()
                .map(|s| (b, s, state.crashed[i]))
        })
        .collect();
    let width = brokers
        .iter()
        .map(|(_, s, _)| s.log_end_offset().as_usize())
        .max()
        .unwrap_or(0)
        + 1;
    h.push_str("<table class='log'><tr><th></th>");
    for o in 0..width {
        let _ = write!(h, "<th>offset {o}</th>");
    }
    h.push_str("</tr>");
    for (b, s, crashed) in &brokers {
        let (role, details) = match &s.role {
            BrokerRole::Leader(l) => (
                "<span class='tag leader'>leader</span>".to_string(),
                match l.pending_isr {
                    Some(pending) => format!(" · its ISR {} (asked {pending})", l.isr),
                    None => format!(" · its ISR {}", l.isr),
                },
            ),
            BrokerRole::Follower { leader, truncating } => (
                "<span class='tag'>follower</span>".to_string(),
                format!(
                    " · of {}{}",
                    leader.map_or("no leader".to_string(), |l| l.to_string()),
                    if *truncating { " · truncating" } else { "" }
                ),
            ),
        };
        let up = if *crashed {
            "<span class='tag down'>crashed</span>"
        } else {
            "up"
        };
        let up = format!(" {up}");
        let _ = write!(
            h,
            "<tr class='broker{}'><th class='who' rowspan='2'>{b}<small>{role}{up}<br>\
             epoch {} · incarnation {}{}</small></th>",
            if *crashed { " crashed" } else { "" },
            s.leader_epoch,
            s.incarnation,
            esc(&details),
        );
        let leo = s.log_end_offset().as_usize();
        for (o, r) in s.log.iter().enumerate() {
            let mut class = String::from("cell");
            let mut title = format!("offset {o}, epoch {}, {}", r.leader_epoch, r.value);
            if o < s.high_watermark.as_usize() {
                class.push_str(" committed");
                title.push_str(", below the high watermark");
            }
            if o >= s.flushed.as_usize() {
                class.push_str(" unflushed");
                title.push_str(", not flushed");
            }
            let _ = write!(
                h,
                "<td class='{class}' title='{title}'>{}<small>e{}{}</small></td>",
                esc(&r.value.to_string()),
                r.leader_epoch,
                if o >= s.flushed.as_usize() {
                    " ✱"
                } else {
                    ""
                }
            );
        }
        for o in leo..width {
            // Dotted slots up to the longest log, so that offsets line up across brokers.
            h.push_str(if o + 1 < width {
                "<td class='empty'></td>"
            } else {
                "<td class='empty past'></td>"
            });
        }
        h.push_str("</tr><tr class='marks'>");
        let hw = s.high_watermark.as_usize();
        for o in 0..width {
            let mut marks = Vec::new();
            if o == hw {
                marks.push("▲HW");
            }
            if o == leo {
                marks.push("▲LEO");
            }
            let _ = write!(h, "<td class='mark'>{}</td>", marks.join(" "));
        }
        h.push_str("</tr>");
    }
    h.push_str(
        "</table><div class='legend'>green: below the broker's high watermark · dashed, ✱: \
         not flushed (lost if it crashes) · a crashed broker shows its state before the crash · ▲HW, ▲LEO: the high watermark and the log end offset \
         point at the next offset</div>",
    );

    // The clients.
    let prod = usize::from(t.producer());
    if let Some(p) = state.actor_states[prod].as_producer() {
        h.push_str("<div class='box producer'><b>producer</b>");
        if state.crashed[prod] {
            h.push_str(" <span class='tag down'>crashed</span>");
        }
        let _ = write!(
            h,
            ": sees leader {}",
            p.leader
                .map_or("none".to_string(), |(b, e)| format!("{b} (epoch {e})"))
        );
        if p.in_flight.is_empty() {
            h.push_str(" · nothing in flight");
        } else {
            let reqs: Vec<String> = p
                .in_flight
                .iter()
                .map(|f| {
                    let values: Vec<String> = (f.first..f.first + f.count)
                        .map(|n| format!("v{}", n + 1))
                        .collect();
                    format!("req={} [{}]", f.request.0, values.join(", "))
                })
                .collect();
            let _ = write!(h, " · in flight: {}", esc(&reqs.join("; ")));
        }
        h.push_str("<ul>");
        for (n, o) in p.outcomes.iter().enumerate() {
            let what = match o {
                Some(Outcome::Acked(offset)) => {
                    format!("<b class='acked'>acknowledged at offset {offset}</b>")
                }
                Some(o) => esc(&insync_model::trace::describe_outcome(o)),
                None if (n as u32) < p.next_record => "sent, no answer yet".into(),
                None => "not sent yet".into(),
            };
            let _ = write!(h, "<li>v{}: {what}</li>", n + 1);
        }
        h.push_str("</ul></div>");
    }
    if t.consumer {
        let cons = usize::from(t.consumer());
        if let Some(c) = state.actor_states[cons].as_consumer() {
            h.push_str("<div class='box consumer'><b>consumer</b>");
            if state.crashed[cons] {
                h.push_str(" <span class='tag down'>crashed</span>");
            }
            let read: Vec<String> = c
                .read
                .iter()
                .map(|r| format!("{}@{}", r.value, r.offset))
                .collect();
            let _ = write!(
                h,
                ": position {} · committed offset {} · read [{}] · incarnation {}</div>",
                c.position,
                c.committed,
                esc(&read.join(" ")),
                c.incarnation
            );
        }
    }

    // The network, flow by flow (on the duplicating network, every message sent).
    let mut in_flight: Vec<String> = if state.network.is_ordered() {
        state
            .network
            .flows()
            .iter()
            .flat_map(|f| {
                f.msgs().iter().enumerate().map(move |(n, m)| {
                    let line = describe_envelope(inner, f.src, f.dst, m);
                    if n == 0 {
                        line
                    } else {
                        format!("{line} (queued behind {n})")
                    }
                })
            })
            .collect()
    } else {
        state
            .network
            .iter_all()
            .map(|env| describe_envelope(inner, env.src, env.dst, env.msg))
            .collect()
    };
    let _ = write!(
        h,
        "<div class='box network'><b>messages in flight</b> ({})",
        in_flight.len()
    );
    if model.inner.drops_stale_messages() {
        // Say where the messages a step leaves behind went (`InsyncModel::drop_stale`).
        h.push_str(
            " <small>(a message its receiver will ignore whenever it arrives is taken out at \
             once; <code>--no-reductions</code> keeps it until it arrives)</small>",
        );
    }
    if !in_flight.is_empty() {
        if !state.network.is_ordered() {
            in_flight.sort();
        }
        h.push_str("<ul>");
        for m in in_flight {
            let _ = write!(h, "<li><code>{}</code></li>", esc(&m));
        }
        h.push_str("</ul>");
    }
    h.push_str("</div>");

    let down: Vec<String> = (0..t.actor_count())
        .filter(|&i| state.crashed[i])
        .map(|i| actor_name(inner, Id::from(i)))
        .collect();
    if !down.is_empty() {
        let _ = write!(h, "<div class='legend'>crashed: {}</div>", down.join(", "));
    }
    h.push_str("</div>");
    h
}

/// Where the Explorer opens: the last state of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The Explorer's action indices: the initial state's, then one per step.
    pub indices: Vec<usize>,
    /// The property the path is a counterexample (or, for a `sometimes` property, an example)
    /// of, when it came from a report.
    pub property: Option<String>,
    /// Whether the path is an example of a `sometimes` property rather than a counterexample.
    pub example: bool,
    /// What the path came from, in words: `--path report.json`, `insync check`.
    pub source: String,
}

impl Opened {
    /// `0/3/1`, as in the Explorer's URLs (`#/steps/0/3/1`).
    pub fn encoded(&self) -> String {
        self.indices
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("/")
    }

    /// `the counterexample of acked-writes-durable`, `an example of record-committed`, `the path`.
    pub fn describe(&self) -> String {
        match (&self.property, self.example) {
            (Some(p), false) => format!("the counterexample of {p}"),
            (Some(p), true) => format!("an example of {p}"),
            (None, _) => "the path".to_string(),
        }
    }
}

/// What the Explorer is asked to open.
pub enum OpenFrom {
    /// `insync explore --path FILE`: a report of `insync check --json`, or a path of action
    /// indices.
    File(std::path::PathBuf),
    /// `insync check --explore`: the report the check just made, as its JSON.
    Report(serde_json::Value),
}

/// Finds where the Explorer opens: in a report (`insync check --json`'s, from a file or from
/// the check just run), the path of `property`, or by default of the first violated safety
/// property; in a file of action indices, that path. Checks that a report was made for
/// `config` and that every step exists in this model. `explore --path` and `check --explore`
/// both come here.
pub fn open(
    from: OpenFrom,
    property: Option<&str>,
    model: &ExplorerModel,
    config: &insync_model::Config,
) -> anyhow::Result<Opened> {
    let opened = match from {
        OpenFrom::File(file) => {
            let source = format!("--path {}", file.display());
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("cannot read {source}"))?;
            let trimmed = text.trim();
            if trimmed.starts_with('{') {
                let report: serde_json::Value = serde_json::from_str(trimmed).with_context(|| {
                    format!("{source} is not JSON; give the report of `insync check --json` or a path like 0/3/1")
                })?;
                from_report(source, &report, property, config)?
            } else {
                if let Some(name) = property {
                    bail!(
                        "{source} holds a path of action indices, not a report: --property {name} \
                         picks a property of a report of `insync check --json`"
                    );
                }
                Opened {
                    indices: parse_indices(&source, trimmed)?,
                    property: None,
                    example: false,
                    source,
                }
            }
        }
        OpenFrom::Report(report) => {
            from_report("insync check".to_string(), &report, property, config)?
        }
    };
    replay(&opened.source, model, &opened.indices)?;
    Ok(opened)
}

fn from_report(
    source: String,
    report: &serde_json::Value,
    property: Option<&str>,
    config: &insync_model::Config,
) -> anyhow::Result<Opened> {
    let Some(properties) = report["properties"].as_array() else {
        bail!("{source} has no \"properties\": it is not a report of `insync check --json`");
    };
    if let Some(theirs) = report.get("config") {
        let ours = serde_json::to_value(config).context("encode the configuration")?;
        let differ: Vec<String> = ours
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| theirs.get(k.as_str()) != Some(v))
            .map(|(k, v)| {
                let show = |v: Option<&serde_json::Value>| match v {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => "absent".into(),
                };
                format!(
                    "{k}: {} in the report, {} here",
                    show(theirs.get(k.as_str())),
                    show(Some(v))
                )
            })
            .collect();
        if !differ.is_empty() {
            bail!(
                "{source} was checked with another configuration ({}); run `insync explore` \
                 with the flags that check was given",
                differ.join("; ")
            );
        }
    }
    let name_of = |p: &serde_json::Value| p["name"].as_str().unwrap_or("?").to_string();
    // What can be opened: a violated safety property's counterexample, a reached `sometimes`
    // property's example (both carry an `explorer_path`).
    let openable: Vec<String> = properties
        .iter()
        .filter(|p| p["explorer_path"].is_string())
        .map(name_of)
        .collect();
    let others = if openable.is_empty() {
        "the report has no path to open".to_string()
    } else {
        format!("paths to open: {}", openable.join(", "))
    };
    let chosen = match property {
        Some(name) => {
            let Some(p) = properties.iter().find(|p| p["name"] == name) else {
                let names: Vec<String> = properties.iter().map(name_of).collect();
                bail!(
                    "{source}: no property named {name}; the report's properties are {}",
                    names.join(", ")
                );
            };
            if !p["explorer_path"].is_string() {
                let why = match p["expectation"].as_str() {
                    Some("always") if p["holds"] == true => "it holds: there is no counterexample",
                    Some("sometimes") if p["holds"] == false => {
                        "it was not reached: there is no example"
                    }
                    _ => "the report has no path for it (a report from an older insync?)",
                };
                bail!("{source}: nothing to open for {name}: {why} ({others})");
            }
            p
        }
        None => {
            let violated = properties
                .iter()
                .find(|p| p["expectation"] == "always" && p["holds"] == false);
            let Some(violated) = violated else {
                bail!(
                    "{source}: nothing to open: every safety property holds, so there is no \
                     counterexample ({others}; choose one with --property NAME)"
                );
            };
            if !violated["explorer_path"].is_string() {
                bail!(
                    "{source}: the counterexample of {} has no \"explorer_path\" (the report \
                     is from an older insync); rerun `insync check --json` and pass its output",
                    name_of(violated)
                );
            }
            violated
        }
    };
    let path = chosen["explorer_path"].as_str().unwrap_or_default();
    Ok(Opened {
        indices: parse_indices(&source, path)?,
        property: Some(name_of(chosen)),
        example: chosen["expectation"] == "sometimes",
        source,
    })
}

fn parse_indices(source: &str, text: &str) -> anyhow::Result<Vec<usize>> {
    let path = text.rsplit_once("#/steps/").map_or(text, |(_, p)| p);
    let path = path.trim().trim_matches('/');
    let indices: Result<Vec<usize>, _> = path.split('/').map(|s| s.trim().parse()).collect();
    match indices {
        Ok(i) if !i.is_empty() => Ok(i),
        _ => bail!(
            "{source}: `{}` is neither a report of `insync check --json` nor a path of action \
             indices like 0/3/1",
            if path.len() > 60 { &path[..60] } else { path }
        ),
    }
}

/// Walks the path in `model`, so that a path of another configuration is refused here and not
/// by a panic in the Explorer.
fn replay(name: &str, model: &ExplorerModel, indices: &[usize]) -> anyhow::Result<()> {
    let fix = "it belongs to another configuration: run `insync explore` with the flags of the check that wrote it";
    let init = model.init_states();
    let Some(mut state) = init.get(indices[0]).cloned() else {
        bail!(
            "{name}: initial state {} does not exist ({} here); {fix}",
            indices[0],
            init.len()
        );
    };
    for (step, &i) in indices.iter().enumerate().skip(1) {
        let mut actions = Vec::new();
        model.actions(&state, &mut actions);
        let Some(action) = actions.get(i).cloned() else {
            bail!(
                "{name}: step {step} takes action {i}, but that state has {} actions; {fix}",
                actions.len()
            );
        };
        if let Some(next) = model.next_state(&state, action) {
            state = next;
        }
    }
    Ok(())
}

const PAGE: &str = include_str!("explore.html");

/// Serves the Explorer on `addr`: insync's page at `/`, stateright's at `/stateright/`, and
/// stateright's JSON API, which answers on a loopback port of its own. Returns only on error.
pub fn serve_explorer(
    model: ExplorerModel,
    addr: &str,
    summary: String,
    opened: Option<Opened>,
) -> anyhow::Result<()> {
    let internal = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")
            .context("find a loopback port for stateright's Explorer")?;
        l.local_addr()?.to_string()
    };
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}; choose another --addr"))?;
    {
        let internal = internal.clone();
        std::thread::spawn(move || {
            model.checker().serve(internal.as_str());
        });
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while forward(&internal, "GET", "/.status").is_err() {
        if Instant::now() > deadline {
            bail!("stateright's Explorer did not start on {internal}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = serde_json::json!({
        "summary": summary,
        "start": opened.as_ref().map(Opened::encoded),
        "property": opened.as_ref().and_then(|o| o.property.clone()),
        "opened": opened.as_ref().map(Opened::describe),
        "source": opened.as_ref().map(|o| o.source.clone()),
    })
    .to_string();
    loop {
        let rq = match server.recv() {
            Ok(rq) => rq,
            Err(e) => bail!("the Explorer stopped: {e}"),
        };
        let internal = internal.clone();
        let info = info.clone();
        std::thread::spawn(move || {
            let _ = respond(rq, &internal, &info);
        });
    }
}

fn header(value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes("Content-Type", value).expect("a valid header")
}

fn respond(rq: tiny_http::Request, internal: &str, info: &str) -> std::io::Result<()> {
    let url = rq.url().to_string();
    let path = url.split('?').next().unwrap_or("/");
    let method = rq.method().to_string();
    match path {
        "/" | "/index.html" => rq.respond(
            tiny_http::Response::from_string(PAGE).with_header(header("text/html; charset=utf-8")),
        ),
        "/.insync" => rq.respond(
            tiny_http::Response::from_string(info).with_header(header("application/json")),
        ),
        _ => {
            let (target, kind) = if let Some(rest) = path.strip_prefix("/stateright") {
                let rest = if rest.is_empty() { "/" } else { rest };
                let kind = match rest.rsplit('.').next() {
                    Some("js") => "text/javascript",
                    Some("css") => "text/css",
                    _ => "text/html; charset=utf-8",
                };
                (rest.to_string(), kind)
            } else if path.starts_with("/.") {
                (url.clone(), "application/json")
            } else {
                return rq.respond(tiny_http::Response::empty(404));
            };
            match forward(internal, &method, &target) {
                Ok((code, body)) => rq.respond(
                    tiny_http::Response::from_data(body)
                        .with_status_code(code)
                        .with_header(header(kind)),
                ),
                Err(e) => rq.respond(
                    tiny_http::Response::from_string(format!("stateright's Explorer: {e}"))
                        .with_status_code(502),
                ),
            }
        }
    }
}

/// One request to stateright's server; its status and body.
fn forward(internal: &str, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = std::net::TcpStream::connect(internal)?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {internal}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "a malformed response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&response[..split]);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    Ok((code, response[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use insync_model::config::HwRule;
    use insync_model::{Config, Insync};
    use stateright::actor::ActorModelAction;

    fn model(config: Config) -> ExplorerModel {
        ExplorerModel::new(Insync::new(config.validate().expect("valid")).into_model())
    }

    fn small() -> Config {
        Config {
            records: 1,
            crashes: 0,
            consumer: false,
            ..Config::default()
        }
    }

    #[test]
    fn steps_read_as_in_counterexamples() {
        let m = model(small());
        let init = m.init_states().remove(0);
        let mut actions = Vec::new();
        m.actions(&init, &mut actions);
        for action in actions {
            let next = m.next_state(&init, action.clone());
            let line = describe_step(&m.inner, &init, &action, next.as_ref());
            assert_eq!(m.format_step(&init, action.clone()), Some(line.clone()));
            // Without the state, the action's line is the step's line before its effects.
            let bare = m.format_action(&action);
            assert!(
                line.starts_with(&bare) || matches!(action, ActorModelAction::Crash(_)),
                "{bare} / {line}"
            );
        }
    }

    #[test]
    fn every_property_is_relayed_with_its_verdict() {
        let m = model(small());
        let init = m.init_states().remove(0);
        let relayed = m.properties();
        assert_eq!(relayed.len(), m.inner.properties().len());
        for (ours, theirs) in relayed.iter().zip(m.inner.properties()) {
            assert_eq!(ours.name, theirs.name);
            assert_eq!(
                (ours.condition)(&m, &init),
                (theirs.condition)(&m.inner, &init)
            );
        }
        assert!(m.broken_here(&init).is_empty());
    }

    #[test]
    fn the_picture_writes_sets_as_sets_and_shows_the_elr_when_enabled() {
        let init = |m: &ExplorerModel| m.init_states().remove(0);
        let plain = model(small());
        let html = picture(&plain, &init(&plain));
        assert!(html.contains("ISR <b class='isr'>{0,1,2}</b>"), "{html}");
        assert!(!html.contains("ELR"), "{html}");
        assert!(!html.contains("BrokerSet"), "{html}");
        let elr = model(Config {
            elr: true,
            hw_rule: HwRule::MinIsr,
            ..small()
        });
        let html = picture(&elr, &init(&elr));
        assert!(html.contains("ELR <b class='elr'>{}</b>"), "{html}");
    }

    #[test]
    fn a_path_is_read_from_indices_or_an_explorer_url() {
        let file = "--path p.txt";
        assert_eq!(parse_indices(file, "0/3/1").unwrap(), vec![0, 3, 1]);
        assert_eq!(
            parse_indices(file, "http://127.0.0.1:3000/#/steps/0/3/1/\n").unwrap(),
            vec![0, 3, 1]
        );
        assert!(parse_indices(file, "").is_err());
        assert!(parse_indices(file, "0/x").is_err());
    }

    #[test]
    fn a_report_opens_the_first_violated_safety_property_or_the_one_asked() {
        let report = serde_json::json!({"properties": [
            {"name": "acked-writes-durable", "expectation": "always", "holds": true},
            {"name": "isr-complete", "expectation": "always", "holds": false, "explorer_path": "0/2"},
            {"name": "strong-isr", "expectation": "always", "holds": false, "explorer_path": "0/3"},
            {"name": "record-committed", "expectation": "sometimes", "holds": true, "explorer_path": "0/1"},
            {"name": "leader-changed", "expectation": "sometimes", "holds": false},
        ]});
        let open = |property| from_report("insync check".into(), &report, property, &small());
        let first = open(None).unwrap();
        assert_eq!(first.indices, vec![0, 2]);
        assert_eq!(first.describe(), "the counterexample of isr-complete");
        assert_eq!(open(Some("strong-isr")).unwrap().indices, vec![0, 3]);
        let example = open(Some("record-committed")).unwrap();
        assert_eq!(
            (example.describe(), example.indices),
            ("an example of record-committed".to_string(), vec![0, 1])
        );
        let err = open(Some("acked-writes-durable")).unwrap_err().to_string();
        assert!(
            err.contains("it holds: there is no counterexample"),
            "{err}"
        );
        let err = open(Some("leader-changed")).unwrap_err().to_string();
        assert!(err.contains("it was not reached"), "{err}");
        let err = open(Some("no-such")).unwrap_err().to_string();
        assert!(err.contains("no property named no-such"), "{err}");
        let safe = serde_json::json!({"properties": [
            {"name": "isr-complete", "expectation": "always", "holds": true},
            {"name": "record-committed", "expectation": "sometimes", "holds": true, "explorer_path": "0/1"},
        ]});
        let err = from_report("insync check".into(), &safe, None, &small())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing to open"), "{err}");
        assert!(err.contains("paths to open: record-committed"), "{err}");
    }
}
