//! Which paths may be written: the checks of [`Outputs`] (a command's declared inputs and
//! outputs, before any work) and of every [`OutputFile`](super::OutputFile) (the inputs this
//! process has read).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{Error, Result};

/// Identity of a file: its canonical path (`..` and symlinks resolved; for a file that does not
/// exist yet, its folder's canonical path and its name) and, when it exists, its device and
/// inode (hard links).
#[derive(Clone, Debug)]
struct FileId {
    canonical: Option<PathBuf>,
    inode: Option<(u64, u64)>,
}

impl FileId {
    fn of(path: &Path) -> FileId {
        let canonical = path.canonicalize().ok().or_else(|| {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Some(dir.canonicalize().ok()?.join(path.file_name()?))
        });
        FileId {
            canonical,
            inode: inode(path),
        }
    }

    fn same(&self, other: &FileId) -> bool {
        fn eq<T: PartialEq>(a: Option<&T>, b: Option<&T>) -> bool {
            matches!((a, b), (Some(x), Some(y)) if x == y)
        }
        eq(self.canonical.as_ref(), other.canonical.as_ref())
            || eq(self.inode.as_ref(), other.inode.as_ref())
    }

    fn known(&self) -> bool {
        self.canonical.is_some() || self.inode.is_some()
    }
}

#[cfg(unix)]
fn inode(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn inode(_: &Path) -> Option<(u64, u64)> {
    None
}

/// Whether `a` and `b` are the same file: the same canonical path, or (hard links) the same
/// device and inode.
pub fn same_file(a: &Path, b: &Path) -> bool {
    FileId::of(a).same(&FileId::of(b))
}

/// The inputs this process has read, once guarding is on.
struct Guard {
    on: bool,
    inputs: Vec<(PathBuf, FileId)>,
    /// Outputs declared to replace an input of theirs ([`Outputs::updated`]).
    updates: Vec<FileId>,
}

static GUARD: Mutex<Guard> = Mutex::new(Guard {
    on: false,
    inputs: Vec::new(),
    updates: Vec::new(),
});

fn guard() -> MutexGuard<'static, Guard> {
    GUARD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// From now on, every file a reader opens ([`note_input`]) is protected: an
/// [`OutputFile`](super::OutputFile) that would replace it is refused. The CLI turns this on
/// once at start; a library caller may leave it off (the default), as it may write a file it
/// read earlier in a long-lived process.
pub fn guard_inputs() {
    guard().on = true;
}

/// Records `path` as an input of this process (called by the readers: `.lpk`, checkpoints,
/// GGUF, importance matrices). Does nothing until [`guard_inputs`] is called.
pub fn note_input(path: &Path) {
    let mut g = guard();
    if g.on {
        let id = FileId::of(path);
        if id.known() {
            g.inputs.push((path.to_path_buf(), id));
        }
    }
}

/// Refuses `dest` when it is a guarded input (unless declared as its update).
pub(super) fn refuse_input(dest: &Path) -> Result<()> {
    let g = guard();
    if !g.on {
        return Ok(());
    }
    let id = FileId::of(dest);
    if g.updates.iter().any(|u| u.same(&id)) {
        return Ok(());
    }
    match g.inputs.iter().find(|(_, i)| i.same(&id)) {
        Some((input, _)) => Err(Error::OutputIsInput {
            output: dest.display().to_string(),
            input: input.display().to_string(),
        }),
        None => Ok(()),
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadOutput {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The folder of `p` exists and is a folder.
fn parent_is_dir(p: &Path) -> Result<()> {
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => return Ok(()),
    };
    match std::fs::metadata(parent) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(bad(p, format!("{} is not a directory", parent.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(bad(
            p,
            format!("the directory {} does not exist", parent.display()),
        )),
        Err(e) => Err(Error::io(parent, "open directory", e)),
    }
}

/// `p` can become a file: its folder exists, and it is not a folder or a device.
pub(super) fn file_path(p: &Path) -> Result<()> {
    if p.as_os_str().is_empty() {
        return Err(bad(p, "empty output path"));
    }
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => return Err(bad(p, "is a directory; give a file name")),
        Ok(m) if !m.is_file() => {
            return Err(bad(
                p,
                "is not a regular file (a device, pipe or socket); outputs are written as new files renamed into place",
            ));
        }
        _ => {}
    }
    if p.file_name().is_none() {
        return Err(bad(p, "names no file"));
    }
    parent_is_dir(p)
}

/// `p` can become a folder: its parent exists, and it does not exist or is an empty folder.
pub(super) fn dir_path(p: &Path) -> Result<()> {
    if p.as_os_str().is_empty() {
        return Err(bad(p, "empty output path"));
    }
    match std::fs::metadata(p) {
        Ok(m) if !m.is_dir() => {
            return Err(bad(
                p,
                "exists and is not a directory; this output is a directory",
            ));
        }
        Ok(_) => {
            let mut entries =
                std::fs::read_dir(p).map_err(|e| Error::io(p, "read directory", e))?;
            if entries.next().is_some() {
                return Err(bad(
                    p,
                    "exists and is not empty; remove it or choose another directory",
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(p, "open", e)),
    }
    parent_is_dir(p)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Read, never written.
    Input,
    /// Read, and an output of the same command may replace it.
    Updated,
    /// An output file.
    File,
    /// An output folder.
    Dir,
}

#[derive(Debug)]
struct Item {
    what: String,
    path: PathBuf,
    role: Role,
}

impl Item {
    fn label(&self) -> String {
        format!("{} {}", self.what, self.path.display())
    }
}

/// The inputs and outputs of one command, checked together before it starts working.
///
/// `what` names each path as the user gave it (`MODEL`, `-o`, `--report`), for the messages.
///
/// ```
/// use llamapack_format::output::Outputs;
///
/// let dir = tempfile::tempdir()?;
/// let model = dir.path().join("m.lpk");
/// std::fs::write(&model, b"...")?;
/// let report = dir.path().join("r.json");
/// Outputs::new()
///     .input("MODEL", &model)
///     .file("-o", dir.path().join("q.lpk"))
///     .file("--report", &report)
///     .check()?;
/// let same = dir.path().join("sub/../m.lpk");
/// std::fs::create_dir(dir.path().join("sub"))?;
/// let err = Outputs::new().input("MODEL", &model).file("-o", &same).check().unwrap_err();
/// assert!(err.to_string().starts_with("refusing to overwrite the input MODEL"));
/// let err = Outputs::new().file("-o", &report).file("--report", &report).check().unwrap_err();
/// assert!(err.to_string().contains("the same file"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct Outputs {
    items: Vec<Item>,
}

impl Outputs {
    /// No paths yet.
    pub fn new() -> Self {
        Outputs::default()
    }

    fn push(&mut self, what: &str, path: &Path, role: Role) -> &mut Self {
        self.items.push(Item {
            what: what.to_owned(),
            path: path.to_path_buf(),
            role,
        });
        self
    }

    fn push_all<P: AsRef<Path>>(
        &mut self,
        what: &str,
        paths: impl IntoIterator<Item = P>,
        role: Role,
    ) -> &mut Self {
        for p in paths {
            self.push(what, p.as_ref(), role);
        }
        self
    }

    /// A file (or folder) the command reads and must never write. A folder's own files count
    /// as inputs too (a checkpoint folder's shards).
    pub fn input(&mut self, what: &str, path: impl AsRef<Path>) -> &mut Self {
        self.push(what, path.as_ref(), Role::Input)
    }

    /// Inputs given by an optional or repeated option.
    pub fn inputs<P: AsRef<Path>>(
        &mut self,
        what: &str,
        paths: impl IntoIterator<Item = P>,
    ) -> &mut Self {
        self.push_all(what, paths, Role::Input)
    }

    /// An input that an output of this command may replace, by design (e.g. `eval --store`
    /// rewrites the candidate, `imatrix --in-file x -o x` merges into `x`); it must still not
    /// be the same file as any other input.
    pub fn updated(&mut self, what: &str, path: impl AsRef<Path>) -> &mut Self {
        self.push(what, path.as_ref(), Role::Updated)
    }

    /// [`updated`](Self::updated) for an optional or repeated option.
    pub fn updated_all<P: AsRef<Path>>(
        &mut self,
        what: &str,
        paths: impl IntoIterator<Item = P>,
    ) -> &mut Self {
        self.push_all(what, paths, Role::Updated)
    }

    /// An output file.
    pub fn file(&mut self, what: &str, path: impl AsRef<Path>) -> &mut Self {
        self.push(what, path.as_ref(), Role::File)
    }

    /// Output files of an optional or repeated option.
    pub fn files<P: AsRef<Path>>(
        &mut self,
        what: &str,
        paths: impl IntoIterator<Item = P>,
    ) -> &mut Self {
        self.push_all(what, paths, Role::File)
    }

    /// An output folder (it must not exist, or be empty).
    pub fn dir(&mut self, what: &str, path: impl AsRef<Path>) -> &mut Self {
        self.push(what, path.as_ref(), Role::Dir)
    }

    /// The plain inputs with their identities, a folder's files included.
    fn plain_inputs(&self) -> Vec<(String, FileId)> {
        let mut v = Vec::new();
        for i in self.items.iter().filter(|i| i.role == Role::Input) {
            v.push((i.label(), FileId::of(&i.path)));
            if let Ok(entries) = std::fs::read_dir(&i.path) {
                for e in entries.filter_map(std::result::Result::ok) {
                    if e.file_type().is_ok_and(|t| !t.is_dir()) {
                        let p = e.path();
                        v.push((format!("{} {}", i.what, p.display()), FileId::of(&p)));
                    }
                }
            }
        }
        v
    }

    /// Checks every output: its path can be written, it is not (a link to) an input unless it
    /// is that input's declared update, and no two outputs are the same file. Then records the
    /// inputs with the guard (see [`guard_inputs`]), so that the writers refuse them too.
    pub fn check(&self) -> Result<()> {
        let inputs = self.plain_inputs();
        let updated: Vec<FileId> = self
            .items
            .iter()
            .filter(|i| i.role == Role::Updated)
            .map(|i| FileId::of(&i.path))
            .collect();
        let mut outputs: Vec<(&Item, FileId)> = Vec::new();
        let mut updates = Vec::new();
        for o in self
            .items
            .iter()
            .filter(|i| matches!(i.role, Role::File | Role::Dir))
        {
            if o.role == Role::File {
                file_path(&o.path)?;
            } else {
                dir_path(&o.path)?;
            }
            let id = FileId::of(&o.path);
            if let Some((input, _)) = inputs.iter().find(|(_, i)| i.same(&id)) {
                return Err(Error::OutputIsInput {
                    output: o.label(),
                    input: input.clone(),
                });
            }
            if let Some((first, _)) = outputs.iter().find(|(_, p)| p.same(&id)) {
                return Err(Error::SameOutputs {
                    first: first.label(),
                    second: o.label(),
                });
            }
            if updated.iter().any(|u| u.same(&id)) {
                updates.push(id.clone());
            }
            outputs.push((o, id));
        }
        let mut g = guard();
        if g.on {
            for i in self
                .items
                .iter()
                .filter(|i| matches!(i.role, Role::Input | Role::Updated))
            {
                let id = FileId::of(&i.path);
                if id.known() {
                    g.inputs.push((i.path.clone(), id));
                }
            }
            g.updates.extend(updates);
        }
        Ok(())
    }
}
