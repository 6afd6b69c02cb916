//! The packaging hook (`rntpctl --generate ...`) and `rntpctl -h`: the man page in dist/man is what
//! the clap definitions and docs/man/rntpctl.8.in.md give, completions generate, and every
//! command and option has a one-line summary.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rntpctl");

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run rntpctl");
    assert!(
        out.status.success(),
        "rntpctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn repo_file(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn checked_in_man_page_is_up_to_date() {
    assert!(
        run(&["--generate", "man"]) == repo_file("dist/man/rntpctl.8"),
        "dist/man/rntpctl.8 is stale: run scripts/gen-docs and commit the result"
    );
    assert!(
        run(&["--generate", "markdown"]) == repo_file("docs/rntpctl.8.md"),
        "docs/rntpctl.8.md is stale: run scripts/gen-docs and commit the result"
    );
}

#[test]
fn man_page_lists_every_command() {
    let man = run(&["--generate", "man"]);
    assert!(man.contains(".TH \"RNTPCTL\" \"8\""));
    for cmd in ["peers", "sources", "status", "history", "add", "remove", "refresh", "validate"] {
        assert!(man.contains(&format!("\\fB{cmd}")), "man page lacks the {cmd} command");
    }
    assert!(!man.contains("generate"), "the hidden packaging command leaked into the man page");
}

#[test]
fn completions_generate_for_every_shell() {
    let bash = run(&["--generate", "complete-bash"]);
    assert!(bash.contains("complete -F _rntpctl") && bash.contains("validate"));
    let syntax = Command::new("bash").arg("-n").arg("-c").arg(&bash).output().expect("bash");
    assert!(syntax.status.success(), "bash -n: {}", String::from_utf8_lossy(&syntax.stderr));

    let zsh = run(&["--generate", "complete-zsh"]);
    assert!(zsh.starts_with("#compdef rntpctl") && zsh.contains("peers"));
    let fish = run(&["--generate", "complete-fish"]);
    assert!(fish.contains("complete -c rntpctl") && fish.contains("validate"));
    for (shell, script) in [("bash", &bash), ("zsh", &zsh), ("fish", &fish)] {
        assert!(!script.contains("generate"), "{shell} completion offers the packaging hook");
    }
}

#[test]
fn short_help_gives_every_command_and_option_one_line() {
    let help = run(&["-h"]);
    let mut checked = 0;
    for section in ["Commands:", "Options:"] {
        let lines: Vec<&str> = help
            .lines()
            .skip_while(|l| *l != section)
            .skip(1)
            .take_while(|l| !l.is_empty())
            .collect();
        assert!(!lines.is_empty(), "no {section} in {help}");
        for line in lines {
            let trimmed = line.trim_start();
            let (name, description) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
            assert!(
                !name.is_empty() && !description.trim().is_empty(),
                "entry without a one-line description (or a wrapped one): {line:?}"
            );
            assert!(line.len() <= 100, "over 100 columns: {line:?}");
            checked += 1;
        }
    }
    assert!(checked >= 11, "{help}");
}
