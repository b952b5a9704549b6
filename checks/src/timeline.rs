//! A history drawn as a Jepsen-style timeline: one self-contained HTML page (no script, no
//! asset from outside) for `insync-fuzz replay FILE --html OUT.html`.
//!
//! Time runs down the page, one row per entry of the history (its index; the virtual time is
//! written beside each row), so that operations that happen in the same millisecond stay
//! apart. Each process has a lane: a client operation is a bar from its invocation to its
//! completion, coloured by outcome (ok, fail, info = indeterminate, or no answer at all) and
//! labelled with the history's own words ([`Op::describe`]); sends in flight together sit
//! side by side. A fault is a bar in the nemesis lane from the step that caused it to the
//! step that repaired it (or to the end), and a shaded band across every lane. Every anomaly
//! the checker named is numbered (`A1`, `A2`, ...), marked on the operations that show it,
//! and listed in a legend with those operations' lines.

use crate::checker::Verdict;
use crate::history::{Fun, History, Op, OpType, Process};
use insync::explore::esc;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// Height of one history entry, in pixels.
const ROW_PX: usize = 24;
/// Width of one bar column of a client lane, in pixels.
const CLIENT_COLUMN_PX: usize = 200;
/// Width of one bar column of the nemesis lane, in pixels.
const FAULT_COLUMN_PX: usize = 260;
/// Width of the time gutter, in pixels.
const GUTTER_PX: usize = 110;

/// How a bar ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Fail,
    Info,
    /// Invoked, never completed in the history.
    Pending,
    /// A fault, from its step to its repair.
    Fault,
    /// A repair, or a fault step that lasts no time.
    Repair,
}

impl Outcome {
    fn class(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
            Outcome::Fault => "fault",
            Outcome::Repair => "repair",
        }
    }
}

/// One bar: the rows it spans (first and last history index), its label and its tooltip.
#[derive(Clone, Debug)]
struct Bar {
    process: Process,
    first: usize,
    last: usize,
    /// The history entries it stands for (invocation and completion).
    ops: Vec<usize>,
    outcome: Outcome,
    label: String,
    title: String,
}

/// The faults a nemesis line starts and the ones it ends, by a key naming what is faulty
/// (`broker 1`, `partition`, `drop`, ...). Keyed on the runner's own wording.
fn fault_effect(what: &str) -> (Option<String>, Vec<String>) {
    let word_after = |prefix: &str| {
        what.strip_prefix(prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string)
    };
    if what.starts_with("drain") {
        return (None, vec!["*".to_string()]);
    }
    if let Some(b) = word_after("crash broker ") {
        return (Some(format!("broker {b}")), vec![]);
    }
    if let Some(b) = word_after("restart broker ") {
        return (None, vec![format!("broker {b}")]);
    }
    if let Some(b) = word_after("slow broker ") {
        // A slower link replaces the earlier one.
        let key = format!("slow {b}");
        return (Some(key.clone()), vec![key]);
    }
    match what {
        "heal the partition" => (None, vec!["partition".into()]),
        "crash the consumer" => (Some("consumer".into()), vec![]),
        "restart the consumer" => (None, vec!["consumer".into()]),
        "clear drops and duplicates" => (
            None,
            vec!["drop".into(), "duplicate".into(), "reordering".into()],
        ),
        _ if what.starts_with("partition ") => (Some("partition".into()), vec!["partition".into()]),
        _ if what.starts_with("drop ") => (Some("drop".into()), vec!["drop".into()]),
        _ if what.starts_with("duplicate ") => (Some("duplicate".into()), vec!["duplicate".into()]),
        // On a duplicating network a clear also ends the reordering delay; a FIFO delay stays
        // until the drain.
        _ if what.starts_with("delay ") && what.ends_with("(reordering)") => (
            Some("reordering".into()),
            vec!["reordering".into(), "delay".into()],
        ),
        _ if what.starts_with("delay ") => (Some("delay".into()), vec!["delay".into()]),
        _ => (None, vec![]),
    }
}

/// The bars of a history: client operations paired invocation to completion, faults from
/// their step to their repair, the final read.
fn bars(history: &History) -> Vec<Bar> {
    let last_row = history.ops.len().saturating_sub(1);
    let mut bars: Vec<Bar> = Vec::new();
    // Open invocations: sends by value, the consumer's one at a time.
    let mut sends: BTreeMap<u64, &Op> = BTreeMap::new();
    let mut consumer: Option<&Op> = None;
    // Open faults: key -> index of its bar.
    let mut faults: BTreeMap<String, usize> = BTreeMap::new();
    let client = |invoke: Option<&Op>, done: &Op, outcome: Outcome| {
        let first = invoke.map_or(done.index, |i| i.index);
        let mut ops: Vec<usize> = invoke.map(|i| i.index).into_iter().collect();
        ops.push(done.index);
        let title: Vec<String> = invoke
            .into_iter()
            .chain([done])
            .map(|o| o.to_string().trim().to_string())
            .collect();
        Bar {
            process: done.process,
            first,
            last: done.index,
            ops,
            outcome,
            label: done.describe(),
            title: title.join("\n"),
        }
    };
    for op in &history.ops {
        let outcome = match op.op_type {
            OpType::Ok => Outcome::Ok,
            OpType::Fail => Outcome::Fail,
            OpType::Info => Outcome::Info,
            OpType::Invoke => Outcome::Pending,
        };
        match (&op.fun, op.op_type) {
            (Fun::Send { value, .. }, OpType::Invoke) => {
                sends.insert(*value, op);
            }
            (Fun::Send { value, .. }, _) => {
                let invoke = sends.remove(value);
                bars.push(client(invoke, op, outcome));
            }
            (Fun::Poll { .. } | Fun::Commit { .. }, OpType::Invoke) => {
                if let Some(open) = consumer.replace(op) {
                    bars.push(pending(open, last_row));
                }
            }
            (Fun::Poll { .. } | Fun::Commit { .. }, _) => {
                let invoke = consumer.take();
                bars.push(client(invoke, op, outcome));
            }
            (Fun::Nemesis { .. } | Fun::Disk { .. }, _) => {
                let what = match &op.fun {
                    Fun::Nemesis { what } => what.clone(),
                    _ => op.describe(),
                };
                let what = &what;
                let (starts, ends) = fault_effect(what);
                for key in &ends {
                    let ended: Vec<String> = faults
                        .keys()
                        .filter(|k| key == "*" || *k == key)
                        .cloned()
                        .collect();
                    for k in ended {
                        if let Some(at) = faults.remove(&k) {
                            let bar = &mut bars[at];
                            // A fault replaced at once by the next one lasts one row.
                            bar.last = op.index.saturating_sub(1).max(bar.first);
                            let _ = write!(bar.title, "\nuntil {}", op.to_string().trim());
                        }
                    }
                }
                let line = op.to_string().trim().to_string();
                let bar = Bar {
                    process: Process::Nemesis,
                    first: op.index,
                    last: if starts.is_some() { last_row } else { op.index },
                    ops: vec![op.index],
                    outcome: if starts.is_some() {
                        Outcome::Fault
                    } else {
                        Outcome::Repair
                    },
                    label: what.clone(),
                    title: line,
                };
                if let Some(key) = starts {
                    faults.insert(key, bars.len());
                }
                bars.push(bar);
            }
            (Fun::FinalRead { .. }, _) => bars.push(client(None, op, outcome)),
        }
    }
    for open in sends.into_values().chain(consumer) {
        bars.push(pending(open, last_row));
    }
    bars.sort_by_key(|b| (b.first, b.last));
    bars
}

/// An invocation without a completion: a bar to the end of the history.
fn pending(invoke: &Op, last_row: usize) -> Bar {
    Bar {
        process: invoke.process,
        first: invoke.index,
        last: last_row.max(invoke.index),
        ops: vec![invoke.index],
        outcome: Outcome::Pending,
        label: format!("{} (no answer)", invoke.describe()),
        title: format!(
            "{}\nno completion in the history",
            invoke.to_string().trim()
        ),
    }
}

/// Columns within a lane: each bar takes the first column free at its first row.
fn columns(bars: &[&Bar]) -> (Vec<usize>, usize) {
    let mut ends: Vec<usize> = Vec::new();
    let mut placed = Vec::with_capacity(bars.len());
    for bar in bars {
        let column = match ends.iter().position(|&end| end < bar.first) {
            Some(c) => c,
            None => {
                ends.push(0);
                ends.len() - 1
            }
        };
        ends[column] = bar.last;
        placed.push(column);
    }
    (placed, ends.len().max(1))
}

const STYLE: &str = "<style>\
body{margin:0;font:13px/1.35 system-ui,sans-serif;color:#1d2430;background:#eef0f4}\
header{background:#1d2430;color:#fff;padding:8px 14px}header h1{font-size:17px;margin:0 0 2px}\
header p{margin:0;color:#c9d2e0;font-size:12px}\
main{padding:10px 14px}\
section{background:#fff;border:1px solid #d3d8e0;border-radius:6px;padding:8px 12px;margin-bottom:10px}\
h2{font-size:14px;margin:2px 0 6px}\
code,pre,.bar,.time{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}\
pre{font-size:11.5px;background:#f3f5f9;padding:6px;overflow:auto}\
.key span{display:inline-block;padding:1px 6px;margin-right:6px;border-radius:3px}\
#timeline{position:relative;overflow:visible}\
.lanehead{position:absolute;top:0;height:22px;font-weight:600;border-bottom:2px solid #7b8798;padding-left:4px;box-sizing:border-box}\
.lane{position:absolute;top:24px;border-left:1px solid #d3d8e0}\
.time{position:absolute;left:0;width:104px;text-align:right;color:#5a6372;font-size:11px;border-top:1px dotted #e4e8ef}\
.band{position:absolute;background:rgba(198,40,40,.07);border-top:1px dashed rgba(198,40,40,.5);border-bottom:1px dashed rgba(198,40,40,.5)}\
.bar{position:absolute;box-sizing:border-box;border:1px solid;border-radius:4px;padding:2px 5px;font-size:11.5px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis}\
.bar.tall{white-space:normal;overflow-wrap:anywhere}\
.bar.ok{background:#cfe9d4;border-color:#3f8f4d}\
.bar.fail{background:#f6c9c6;border-color:#b3261e}\
.bar.info{background:#fff0b8;border-color:#b58a00}\
.bar.pending{background:#e4e8ef;border-color:#7b8798;border-style:dashed}\
.bar.fault{background:#f3d9d8;border-color:#c62828;color:#8e1c1c}\
.bar.repair{background:#dbe7fb;border-color:#1f4fa8}\
.bar.anomalous{outline:3px solid #7b1fa2;outline-offset:1px;z-index:2}\
.mark{display:inline-block;background:#7b1fa2;color:#fff;border-radius:3px;padding:0 4px;margin-right:4px;font-weight:700;font-family:system-ui,sans-serif}\
#anomalies li{margin:6px 0}#anomalies ul{margin:2px 0;padding-left:18px;list-style:none}\
</style>";

/// The page: a title, a few lines about the run, the timeline, the anomalies, and `details`
/// (label, text) shown folded at the bottom.
pub fn render_timeline(
    history: &History,
    verdict: &Verdict,
    title: &str,
    about: &[String],
    details: &[(&str, String)],
) -> String {
    let bars = bars(history);
    // Anomaly numbers of each history entry.
    let mut marks: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (n, a) in verdict.anomalies.iter().enumerate() {
        for &op in &a.ops {
            marks.entry(op).or_default().insert(n + 1);
        }
    }

    let mut h =
        String::from("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    let _ = writeln!(h, "<title>{}</title>", esc(title));
    h.push_str(STYLE);
    h.push_str("\n</head>\n<body>\n<header>");
    let _ = write!(h, "<h1>{}</h1>", esc(title));
    for line in about {
        let _ = write!(h, "<p>{}</p>", esc(line));
    }
    h.push_str("</header>\n<main>\n");

    // The verdict and the legend of anomalies.
    h.push_str("<section id=\"anomalies\"><h2>Anomalies</h2>");
    let _ = write!(
        h,
        "<p>{} acknowledged, {} failed, {} indeterminate sends; {} records read.</p>",
        verdict.acknowledged, verdict.failed, verdict.indeterminate, verdict.read
    );
    if verdict.anomalies.is_empty() {
        h.push_str("<p class=\"none\">The checker names no anomaly in this history.</p>");
    } else {
        h.push_str("<ol>");
        for (n, a) in verdict.anomalies.iter().enumerate() {
            let _ = write!(
                h,
                "<li class=\"anomaly\" id=\"a{}\"><span class=\"mark\">A{}</span><b>{}</b>: {}<ul>",
                n + 1,
                n + 1,
                esc(a.kind.name()),
                esc(&a.about)
            );
            for &op in &a.ops {
                if let Some(op) = history.ops.get(op) {
                    let _ = write!(h, "<li><code>{}</code></li>", esc(op.to_string().trim()));
                }
            }
            h.push_str("</ul></li>");
        }
        h.push_str("</ol>");
    }
    h.push_str("</section>\n");

    // The timeline.
    h.push_str(
        "<section><h2>Timeline</h2><p class=\"key\">time runs down, one row per history entry \
         · <span class=\"bar ok\" style=\"position:static\">ok</span><span class=\"bar fail\" \
         style=\"position:static\">fail</span><span class=\"bar info\" style=\"position:static\">\
         info (indeterminate)</span><span class=\"bar pending\" style=\"position:static\">no \
         answer</span><span class=\"bar fault\" style=\"position:static\">fault, until \
         repaired</span><span class=\"bar repair\" style=\"position:static\">repair</span>\
         <span class=\"mark\">A1</span>an anomaly's operation</p>",
    );
    let lanes: Vec<(Process, &str)> = [
        (Process::Producer, "producer"),
        (Process::Consumer, "consumer"),
        (Process::Final, "final read"),
        (Process::Nemesis, "nemesis (faults)"),
    ]
    .into_iter()
    .filter(|(p, _)| {
        *p == Process::Producer
            || *p == Process::Nemesis
            || history.ops.iter().any(|o| o.process == *p)
    })
    .collect();
    let rows = history.ops.len().max(1);
    let height = rows * ROW_PX + 24;
    let mut lane_html = String::new();
    let mut x = GUTTER_PX;
    for (process, name) in &lanes {
        let in_lane: Vec<&Bar> = bars.iter().filter(|b| b.process == *process).collect();
        let (placed, count) = columns(&in_lane);
        let column_px = if *process == Process::Nemesis {
            FAULT_COLUMN_PX
        } else {
            CLIENT_COLUMN_PX
        };
        let width = count * column_px;
        let _ = write!(
            lane_html,
            "<div class=\"lanehead\" style=\"left:{x}px;width:{width}px\">{}</div>\
             <div class=\"lane {}\" data-lane=\"{}\" style=\"left:{x}px;width:{width}px;height:{}px\">",
            esc(name),
            process.name(),
            process.name(),
            rows * ROW_PX
        );
        for (bar, column) in in_lane.iter().zip(placed) {
            let anomalies: BTreeSet<usize> = bar
                .ops
                .iter()
                .filter_map(|op| marks.get(op))
                .flatten()
                .copied()
                .collect();
            let badges: String = anomalies
                .iter()
                .map(|n| format!("<span class=\"mark\">A{n}</span>"))
                .collect();
            let ops: Vec<String> = bar.ops.iter().map(usize::to_string).collect();
            let _ = write!(
                lane_html,
                "<div class=\"bar {}{}{}\" data-ops=\"{}\" title=\"{}\" \
                 style=\"top:{}px;left:{}px;width:{}px;height:{}px\">{badges}{}</div>",
                bar.outcome.class(),
                if anomalies.is_empty() {
                    ""
                } else {
                    " anomalous"
                },
                if bar.last > bar.first { " tall" } else { "" },
                ops.join(" "),
                esc(&bar.title),
                bar.first * ROW_PX + 1,
                column * column_px + 3,
                column_px - 6,
                (bar.last + 1 - bar.first) * ROW_PX - 2,
                esc(&bar.label)
            );
        }
        lane_html.push_str("</div>");
        x += width + 12;
    }
    let _ = write!(
        h,
        "<div id=\"timeline\" style=\"height:{height}px;width:{x}px\">"
    );
    // Faults shade every lane while they last.
    for bar in bars.iter().filter(|b| b.outcome == Outcome::Fault) {
        let _ = write!(
            h,
            "<div class=\"band\" title=\"{}\" style=\"top:{}px;left:{GUTTER_PX}px;width:{}px;height:{}px\"></div>",
            esc(&bar.title),
            24 + bar.first * ROW_PX,
            x - GUTTER_PX,
            (bar.last + 1 - bar.first) * ROW_PX
        );
    }
    h.push_str("<div class=\"lanehead\" style=\"left:0;width:104px\">time</div>");
    for op in &history.ops {
        let _ = write!(
            h,
            "<div class=\"time\" style=\"top:{}px;height:{}px\">#{} · {}ms</div>",
            24 + op.index * ROW_PX,
            ROW_PX,
            op.index,
            op.at_ms
        );
    }
    h.push_str(&lane_html);
    h.push_str("</div></section>\n");

    for (label, text) in details {
        let _ = writeln!(
            h,
            "<section><details><summary>{}</summary><pre>{}</pre></details></section>",
            esc(label),
            esc(text)
        );
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::{check_history, AnomalyKind};
    use crate::history::Builder;

    /// acks=1 losing a write: send 1 acknowledged at offset 0, the leader crashes, send 2
    /// takes offset 0 on the new leader, the final read holds only 2.
    fn lost_write() -> History {
        Builder::new()
            .send_ok(1, 0)
            .nemesis("crash broker 0 (the leader)")
            .send_ok(2, 0)
            .send_invoke(3)
            .poll(&[(0, 2)])
            .nemesis("restart broker 0")
            .nemesis("partition {b1,b0} | {b2,ctl}")
            .nemesis("heal the partition")
            .nemesis("slow broker 2 by 50ms")
            .nemesis(
                "drain: heal partitions, end drops, duplicates, delays and slow links, restart what is down",
            )
            .final_read(1, &[(0, 2)])
            .build()
    }

    fn page(history: &History) -> String {
        render_timeline(
            history,
            &check_history(history),
            "a <test> & more",
            &[],
            &[],
        )
    }

    #[test]
    fn every_operation_is_a_bar_in_its_lane() {
        let history = lost_write();
        let bars = bars(&history);
        // Every history entry belongs to exactly one bar.
        let mut covered: Vec<usize> = bars.iter().flat_map(|b| b.ops.clone()).collect();
        covered.sort_unstable();
        assert_eq!(covered, (0..history.ops.len()).collect::<Vec<_>>());
        let html = page(&history);
        for op in &history.ops {
            if op.op_type != OpType::Invoke {
                assert!(html.contains(&esc(&op.describe())), "{op} is not drawn");
            }
        }
        assert_eq!(
            html.matches("<div class=\"bar ").count(),
            bars.len(),
            "{html}"
        );
        for lane in ["producer", "consumer", "nemesis", "final"] {
            assert!(html.contains(&format!("data-lane=\"{lane}\"")), "{lane}");
        }
        // The send invoked and never answered runs to the end.
        let pending = bars
            .iter()
            .find(|b| b.outcome == Outcome::Pending)
            .expect("a pending send");
        assert_eq!(pending.label, "send 3 (no answer)");
        assert_eq!(pending.last, history.ops.len() - 1);
        // A send is one bar from its invocation to its completion.
        let first = &bars[0];
        assert_eq!(
            (first.first, first.last, first.outcome),
            (0, 1, Outcome::Ok)
        );
        assert_eq!(first.label, "send 1 @ offset 0");
    }

    #[test]
    fn outcomes_have_their_colour() {
        let history = Builder::new()
            .send_ok(1, 0)
            .send_fail(2, "NOT_ENOUGH_REPLICAS")
            .send_info(3, "REQUEST_TIMED_OUT")
            .build();
        // Without the verdict (unseen sends would be marked).
        let html = render_timeline(&history, &Verdict::default(), "t", &[], &[]);
        assert!(
            html.contains("<div class=\"bar ok tall\" data-ops=\"0 1\""),
            "{html}"
        );
        assert!(
            html.contains("<div class=\"bar fail tall\" data-ops=\"2 3\""),
            "{html}"
        );
        assert!(
            html.contains("<div class=\"bar info tall\" data-ops=\"4 5\""),
            "{html}"
        );
        assert!(html.contains("send 2 (NOT_ENOUGH_REPLICAS)"), "{html}");
    }

    #[test]
    fn faults_last_until_their_repair_and_shade_every_lane() {
        let history = lost_write();
        let bars = bars(&history);
        let fault = |label: &str| {
            bars.iter()
                .find(|b| b.label.starts_with(label))
                .unwrap_or_else(|| panic!("no bar {label}"))
        };
        let crash = fault("crash broker 0");
        assert_eq!(crash.outcome, Outcome::Fault);
        let restart = fault("restart broker 0");
        assert_eq!(restart.outcome, Outcome::Repair);
        assert_eq!(
            crash.last,
            restart.first - 1,
            "the crash lasts until the restart"
        );
        let partition = fault("partition");
        assert_eq!(partition.last + 1, fault("heal the partition").first);
        // Nothing repairs a slow link but the drain.
        assert_eq!(fault("slow broker 2").last + 1, fault("drain").first);
        let html = page(&history);
        assert_eq!(html.matches("<div class=\"band\"").count(), 3, "{html}");
        assert!(html.contains("until "), "{html}");
    }

    #[test]
    fn an_anomaly_is_marked_on_its_operations_and_listed() {
        let history = lost_write();
        let verdict = check_history(&history);
        let lost = verdict.first(AnomalyKind::LostWrite).expect("a lost write");
        let html = page(&history);
        let n = verdict
            .anomalies
            .iter()
            .position(|a| a == lost)
            .expect("listed")
            + 1;
        assert!(
            html.contains(&format!(
                "<span class=\"mark\">A{n}</span><b>lost-write</b>"
            )),
            "{html}"
        );
        for op in &lost.ops {
            // Each of its operations is listed in the legend, in the history's words ...
            let line = esc(history.ops[*op].to_string().trim());
            assert!(
                html.contains(&format!("<li><code>{line}</code></li>")),
                "{line}"
            );
            // ... and its bar carries the mark.
            let bar = html
                .split("<div class=\"bar ")
                .skip(1)
                .find(|b| {
                    b.split_once("data-ops=\"")
                        .and_then(|(_, rest)| rest.split_once('"'))
                        .is_some_and(|(ops, _)| ops.split(' ').any(|o| o == op.to_string()))
                })
                .unwrap_or_else(|| panic!("no bar for op {op}"));
            assert!(bar.contains("anomalous"), "{bar}");
            assert!(
                bar.contains(&format!("<span class=\"mark\">A{n}</span>")),
                "{bar}"
            );
        }
        // An operation no anomaly names carries no mark.
        let clean = check_history(&Builder::new().send_ok(1, 0).poll(&[(0, 1)]).build());
        assert!(clean.anomalies.is_empty());
        let html = render_timeline(
            &Builder::new().send_ok(1, 0).poll(&[(0, 1)]).build(),
            &clean,
            "t",
            &[],
            &[],
        );
        assert!(!html.contains(" anomalous\""), "{html}");
        assert!(html.contains("names no anomaly"), "{html}");
    }

    #[test]
    fn text_is_escaped() {
        let history = Builder::new()
            .nemesis("<script>alert('x')</script>")
            .build();
        let html = render_timeline(
            &history,
            &check_history(&history),
            "a <test> & more",
            &["<b>about</b>".to_string()],
            &[("plan <1>", "a & b".to_string())],
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("<h1>a &lt;test&gt; &amp; more</h1>"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;about&lt;/b&gt;"), "{html}");
        assert!(
            html.contains("<summary>plan &lt;1&gt;</summary><pre>a &amp; b</pre>"),
            "{html}"
        );
        // Self-contained: nothing is fetched.
        assert!(!html.contains("src="), "{html}");
        assert!(!html.contains("href="), "{html}");
    }
}
