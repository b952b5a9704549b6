//! Scenario files (`model/testdata/**/*.txt`): a trace written the way a KIP writes one, that
//! the model must reproduce line for line.
//!
//! ```text
//! # What the scenario shows, and the KIP or bug behind it (any number of `#` lines).
//! config: --acks 1 --records 1 --crashes 0 --no-consumer
//! 1. prod -> b0 Produce [v1] acks=1 req=0; broker 0 appends v1 at offset 0
//! violated: none
//! 2. ...
//! violated: acked-writes-durable
//! final state:
//!   controller: leader=1 epoch=2 isr={1,2}
//! ```
//!
//! `config:` holds `insync check` flags (paste them into a shell to check the configuration).
//! Each numbered line is a step as counterexamples print it: the step taken is the enabled
//! action whose line it is, effects included. `violated:` names every safety property broken
//! in the state reached so far (`none` if none). `final state:` is the state at the end, as a
//! counterexample's final state prints. A file passes when replaying it writes it back
//! unchanged.
//!
//! With `INSYNC_REGEN=1` the replay takes each step by its action alone (the part before the
//! first `;`), and the file is rewritten with what the model now says: effects, verdicts and
//! final state. A rule changed on purpose is then reviewed as a diff of these files.

use insync_model::properties;
use insync_model::trace::{describe_action, describe_state, describe_step};
use insync_model::{Config, Insync, InsyncModel, InsyncState};
use stateright::{Expectation, Model};
use std::path::{Path, PathBuf};

/// Where the scenario files live.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/testdata")
}

/// Whether this run rewrites scenario files (`INSYNC_REGEN=1`).
pub fn regenerating() -> bool {
    std::env::var_os("INSYNC_REGEN").is_some_and(|v| v != "0")
}

#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// A `#` line or a blank line, kept where it is.
    Comment(String),
    /// A step without its number.
    Step(String),
    /// The safety properties broken at this point, sorted.
    Violated(Vec<String>),
    /// The final state's lines.
    FinalState(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioFile {
    pub flags: Vec<String>,
    pub lines: Vec<Line>,
}

impl ScenarioFile {
    pub fn parse(text: &str) -> Result<ScenarioFile, String> {
        let mut flags = None;
        let mut lines = Vec::new();
        let mut rows = text.lines().enumerate().peekable();
        while let Some((n, row)) = rows.next() {
            let at = |what: String| format!("line {}: {what}", n + 1);
            if row.starts_with('#') || row.trim().is_empty() {
                lines.push(Line::Comment(row.to_string()));
            } else if let Some(rest) = row.strip_prefix("config:") {
                flags = Some(rest.split_whitespace().map(str::to_string).collect());
            } else if let Some(rest) = row.strip_prefix("violated:") {
                let mut names: Vec<String> = rest
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty() && s != "none")
                    .collect();
                names.sort();
                lines.push(Line::Violated(names));
            } else if row == "final state:" {
                let mut state = Vec::new();
                while let Some((_, next)) = rows.peek() {
                    let Some(line) = next.strip_prefix("  ") else {
                        break;
                    };
                    state.push(line.to_string());
                    rows.next();
                }
                lines.push(Line::FinalState(state));
            } else {
                let (number, step) = row.split_once(". ").ok_or_else(|| {
                    at(format!(
                        "`{row}` is not a step (`3. ...`), `config:`, `violated:`, `final state:` or a `#` comment"
                    ))
                })?;
                if number.parse::<u32>().is_err() {
                    return Err(at(format!("`{number}` is not a step number")));
                }
                lines.push(Line::Step(step.to_string()));
            }
        }
        let flags = flags.ok_or("no `config:` line (the `insync check` flags)")?;
        Ok(ScenarioFile { flags, lines })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut config_written = false;
        let mut step = 0;
        for line in &self.lines {
            if !config_written && !matches!(line, Line::Comment(c) if c.starts_with('#')) {
                out.push_str(&format!("config: {}\n", self.flags.join(" ")));
                config_written = true;
            }
            match line {
                Line::Comment(c) => out.push_str(&format!("{c}\n")),
                Line::Step(s) => {
                    step += 1;
                    out.push_str(&format!("{step}. {s}\n"));
                }
                Line::Violated(names) if names.is_empty() => out.push_str("violated: none\n"),
                Line::Violated(names) => out.push_str(&format!("violated: {}\n", names.join(", "))),
                Line::FinalState(state) => {
                    out.push_str("final state:\n");
                    for l in state {
                        out.push_str(&format!("  {l}\n"));
                    }
                }
            }
        }
        if !config_written {
            out.push_str(&format!("config: {}\n", self.flags.join(" ")));
        }
        out
    }

    /// The configuration the `config:` flags give.
    pub fn config(&self) -> Result<Config, String> {
        use clap::Parser;
        let args = ["insync", "check"]
            .into_iter()
            .map(str::to_string)
            .chain(self.flags.iter().cloned());
        match insync::cli::Cli::try_parse_from(args) {
            Ok(insync::cli::Cli {
                command: insync::cli::Command::Check(check),
            }) => Ok(check.config.to_config()),
            Ok(_) => unreachable!("parsed as `insync check`"),
            Err(e) => Err(format!("config: {e}")),
        }
    }

    /// Replays the file's steps on the model and returns the file as the model writes it.
    pub fn replay(&self, regen: bool) -> Result<ScenarioFile, String> {
        let config = self
            .config()?
            .validate()
            .map_err(|e| format!("config: {e}"))?;
        // A scenario narrates every delivery, as Kafka makes them, fenced ones included: the
        // checker's stale-message reduction would take those out before they arrive.
        let model = Insync::new(config).into_model().keeping_stale_messages();
        let mut state = model.init_states().remove(0);
        let mut lines = Vec::new();
        let mut step = 0;
        for line in &self.lines {
            lines.push(match line {
                Line::Comment(c) => Line::Comment(c.clone()),
                Line::Step(text) => {
                    step += 1;
                    let (line, next) = take_step(&model, &state, text, regen)
                        .map_err(|e| format!("step {step}: {e}"))?;
                    state = next;
                    Line::Step(line)
                }
                Line::Violated(_) => Line::Violated(violated(&model, &state)),
                Line::FinalState(_) => Line::FinalState(describe_state(&model, &state)),
            });
        }
        Ok(ScenarioFile {
            flags: self.flags.clone(),
            lines,
        })
    }
}

/// The enabled action whose line is `text` (with `regen`, whose action part is), and the state
/// it leads to.
fn take_step(
    model: &InsyncModel,
    state: &InsyncState,
    text: &str,
    regen: bool,
) -> Result<(String, InsyncState), String> {
    let mut actions = Vec::new();
    model.actions(state, &mut actions);
    let mut enabled = Vec::new();
    for action in actions {
        let Some(next) = model.next_state(state, action.clone()) else {
            continue;
        };
        if !model.within_boundary(&next) {
            continue;
        }
        let line = describe_step(model, state, &action, Some(&next));
        let act = describe_action(model, Some(state), &action);
        enabled.push((line, act, next));
    }
    if let Some((line, _, next)) = enabled.iter().find(|(line, _, _)| line == text) {
        return Ok((line.clone(), next.clone()));
    }
    let action_part = text.split("; ").next().unwrap_or(text);
    let same_action: Vec<_> = enabled
        .iter()
        .filter(|(_, act, _)| act == action_part)
        .collect();
    if regen {
        if let [(line, _, next)] = same_action[..] {
            return Ok((line.clone(), next.clone()));
        }
    }
    let list: Vec<&str> = enabled.iter().map(|(l, _, _)| l.as_str()).collect();
    Err(format!(
        "no enabled step is\n    {text}\n{}the enabled steps are:\n    {}",
        if same_action.is_empty() {
            String::new()
        } else {
            format!(
                "({} enabled step(s) take that action with other effects; INSYNC_REGEN=1 rewrites the file if the change is intended)\n",
                same_action.len()
            )
        },
        list.join("\n    ")
    ))
}

/// The safety properties broken in `state`, sorted.
pub fn violated(model: &InsyncModel, state: &InsyncState) -> Vec<String> {
    let mut names: Vec<String> = properties::all()
        .into_iter()
        .filter(|p| p.expectation == Expectation::Always && !(p.condition)(model, state))
        .map(|p| p.name.to_string())
        .collect();
    names.sort();
    names
}

/// Replays `path` and fails with a readable difference if the model does not write it back
/// unchanged; with `INSYNC_REGEN=1` rewrites it instead.
pub fn check_file(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file = ScenarioFile::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let replayed = file
        .replay(regenerating())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rendered = replayed.render();
    expect_file(path, &text, &rendered);
}

/// Compares a file's text with what it should be; with `INSYNC_REGEN=1` writes it.
pub fn expect_file(path: &Path, text: &str, expected: &str) {
    if text == expected {
        return;
    }
    if regenerating() {
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))
            .expect("creating testdata");
        std::fs::write(path, expected).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("rewrote {}", path.display());
        return;
    }
    let diff: Vec<String> = text
        .lines()
        .zip(expected.lines())
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .take(5)
        .map(|(i, (a, b))| format!("line {}:\n  file:  {a}\n  model: {b}", i + 1))
        .collect();
    panic!(
        "{} differs from what the model writes ({} lines in the file, {} from the model):\n{}\n\
         If the change is intended, rewrite it with INSYNC_REGEN=1 and review the diff.",
        path.display(),
        text.lines().count(),
        expected.lines().count(),
        diff.join("\n")
    );
}
