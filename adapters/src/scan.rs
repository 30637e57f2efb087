//! Scanners that look for plaintext personal data (or destroyed key bytes) where none may be:
//! raw database files, including SQLite's WAL, and every column of every Postgres table.

use std::path::{Path, PathBuf};

/// One place a needle was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Which needle (its index in the list given), never the needle itself.
    pub needle: usize,
    /// Where.
    pub location: String,
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Searches every regular file under `dir` (recursively) for each needle.
pub fn scan_dir(dir: &Path, needles: &[Vec<u8>]) -> std::io::Result<Vec<Hit>> {
    let mut hits = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let bytes = std::fs::read(&path)?;
                for (i, n) in needles.iter().enumerate() {
                    if contains(&bytes, n) {
                        hits.push(Hit {
                            needle: i,
                            location: path.display().to_string(),
                        });
                    }
                }
            }
        }
    }
    Ok(hits)
}

/// Searches every column of every row of every table in the pool's current schema for each
/// needle, both as raw bytes and as they would look hex-encoded in a `bytea` column.
pub async fn scan_postgres(
    pool: &sqlx::PgPool,
    needles: &[Vec<u8>],
) -> Result<Vec<Hit>, sqlx::Error> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await?;
    let mut hits = Vec::new();
    for (table,) in tables {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM \"{table}\" t"))
            .fetch_all(pool)
            .await?;
        for (i, n) in needles.iter().enumerate() {
            let hex = hex::encode(n);
            if rows
                .iter()
                .any(|(r,)| contains(r.as_bytes(), n) || r.contains(&hex))
            {
                hits.push(Hit {
                    needle: i,
                    location: format!("table {table}"),
                });
            }
        }
    }
    Ok(hits)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_needle_in_a_nested_file_and_names_only_its_index() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/b/f.bin"), b"xx\x00CANARY-1\x00yy").unwrap();
        let hits = scan_dir(dir.path(), &[b"CANARY-1".to_vec(), b"CANARY-2".to_vec()]).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].needle, 0);
        assert!(!hits[0].location.contains("CANARY"));
    }
}
