//! One module per subcommand, plus the few helpers they share.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use llamapack_format::DType;

mod bench;
mod budget;
mod compare;
mod convert;
mod demo;
mod eval;
mod export;
mod imatrix;
mod inspect;
mod logits;
mod quantize;
mod reference;
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
    Quantize(Box<quantize::Args>),
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

/// A usage error found after parsing (options that contradict each other, a value out of
/// range): printed like clap's own, exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Returns a [`UsageError`] (exit status 2) from the enclosing function.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::cmd::UsageError(format!($($arg)*))))
    };
}
pub(crate) use usage;

/// Loads `lpk` for inference on `threads` threads, releasing this process's file pages of each
/// matrix the model repacks into its own copy as soon as that copy is made
/// (`Model::load_releasing`), so that each weight is resident once, not twice.
pub fn load_model(
    lpk: &llamapack_format::Lpk,
    threads: usize,
) -> anyhow::Result<llamapack_runner::Model<'_>> {
    llamapack_runner::Model::load_releasing(lpk, threads, &|b| lpk.release(b))
        .with_context(|| format!("loading {}", lpk.file_name()))
}

/// The value parser of every `-t/--threads`: a whole number of at least 1.
pub fn threads_parser() -> impl clap::builder::TypedValueParser<Value = usize> {
    at_least_one
}

/// A whole number of at least 1.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("`{s}` is not a whole number of at least 1")),
    }
}

/// A recipe name for `quantize --type` (llama.cpp's file types, their aliases, upper case, ftype
/// ids); a misspelt one is refused with the closest name.
pub fn recipe_name(s: &str) -> Result<String, String> {
    llamapack_quantize::recipe::Kind::parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

/// A dtype that a model file can store (`--output-type q6_k`); a misspelt one is refused with
/// the closest name.
pub fn storable_dtype(s: &str) -> Result<DType, String> {
    let d: DType = s.parse()?;
    if d.is_storable() {
        Ok(d)
    } else {
        Err(format!("{d} cannot be stored in a model file"))
    }
}

/// f16, bf16 or f32 (`export --dtype`); a misspelt one is refused with the closest name.
pub fn float_dtype(s: &str) -> Result<DType, String> {
    const NAMES: [&str; 3] = ["f16", "bf16", "f32"];
    match DType::from_name(s) {
        Some(d @ (DType::F16 | DType::BF16 | DType::F32)) => Ok(d),
        _ => Err(format!(
            "`{s}` is not a float type{} (expected f16, bf16 or f32)",
            llamapack_format::suggest::hint(s, NAMES)
        )),
    }
}

/// Whether `path` is a model file: a `.lpk` or a GGUF, by its first bytes.
pub fn is_model_file(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    let read = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok();
    read && (magic == llamapack_format::header::MAGIC || llamapack_convert::gguf::is_gguf(path))
}

/// The text of `path`, or of standard input for `-`.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    String::from_utf8(read_bytes(path)?).with_context(|| {
        let name = if path.as_os_str() == "-" {
            "standard input".to_owned()
        } else {
            path.display().to_string()
        };
        format!("{name} is not UTF-8 text")
    })
}

/// The bytes of `path`, or of standard input for `-`.
pub fn read_bytes(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)
            .context("reading standard input")?;
        Ok(b)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

/// `--threads`, checked; default: the runner's default (one per physical core).
pub fn thread_count(threads: Option<usize>) -> anyhow::Result<usize> {
    match threads {
        Some(0) => usage!("--threads must be at least 1"),
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

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    })
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
    Ok(hex(&h.finalize()))
}
