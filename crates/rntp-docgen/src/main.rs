//! `rntp-docgen`: prints rntpd.conf(5), the one page no binary owns (its source is the directive
//! reference in `rntp-config`'s crate documentation). The pages of `rntpd` and `rntpctl` come
//! from those binaries' hidden hooks; `scripts/gen-docs` runs all three.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// Generate rntpd.conf(5) from the directive reference in rntp-config.
#[derive(Debug, Parser)]
#[command(name = "rntp-docgen", version, about)]
struct Args {
    /// Which form of rntpd.conf(5) to print on standard output.
    #[arg(value_enum)]
    what: Form,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Form {
    /// roff, for man.
    ConfMan,
    /// Markdown, for docs/rntpd.conf.5.md.
    ConfMarkdown,
}

/// The page source and the directive reference, embedded so the output depends only on the
/// sources this binary was built from.
const TEMPLATE: &str = include_str!("../../../docs/man/rntpd.conf.5.in.md");
const CONFIG_LIB_RS: &str = include_str!("../../rntp-config/src/lib.rs");

fn main() -> ExitCode {
    let args = Args::parse();
    match rntp_docgen::conf_page(TEMPLATE, CONFIG_LIB_RS, env!("CARGO_PKG_VERSION")) {
        Ok(page) => {
            let text = if matches!(args.what, Form::ConfMan) { page.roff } else { page.markdown };
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rntp-docgen: cannot write to standard output: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("rntp-docgen: cannot generate rntpd.conf(5): {e}");
            ExitCode::FAILURE
        }
    }
}
