//! One module per subcommand, plus the few helpers they share.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

mod bench;
mod compare;
mod convert;
mod demo;
mod eval;
mod export;
mod imatrix;
mod inspect;
mod logits;
mod quantize;
mod run;
mod scoring;
mod tokenize;
mod verify;

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    Demo(demo::Args),
    Convert(convert::Args),
    Run(run::Args),
    Logits(logits::Args),
    Tokenize(tokenize::Args),
    Bench(bench::Args),
    Eval(eval::Args),
    Compare(compare::Args),
    Export(export::Args),
    Inspect(inspect::Args),
    Verify(verify::Args),
    Quantize(quantize::Args),
    Imatrix(imatrix::Args),
}

/// Runs a subcommand.
pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Demo(a) => demo::run(&a),
        Command::Convert(a) => convert::run(&a),
        Command::Compare(a) => compare::run(&a),
        Command::Export(a) => export::run(&a),
        Command::Run(a) => run::run(&a),
        Command::Logits(a) => logits::run(&a),
        Command::Tokenize(a) => tokenize::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Inspect(a) => inspect::run(&a),
        Command::Verify(a) => verify::run(&a),
        Command::Quantize(a) => quantize::run(&a),
        Command::Imatrix(a) => imatrix::run(&a),
    }
}

/// `--threads`, checked; default: the runner's default (one per physical core).
pub fn thread_count(threads: Option<usize>) -> anyhow::Result<usize> {
    match threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(llamapack_runner::default_threads()),
    }
}

/// A rayon pool with `threads` workers (default: one per physical core).
pub fn thread_pool(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    let n = thread_count(threads)?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .context("starting worker threads")
}

/// Lower-case hex sha256 of a file, streamed.
pub fn sha256_of(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        }))
}
