//! Markdown for the parts of a man page that clap already knows: the synopsis, the options and
//! the subcommands, with the same help text `--help` prints. Writing them from the `clap::Command`
//! keeps the man page and `--help` from drifting apart.

use std::fmt::Write as _;

use clap::{Arg, Command};

/// `help` and `version` are clap's own flags; the man page words them itself.
fn is_builtin(arg: &Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

fn visible_args(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| !a.is_hide_set() && !is_builtin(a))
}

fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands().filter(|c| !c.is_hide_set() && c.get_name() != "help")
}

fn value_names(arg: &Arg) -> Vec<String> {
    match arg.get_value_names() {
        Some(names) => names.iter().map(ToString::to_string).collect(),
        None => vec![arg.get_id().as_str().to_uppercase()],
    }
}

fn possible_values(arg: &Arg) -> Vec<String> {
    arg.get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect()
}

fn is_repeated(arg: &Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.max_values() > 1)
}

/// How an argument is written in a synopsis: `[-c FILE]`, `NAME`, `[OPTIONS...]`, `server|pool`.
fn synopsis_word(arg: &Arg) -> String {
    let takes_value = arg.get_action().takes_values();
    let word = if arg.is_positional() {
        let values = possible_values(arg);
        let mut w = if values.is_empty() { value_names(arg).join(" ") } else { values.join("|") };
        if is_repeated(arg) {
            w.push_str("...");
        }
        w
    } else {
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(s), _) => format!("-{s}"),
            (None, Some(l)) => format!("--{l}"),
            (None, None) => arg.get_id().to_string(),
        };
        if takes_value {
            format!("{flag} {}", value_names(arg).join(" "))
        } else {
            flag
        }
    };
    if arg.is_required_set() {
        word
    } else {
        format!("[{word}]")
    }
}

/// The term of an option in a definition list: `-c, --config FILE`, `--json`, `NAME`.
fn term(arg: &Arg) -> String {
    if arg.is_positional() {
        return synopsis_word(arg).trim_start_matches('[').trim_end_matches(']').to_string();
    }
    let mut names = Vec::new();
    if let Some(s) = arg.get_short() {
        names.push(format!("-{s}"));
    }
    if let Some(l) = arg.get_long() {
        names.push(format!("--{l}"));
    }
    let mut t = names.join(", ");
    if arg.get_action().takes_values() {
        let _ = write!(t, " {}", value_names(arg).join(" "));
    }
    t
}

/// The full help of an argument (long help when there is one), plus its default and, unless
/// the help already names them all, its possible values.
fn arg_help(arg: &Arg) -> String {
    let help = arg.get_long_help().or_else(|| arg.get_help()).map(|h| h.to_string());
    let mut text = sentence(help.unwrap_or_default().trim());
    let values = possible_values(arg);
    if !values.is_empty() && !values.iter().all(|v| text.contains(&format!("`{v}`"))) {
        let list: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        let _ = write!(text, " One of: {}.", list.join(", "));
    }
    let defaults: Vec<String> =
        arg.get_default_values().iter().map(|v| format!("`{}`", v.to_string_lossy())).collect();
    // A flag's default (`false`) says nothing.
    if !defaults.is_empty() && arg.get_action().takes_values() && !arg.is_hide_default_value_set() {
        let _ = write!(text, " Default: {}.", defaults.join(" "));
    }
    text.trim().to_string()
}

/// Ends the text with a full stop: clap drops it from one-paragraph help, and the man page
/// appends more sentences.
fn sentence(text: &str) -> String {
    if text.is_empty() || text.ends_with(['.', '!', '?', ':']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

/// Indents every line after the first by two spaces, for a definition's body.
fn indent_body(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str("  ");
            }
        }
        out.push_str(line);
    }
    out
}

fn definition(term: &str, body: &str) -> String {
    format!("`{term}`\n: {}\n", indent_body(body))
}

/// Synopsis lines, one per subcommand (or one for a command without subcommands), each a code
/// span ending in a hard line break.
pub fn synopsis(cmd: &Command) -> String {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let root: Vec<String> = visible_args(cmd).map(synopsis_word).collect();
    let mut lines = Vec::new();
    let subs: Vec<&Command> = visible_subcommands(cmd).collect();
    if subs.is_empty() {
        lines.push(
            std::iter::once(name.to_string())
                .chain(root.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    for sub in subs {
        let words = std::iter::once(name.to_string())
            .chain(root.iter().cloned())
            .chain(std::iter::once(sub.get_name().to_string()))
            .chain(visible_args(sub).filter(|a| !a.is_global_set()).map(synopsis_word));
        lines.push(words.collect::<Vec<_>>().join(" "));
    }
    let spans: Vec<String> = lines.iter().map(|l| format!("`{l}`")).collect();
    spans.join(" \\\n") + "\n"
}

/// A definition list of the command's options, `-h`/`--help` and `-V`/`--version` last.
pub fn options(cmd: &Command) -> String {
    let mut out: Vec<String> =
        visible_args(cmd).map(|a| definition(&term(a), &arg_help(a))).collect();
    if !cmd.is_disable_help_flag_set() {
        out.push(definition(
            "-h, --help",
            "Print a summary of the options (`-h`) or the full help (`--help`), then exit.",
        ));
    }
    if cmd.get_version().is_some() && !cmd.is_disable_version_flag_set() {
        out.push(definition("-V, --version", "Print the version, then exit."));
    }
    out.join("\n")
}

/// A definition list of the visible subcommands: usage, full description, and their own
/// arguments as a nested list.
pub fn commands(cmd: &Command) -> String {
    let mut out = Vec::new();
    for sub in visible_subcommands(cmd) {
        let usage = std::iter::once(sub.get_name().to_string())
            .chain(visible_args(sub).filter(|a| !a.is_global_set()).map(synopsis_word))
            .collect::<Vec<_>>()
            .join(" ");
        let about = sub.get_long_about().or_else(|| sub.get_about()).map(|s| s.to_string());
        let mut body = sentence(about.unwrap_or_default().trim());
        for arg in visible_args(sub).filter(|a| !a.is_global_set()) {
            let _ = write!(body, "\n\n{}", definition(&term(arg), &arg_help(arg)).trim_end());
        }
        out.push(definition(&usage, &body));
    }
    out.join("\n")
}

/// Every problem with the help of the command's options and subcommands that `-h` would show:
/// a missing summary, or a summary that takes more than one line (over 80 columns with the
/// option column, or a line break). `rntpd -h` must be readable at a glance.
pub fn help_problems(cmd: &Command) -> Vec<String> {
    let mut problems = Vec::new();
    let path = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string();
    check_command(cmd, &path, &mut problems);
    problems
}

fn check_command(cmd: &Command, path: &str, problems: &mut Vec<String>) {
    if cmd.get_about().is_none_or(|a| a.to_string().trim().is_empty()) {
        problems.push(format!("{path}: no description (doc comment) for the command"));
    }
    for arg in visible_args(cmd) {
        let t = term(arg);
        match arg.get_help().map(|h| h.to_string()) {
            None => problems.push(format!("{path} {t}: no help text")),
            Some(h) if h.trim().is_empty() => problems.push(format!("{path} {t}: empty help text")),
            Some(h) if h.contains('\n') => {
                problems.push(format!("{path} {t}: help summary spans several lines"))
            }
            // clap pads the option column to its longest entry; a summary that does not fit
            // in 100 columns next to a typical one (about 30) is a paragraph, not a summary.
            Some(h) if h.chars().count() > 70 => problems.push(format!(
                "{path} {t}: help summary is {} characters; keep it to one line (put details \
                 in a second paragraph of the doc comment, shown by --help)",
                h.chars().count()
            )),
            Some(_) => {}
        }
    }
    for sub in visible_subcommands(cmd) {
        check_command(sub, &format!("{path} {}", sub.get_name()), problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{ArgAction, CommandFactory, Parser, Subcommand};

    /// A command shaped like ours.
    #[derive(Debug, Parser)]
    #[command(name = "demo", version, about = "Demo daemon")]
    struct Demo {
        /// Configuration file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<String>,
        /// Control socket.
        ///
        /// Longer explanation.
        #[arg(long, value_name = "PATH", default_value = "/run/demo.sock")]
        socket: String,
        /// Secret.
        #[arg(long, hide = true)]
        secret: bool,
        #[command(subcommand)]
        cmd: Option<Cmd>,
    }

    #[derive(Debug, Subcommand)]
    enum Cmd {
        /// Add a thing.
        ///
        /// It is added at once.
        Add {
            /// `server` or `pool`.
            #[arg(value_parser = ["server", "pool"])]
            kind: String,
            /// Options.
            #[arg(trailing_var_arg = true, action = ArgAction::Append)]
            options: Vec<String>,
        },
        /// Hidden.
        #[command(hide = true)]
        Generate,
    }

    #[test]
    fn synopsis_lists_subcommands_without_hidden_ones() {
        let cmd = Demo::command();
        assert_eq!(
            synopsis(&cmd),
            "`demo [-c FILE] [--socket PATH] add server|pool [OPTIONS...]`\n"
        );
    }

    #[test]
    fn options_have_long_help_and_defaults() {
        let out = options(&Demo::command());
        assert!(out.starts_with("`-c, --config FILE`\n: Configuration file.\n"), "{out}");
        assert!(
            out.contains(
                "`--socket PATH`\n: Control socket.\n\n  Longer explanation. Default: `/run/demo.sock`.\n"
            ),
            "{out}"
        );
        assert!(!out.contains("secret"));
        assert!(out.contains("`-V, --version`"));
    }

    #[test]
    fn commands_nest_their_arguments() {
        let out = commands(&Demo::command());
        assert!(
            out.starts_with(
                "`add server|pool [OPTIONS...]`\n: Add a thing.\n\n  It is added at once.\n\n  `server|pool`\n  : `server` or `pool`.\n"
            ),
            "{out}"
        );
        assert!(!out.contains("Generate") && !out.contains("generate"));
    }

    #[test]
    fn help_lint_finds_long_and_missing_summaries() {
        #[derive(Debug, Parser)]
        #[command(name = "bad")]
        struct Bad {
            #[arg(long)]
            undocumented: bool,
            /// This summary goes on and on, well past the point where a terminal of eighty columns could hold it next to the option.
            #[arg(long)]
            wordy: bool,
        }
        let problems = help_problems(&Bad::command());
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(problems[0].contains("no description"));
        assert!(problems[1].contains("--undocumented: no help text"));
        assert!(problems[2].contains("--wordy: help summary is"));
        assert!(help_problems(&Demo::command()).is_empty());
    }
}
