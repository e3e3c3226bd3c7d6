//! What every example shares: opening its SQLite file, and failing loudly when a story does not
//! come out as its source document says.

use versioned::{SqliteStorage, Store};

/// The examples' error type: anything, printed by `main` with a non-zero exit.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Opens the example's database: `$VERSIONED_DATABASE_URL` if set, otherwise a fresh SQLite file
/// `versioned-<name>.db` in the system's temporary directory.
pub async fn open(name: &str) -> Result<Store<SqliteStorage>, Failure> {
    let url = match std::env::var("VERSIONED_DATABASE_URL") {
        Ok(url) => url,
        Err(_) => {
            let path = std::env::temp_dir().join(format!("versioned-{name}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let file = format!("{}{suffix}", path.display());
                // Absent on a first run; anything else will surface when SQLite opens it.
                let _ = std::fs::remove_file(file);
            }
            format!("sqlite://{}?mode=rwc", path.display())
        }
    };
    println!("database: {url}\n");
    Ok(Store::sqlite(&url).await?)
}

/// Fails the example (exit code 1) unless `holds`.
pub fn expect(holds: bool, what: &str) -> Result<(), Failure> {
    if holds {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("the story did not come out as its source says: {what}").into())
    }
}
