//! The `llamapack` command line: convert, quantize, run, evaluate and export Llama 2 models.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only parses arguments,
//! dispatches, and turns errors into one clear line and an exit code.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

mod calibrate;
mod chart;
mod cmd;
mod ui;

/// Take Meta's Llama 2 checkpoints to deployable artifacts, and prove they are accurate.
///
/// A typical session:
///
///   llamapack convert llama-2-7b/ -o 7b.lpk          # Meta or HF checkpoint → packed file
///   llamapack quantize 7b.lpk -o 7b-q4.lpk --type q4_k_m
///   llamapack eval 7b-q4.lpk --reference 7b.lpk --text wiki.txt
///   llamapack export 7b-q4.lpk --format gguf -o 7b-q4.gguf
///
/// Run `llamapack demo` to see the whole pipeline on the bundled fixture model.
#[derive(Debug, Parser)]
#[command(name = "llamapack", version, about, long_about, verbatim_doc_comment)]
struct Cli {
    /// Print the full chain of causes for an error.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // No output of this process may replace a file it read (see llamapack_format::output).
    llamapack_format::output::guard_inputs();
    // Ctrl-C / SIGTERM: delete the outputs still being written (every writer goes through a
    // hidden temp file and renames it at the end), then exit as an interrupted process does.
    let _ = ctrlc::set_handler(|| {
        let removed = llamapack_format::output::remove_unfinished();
        if removed.is_empty() {
            eprintln!("interrupted");
        } else {
            let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            eprintln!("interrupted; removed unfinished {}", names.join(", "));
        }
        std::process::exit(130);
    });
    match cmd::run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            if ui::is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            if err.downcast_ref::<cmd::UsageError>().is_some() {
                eprintln!("error: {err}");
                eprintln!("\nFor more information, try '--help'.");
                return ExitCode::from(2);
            }
            if cli.verbose {
                eprintln!("error: {err}");
                for cause in err.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            } else {
                eprintln!("error: {}", error_line(&err));
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and every cause it does not already state, on one line ("writing x.svg: No space
/// left on device"), so the cause shows without `--verbose`.
fn error_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line
}
