//! Private files: the data directory and everything Sealpost creates in it are readable by
//! their owner only. Directories are created 0700 and files 0600 at the moment they are
//! created (never created open and narrowed afterwards), so there is no window in which another
//! user could open them. SQLite creates a database's `-wal` and `-shm` files with the mode of the
//! database file, so creating `events.db` and `keys.db` 0600 before SQLite opens them is enough.
//!
//! Sealpost never changes the mode of a path that already exists: an operator who loosened one
//! did so on purpose. [`loosened`] finds such paths so that `serve` can warn about them.

use std::path::{Path, PathBuf};

/// The mode of directories Sealpost creates.
pub const DIR_MODE: u32 = 0o700;
/// The mode of files Sealpost creates.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits of group and others: none may be set on a private path.
pub const GROUP_OTHER_BITS: u32 = 0o077;

/// Creates `dir` and any missing parents, each new one 0700. Existing directories keep their
/// mode.
pub fn create_private_dir_all(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)
}

/// Options that create a file 0600 if it does not exist (its directory must exist).
pub fn private_open_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(FILE_MODE);
    }
    options
}

/// Creates an empty file 0600 unless it exists (an existing file is left as it is), creating
/// its directory 0700 if needed.
pub fn ensure_private_file(path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir_all(parent)?;
    }
    match private_open_options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A path under a directory that group or others may read, write or enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loosened {
    /// The path relative to the directory walked (`.` for the directory itself).
    pub relative: PathBuf,
    /// Its permission bits.
    pub mode: u32,
}

/// Every path under `dir` (the directory itself included; symbolic links are not followed and
/// not reported) whose mode gives group or others any permission, in a stable order. A `dir`
/// that does not exist has none.
pub fn loosened(dir: &Path) -> std::io::Result<Vec<Loosened>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    walk(dir, Path::new("."), &mut out)?;
    Ok(out)
}

fn walk(path: &Path, relative: &Path, out: &mut Vec<Loosened>) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & GROUP_OTHER_BITS != 0 {
            out.push(Loosened {
                relative: relative.to_path_buf(),
                mode,
            });
        }
    }
    if meta.is_dir() {
        let mut entries = std::fs::read_dir(path)?.collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name();
            let child = if relative == Path::new(".") {
                PathBuf::from(&name)
            } else {
                relative.join(&name)
            };
            walk(&entry.path(), &child, out)?;
        }
    }
    Ok(())
}

/// Creates the data directory 0700 if it is missing, then logs a warning for every path in it
/// that group or others may use, without changing any. The warning names the path relative to
/// the data directory and its mode, nothing else.
pub fn prepare_data_dir(dir: &Path) -> std::io::Result<Vec<Loosened>> {
    create_private_dir_all(dir)?;
    let found = loosened(dir)?;
    for l in &found {
        tracing::warn!(
            path = %l.relative.display(),
            mode = %format!("{:04o}", l.mode),
            "a path in the data directory is open to group or others; Sealpost creates it owner-only and leaves it as it is: restrict it (chmod go-rwx)"
        );
    }
    Ok(found)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o7777
    }

    #[test]
    fn private_paths_are_created_owner_only_and_existing_ones_are_left_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        create_private_dir_all(&dir).expect("dirs");
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("c/f.db");
        ensure_private_file(&file).expect("file");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.join("c")), 0o700);

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        ensure_private_file(&file).expect("again");
        assert_eq!(mode(&file), 0o644, "an existing file keeps its mode");
        create_private_dir_all(&dir).expect("again");

        let found = loosened(tmp.path().join("a").as_path()).expect("walk");
        assert_eq!(
            found,
            vec![Loosened {
                relative: PathBuf::from("b/c/f.db"),
                mode: 0o644
            }]
        );
        assert!(loosened(&tmp.path().join("absent"))
            .expect("walk")
            .is_empty());
    }
}
