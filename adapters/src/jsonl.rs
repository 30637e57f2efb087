//! An append-only file of lines, synced on every append: where the audit log publishes its
//! checkpoints outside the database (the witness file).

use std::io::Write as _;
use std::path::Path;

/// Every non-empty line of the file; a missing file has none.
pub fn read_lines(path: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Appends one line (a newline is added) and syncs it to disk, creating the file (0600) and
/// its directory (0700) if needed.
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::files::create_private_dir_all(dir)?;
    }
    let mut f = crate::files::private_open_options()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_all()
}
