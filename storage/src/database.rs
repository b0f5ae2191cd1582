//! Which database a store lives in: an SQLite file (a path) or a PostgreSQL database (a
//! `postgres://` URL). `--db`, `CAUSEWAY_DB` and the collector's `db` setting all parse
//! into a [`Database`]; anything that is not a PostgreSQL URL is a path, so every path
//! that worked before still does.
//!
//! A URL may carry a password: [`Database`]'s `Display` and `Debug` show it as `***`, so
//! messages and logs never print it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// The URL schemes that name a PostgreSQL database (libpq's two spellings).
const POSTGRES_SCHEMES: [&str; 2] = ["postgres://", "postgresql://"];

/// Where a causeway store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL.
    Postgres(PostgresUrl),
}

/// A PostgreSQL connection URL (`postgres://user:password@host:port/database?options`),
/// checked when parsed. Shown without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

/// Why a `--db` value could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseError {
    /// The value is empty.
    #[error("the database must be a file path or a postgres:// URL, got an empty value")]
    Empty,
    /// A `postgres://` value that is not a valid connection URL.
    #[error("invalid postgres database URL {url}: {reason}")]
    Url {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PostgresUrl {
    /// Checks `url` as a PostgreSQL connection URL.
    pub fn parse(url: &str) -> Result<PostgresUrl, DatabaseError> {
        match sqlx::postgres::PgConnectOptions::from_str(url) {
            Ok(_) => Ok(PostgresUrl(url.to_owned())),
            Err(error) => Err(DatabaseError::Url {
                url: redact(url),
                reason: redact_in(&error.to_string(), url),
            }),
        }
    }

    /// The URL as given, password included: for connecting only, never for messages.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with no password at all (`postgres://user@host/db`): for a command shown to
    /// people, who connect with their own credentials (`PGPASSWORD`, `~/.pgpass`).
    pub fn without_password(&self) -> String {
        let url = &self.0;
        match password_range(url) {
            Some(password) => format!("{}{}", &url[..password.start], &url[password.end..]),
            None => url.clone(),
        }
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// Where the password of `url`'s user part is: the bytes of `:password`.
fn password_range(url: &str) -> Option<std::ops::Range<usize>> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(scheme_end + colon..scheme_end + at)
}

/// `url` with the password of its user part replaced by `***`.
fn redact(url: &str) -> String {
    match password_range(url) {
        Some(password) => format!("{}:***{}", &url[..password.start], &url[password.end..]),
        None => url.to_owned(),
    }
}

/// `text` with every occurrence of `url`'s password hidden.
fn redact_in(text: &str, url: &str) -> String {
    let redacted = redact(url);
    let password = password_of(url);
    let text = text.replace(url, &redacted);
    match password {
        Some(password) if !password.is_empty() => text.replace(password, "***"),
        _ => text,
    }
}

fn password_of(url: &str) -> Option<&str> {
    password_range(url).map(|password| &url[password.start + 1..password.end])
}

/// `text` with the password of every `postgres://` URL in it replaced by `***`: for
/// messages that quote their input (a config file's parse error quotes the line).
pub fn hide_passwords(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(start) = POSTGRES_SCHEMES
        .iter()
        .filter_map(|scheme| lower[at..].find(scheme).map(|i| at + i))
        .min()
    {
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .map_or(text.len(), |i| start + i);
        out.push_str(&text[at..start]);
        out.push_str(&redact(&text[start..end]));
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

impl Database {
    /// Parses a `--db` value: a `postgres://` or `postgresql://` URL, or else a file path.
    pub fn parse(text: &str) -> Result<Database, DatabaseError> {
        if text.is_empty() {
            return Err(DatabaseError::Empty);
        }
        let lower = text.to_ascii_lowercase();
        if POSTGRES_SCHEMES
            .iter()
            .any(|scheme| lower.starts_with(scheme))
        {
            return PostgresUrl::parse(text).map(Database::Postgres);
        }
        Ok(Database::Sqlite(PathBuf::from(text)))
    }

    /// The SQLite file, for a file database.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }
}

impl FromStr for Database {
    type Err = DatabaseError;

    fn from_str(text: &str) -> Result<Database, DatabaseError> {
        Database::parse(text)
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(url) => f.debug_tuple("Postgres").field(url).finish(),
        }
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Database {
        Database::Sqlite(path)
    }
}

impl From<&Path> for Database {
    fn from(path: &Path) -> Database {
        Database::Sqlite(path.to_owned())
    }
}

impl From<&PathBuf> for Database {
    fn from(path: &PathBuf) -> Database {
        Database::Sqlite(path.clone())
    }
}

impl From<&Database> for Database {
    fn from(database: &Database) -> Database {
        database.clone()
    }
}

impl<'de> Deserialize<'de> for Database {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Database, D::Error> {
        let text = String::deserialize(deserializer)?;
        Database::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_url_for_people_carries_no_password() {
        let bare = |url: &str| PostgresUrl::parse(url).unwrap().without_password();
        assert_eq!(
            bare("postgres://ops:s3cr%40t@db.internal:5432/causeway?sslmode=require"),
            "postgres://ops@db.internal:5432/causeway?sslmode=require"
        );
        assert_eq!(
            bare("postgres://ops@db/causeway"),
            "postgres://ops@db/causeway"
        );
        assert_eq!(bare("postgresql://db/causeway"), "postgresql://db/causeway");
    }

    #[test]
    fn values_parse_as_urls_or_paths() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("./causeway.db", Some("./causeway.db"), "a relative path"),
            (
                "/var/lib/causeway.db",
                Some("/var/lib/causeway.db"),
                "an absolute path",
            ),
            (
                "postgres.db",
                Some("postgres.db"),
                "a file named like the scheme",
            ),
            ("postgres:/x", Some("postgres:/x"), "one slash is a path"),
            ("postgres://u@h/db", None, "a URL"),
            (
                "POSTGRESQL://u@h:5433/db",
                None,
                "the other scheme, any case",
            ),
        ];
        for (text, path, reason) in cases {
            let parsed = Database::parse(text).unwrap();
            assert_eq!(parsed.sqlite_path(), path.map(Path::new), "{reason}");
        }
        assert_eq!(Database::parse(""), Err(DatabaseError::Empty));
        let bad = Database::parse("postgres://u:secret@h:notaport/db").unwrap_err();
        let message = bad.to_string();
        assert!(
            message.contains("postgres://u:***@h:notaport/db"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn passwords_in_quoted_text_are_hidden() {
        let text = "line 1: db = \"postgres://u:pw@h/db\" and POSTGRESQL://v:pw2@h2/db2 end";
        assert_eq!(
            hide_passwords(text),
            "line 1: db = \"postgres://u:***@h/db\" and POSTGRESQL://v:***@h2/db2 end"
        );
        assert_eq!(hide_passwords("no url here"), "no url here");
    }

    #[test]
    fn passwords_never_show() {
        let cases = [
            ("postgres://u:pw@h/db", "postgres://u:***@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            (
                "postgres://u:p@ss@h/db?sslmode=disable",
                "postgres://u:***@h/db?sslmode=disable",
            ),
        ];
        for (url, shown) in cases {
            let database = Database::parse(url).unwrap();
            assert_eq!(database.to_string(), shown);
            assert!(format!("{database:?}").contains(shown));
        }
    }
}
