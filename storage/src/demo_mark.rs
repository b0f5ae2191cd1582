//! The demo's mark on databases it creates, so that `causeway demo` only ever replaces a
//! database it made itself, never one a real collector filled.

use std::io::Read;
use std::path::Path;

use crate::error::StorageError;
use crate::store::SqliteStore as Store;

/// SQLite `application_id` the demo stamps on its databases ("CWDM").
pub const DEMO_APPLICATION_ID: u32 = 0x4357_444d;

/// Byte offset of `application_id` in an SQLite file header (big-endian u32).
const APPLICATION_ID_OFFSET: usize = 68;
/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What a file on disk is, as far as the demo is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseOwner {
    /// No file, or an empty one: nothing to lose.
    Nobody,
    /// A database the demo created.
    Demo,
    /// An SQLite database somebody else created (a collector's, or any other).
    Other,
    /// Not an SQLite database at all.
    NotSqlite,
}

/// Reads the file header at `path` (without opening it as a database) to tell who made it.
pub fn database_owner(path: &Path) -> Result<DatabaseOwner, StorageError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DatabaseOwner::Nobody);
        }
        Err(source) => {
            return Err(StorageError::Create {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut header = Vec::with_capacity(100);
    file.by_ref()
        .take(100)
        .read_to_end(&mut header)
        .map_err(|source| StorageError::Create {
            path: path.to_owned(),
            source,
        })?;
    Ok(owner_of_header(&header))
}

fn owner_of_header(header: &[u8]) -> DatabaseOwner {
    if header.is_empty() {
        return DatabaseOwner::Nobody;
    }
    if !header.starts_with(SQLITE_MAGIC) {
        return DatabaseOwner::NotSqlite;
    }
    let id = header
        .get(APPLICATION_ID_OFFSET..APPLICATION_ID_OFFSET + 4)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map(u32::from_be_bytes);
    if id == Some(DEMO_APPLICATION_ID) {
        DatabaseOwner::Demo
    } else {
        DatabaseOwner::Other
    }
}

impl Store {
    /// Stamps this database as the demo's and checkpoints, so the mark is in the file's
    /// header even if the process is later killed.
    pub async fn mark_as_demo(&self) -> Result<(), StorageError> {
        let writer = self.writer()?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA application_id = {DEMO_APPLICATION_ID}"
        )))
        .execute(writer)
        .await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(writer)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_who_made_the_file() {
        let mut demo = SQLITE_MAGIC.to_vec();
        demo.resize(100, 0);
        demo[68..72].copy_from_slice(&DEMO_APPLICATION_ID.to_be_bytes());
        let mut other = SQLITE_MAGIC.to_vec();
        other.resize(100, 0);
        let cases: [(&[u8], DatabaseOwner, &str); 5] = [
            (b"", DatabaseOwner::Nobody, "an empty file holds nothing"),
            (&demo, DatabaseOwner::Demo, "stamped by the demo"),
            (
                &other,
                DatabaseOwner::Other,
                "an unstamped database is somebody's data",
            ),
            (
                &other[..20],
                DatabaseOwner::Other,
                "a truncated header is not the demo's",
            ),
            (b"my notes\n", DatabaseOwner::NotSqlite, "not a database"),
        ];
        for (header, expected, reason) in cases {
            assert_eq!(owner_of_header(header), expected, "{reason}");
        }
    }

    #[tokio::test]
    async fn a_marked_database_reads_back_as_the_demos() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("demo.db");
        assert_eq!(database_owner(&path)?, DatabaseOwner::Nobody);
        let store = Store::open(&path).await?;
        assert_eq!(database_owner(&path)?, DatabaseOwner::Other);
        store.mark_as_demo().await?;
        assert_eq!(database_owner(&path)?, DatabaseOwner::Demo);
        Ok(())
    }
}
