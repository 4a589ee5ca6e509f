//! The user's private directory: where Ferry keeps spill files and actor
//! checkpoints unless told otherwise, so that no other user of the node can
//! read them, replace them or plant a link among them.
//!
//! # Where
//!
//! 1. `$XDG_RUNTIME_DIR/ferry` when `$XDG_RUNTIME_DIR` is an absolute path
//!    to a directory that is the user's own (owned by the effective uid,
//!    not a symbolic link, no access for group or others: what the XDG
//!    base directory specification promises);
//! 2. else `ferry-<euid>` in the system's temporary directory (`$TMPDIR`,
//!    else `/tmp`).
//!
//! # On every use
//!
//! [`PrivateDir::make`] makes the root and each directory below it that is
//! missing with mode 0700, then checks each of them with `lstat` (never
//! following a link): it must be a directory, owned by the effective uid,
//! with no permission bit for group or others. Anything else is a
//! [`PrivateDirError::NotPrivate`] that names the path and what is wrong;
//! the directory is never used, nor mended, in that case (another user may
//! have made it first, to read what Ferry would put there).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// What is wrong with a directory that should be the user's own.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// It is a symbolic link.
    Symlink,
    /// It is not a directory.
    NotADirectory,
    /// It belongs to another user.
    Owner {
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        euid: u32,
    },
    /// Group or others have some access to it (the mode bits).
    Open(u32),
    /// A path below the root that is not a plain name (`..`, `/…`).
    NotPlain,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Symlink => write!(f, "it is a symbolic link"),
            Problem::NotADirectory => write!(f, "it is not a directory"),
            Problem::Owner { owner, euid } => {
                write!(
                    f,
                    "it belongs to uid {owner}, not to this user (uid {euid})"
                )
            }
            Problem::Open(mode) => write!(
                f,
                "its mode is {mode:04o}: group or others have access (it must be 0700)"
            ),
            Problem::NotPlain => write!(f, "it is not a plain path below the private directory"),
        }
    }
}

/// A private directory that cannot be made or is not the user's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateDirError {
    /// The directory could not be made or looked at.
    #[error("cannot make or inspect {}: {source}", .path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The directory is there but is not private to this user: it is not
    /// used.
    #[error(
        "{} is not a private directory of this user: {problem} (remove it, or have Ferry \
         use another place: FERRY_SPILL_DIR, FERRY_CHECKPOINT_DIR)",
        .path.display()
    )]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        problem: Problem,
    },
}

/// The effective uid of this process.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks `path` with `lstat`: `Ok(false)` when it does not exist.
fn inspect(path: &Path) -> Result<bool, PrivateDirError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(PrivateDirError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let me = euid();
    let problem = if meta.file_type().is_symlink() {
        Some(Problem::Symlink)
    } else if !meta.is_dir() {
        Some(Problem::NotADirectory)
    } else if meta.uid() != me {
        Some(Problem::Owner {
            owner: meta.uid(),
            euid: me,
        })
    } else if meta.mode() & 0o077 != 0 {
        Some(Problem::Open(meta.mode() & 0o7777))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(PrivateDirError::NotPrivate {
            path: path.to_path_buf(),
            problem,
        }),
        None => Ok(true),
    }
}

/// The user's private directory (see the module docs).
///
/// ```
/// let private = ferry_store::PrivateDir::locate();
/// let dir = private.make("doc-example")?;
/// assert!(dir.starts_with(private.path()));
/// use std::os::unix::fs::PermissionsExt;
/// assert_eq!(std::fs::metadata(&dir)?.permissions().mode() & 0o777, 0o700);
/// std::fs::remove_dir(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateDir {
    root: PathBuf,
}

impl PrivateDir {
    /// Where this user's private directory is: `$XDG_RUNTIME_DIR/ferry`
    /// when `$XDG_RUNTIME_DIR` is the user's own, else `ferry-<euid>` in
    /// the temporary directory. Nothing is made; only `$XDG_RUNTIME_DIR`
    /// is looked at.
    pub fn locate() -> PrivateDir {
        Self::locate_in(std::env::var_os("XDG_RUNTIME_DIR"), &std::env::temp_dir())
    }

    fn locate_in(xdg: Option<OsString>, tmp: &Path) -> PrivateDir {
        if let Some(x) = xdg.map(PathBuf::from)
            && x.is_absolute()
            && matches!(inspect(&x), Ok(true))
        {
            return PrivateDir {
                root: x.join("ferry"),
            };
        }
        PrivateDir {
            root: tmp.join(format!("ferry-{}", euid())),
        }
    }

    /// A private directory rooted at `root` (made 0700 and checked on use,
    /// as the located one is).
    pub fn at(root: impl Into<PathBuf>) -> PrivateDir {
        PrivateDir { root: root.into() }
    }

    /// The root.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The directories from the root down to `sub` (a relative path of
    /// plain names).
    fn chain(&self, sub: &Path) -> Result<Vec<PathBuf>, PrivateDirError> {
        let mut dirs = vec![self.root.clone()];
        let mut at = self.root.clone();
        for c in sub.components() {
            match c {
                Component::Normal(name) => {
                    at.push(name);
                    dirs.push(at.clone());
                }
                Component::CurDir => {}
                _ => {
                    return Err(PrivateDirError::NotPrivate {
                        path: self.root.join(sub),
                        problem: Problem::NotPlain,
                    });
                }
            }
        }
        Ok(dirs)
    }

    /// Makes the root and `sub` below it (each missing directory with mode
    /// 0700) and checks each of them to be the user's own: the path of
    /// `sub`.
    ///
    /// # Errors
    ///
    /// [`PrivateDirError::NotPrivate`] naming the first directory that is a
    /// link, not a directory, another user's or open to group or others;
    /// [`PrivateDirError::Io`] when one cannot be made or looked at.
    pub fn make(&self, sub: impl AsRef<Path>) -> Result<PathBuf, PrivateDirError> {
        let mut dirs = self.chain(sub.as_ref())?;
        for dir in &dirs {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(PrivateDirError::Io {
                        path: dir.clone(),
                        source,
                    });
                }
            }
            inspect(dir)?;
        }
        // `chain` holds the root at least.
        Ok(dirs.pop().unwrap_or_else(|| self.root.clone()))
    }

    /// Checks the root and `sub` below it without making anything:
    /// `Ok(false)` when one of them does not exist.
    ///
    /// # Errors
    ///
    /// As [`make`](Self::make), for the directories that exist.
    pub fn check(&self, sub: impl AsRef<Path>) -> Result<bool, PrivateDirError> {
        for dir in self.chain(sub.as_ref())? {
            if !inspect(&dir)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `path` relative to the root, when it lies below it.
    pub fn below<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        path.strip_prefix(&self.root).ok()
    }
}

/// Where a rank spills by default: `spill` in the user's private directory
/// ([`PrivateDir::locate`]), made and checked when the rank starts.
///
/// ```
/// let root = ferry_store::default_spill_root();
/// assert!(root.starts_with(ferry_store::PrivateDir::locate().path()));
/// ```
pub fn default_spill_root() -> PathBuf {
    PrivateDir::locate().path().join("spill")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Base(PathBuf);

    impl Base {
        fn new(tag: &str) -> Base {
            let p =
                std::env::temp_dir().join(format!("ferry-private-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Base(p)
        }
    }

    impl Drop for Base {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn problem(r: Result<PathBuf, PrivateDirError>) -> Problem {
        match r {
            Err(PrivateDirError::NotPrivate { problem, .. }) => problem,
            other => panic!("expected NotPrivate, got {other:?}"),
        }
    }

    #[test]
    fn made_0700_and_found_again() {
        let base = Base::new("made");
        let p = PrivateDir::locate_in(None, &base.0);
        assert_eq!(p.path(), base.0.join(format!("ferry-{}", euid())));
        assert!(!p.check("a/b").unwrap());
        let dir = p.make("a/b").unwrap();
        assert_eq!(dir, p.path().join("a/b"));
        for d in [p.path().to_path_buf(), p.path().join("a"), dir.clone()] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
        assert!(p.check("a/b").unwrap());
        assert_eq!(p.below(&dir.join("f")), Some(Path::new("a/b/f")));
        assert_eq!(problem(p.make("../x")), Problem::NotPlain);
    }

    #[test]
    fn xdg_runtime_dir_is_used_only_when_it_is_private() {
        let base = Base::new("xdg");
        let xdg = base.0.join("run");
        std::fs::DirBuilder::new().mode(0o700).create(&xdg).unwrap();
        let p = PrivateDir::locate_in(Some(xdg.clone().into()), &base.0);
        assert_eq!(p.path(), xdg.join("ferry"));
        std::fs::set_permissions(&xdg, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = PrivateDir::locate_in(Some(xdg.into()), &base.0);
        assert!(p.path().starts_with(&base.0) && !p.path().starts_with(base.0.join("run")));
        let p = PrivateDir::locate_in(Some("relative".into()), &base.0);
        assert!(p.path().starts_with(&base.0));
    }

    #[test]
    fn what_is_not_private_is_refused_and_named() {
        let base = Base::new("refused");
        let root = base.0.join("root");
        // Open to others.
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = PrivateDir::at(&root);
        let e = p.make("x").unwrap_err();
        assert!(e.to_string().contains(&root.display().to_string()), "{e}");
        assert_eq!(problem(Err(e)), Problem::Open(0o755));
        assert_eq!(mode(&root), 0o755, "never mended");
        assert!(!root.join("x").exists(), "nothing made below it");
        // A link to a private directory.
        std::fs::remove_dir(&root).unwrap();
        let real = base.0.join("real");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&real)
            .unwrap();
        std::os::unix::fs::symlink(&real, &root).unwrap();
        assert_eq!(problem(p.make("")), Problem::Symlink);
        assert!(matches!(
            p.check(""),
            Err(PrivateDirError::NotPrivate { .. })
        ));
        // A file.
        std::fs::remove_file(&root).unwrap();
        std::fs::write(&root, b"x").unwrap();
        assert_eq!(problem(p.make("")), Problem::NotADirectory);
        // A directory below the root that is open.
        std::fs::remove_file(&root).unwrap();
        p.make("").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::set_permissions(root.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(problem(p.make("sub")), Problem::Open(0o750));
    }

    #[test]
    fn another_user_s_directory_is_refused() {
        if euid() != 0 {
            println!("skipped: needs root to give a directory to another user");
            return;
        }
        let base = Base::new("owner");
        let root = base.0.join("root");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .unwrap();
        std::os::unix::fs::chown(&root, Some(4242), None).unwrap();
        assert_eq!(
            problem(PrivateDir::at(&root).make("")),
            Problem::Owner {
                owner: 4242,
                euid: 0
            }
        );
    }
}
