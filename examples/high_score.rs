//! Kii Cloud, "Updating a KiiObject": the high-score race.
//!
//! The high score is 60. Clients A and B finish a game at the same time with 87 and 76. Both read
//! 60, both decide they have a new high score, A writes first. With the overwrite check, B's write
//! is refused; B repeats from a fresh read, sees 87, and leaves it. Without the check, B's 76
//! overwrites A's 87: A's update is lost.
//!
//! Run: `cargo run --example high_score`

mod common;

use versioned::{AnyStorage, Store, Versioned};

#[derive(Versioned, Debug, Clone)]
struct HighScore {
    #[key]
    board: String,
    highscore: i64,
    #[version]
    #[versioned(column = "_version")]
    version: u64,
}

const BOARD: &str = "global";

/// One client's turn: read the high score, and write `score` if it beats it.
async fn submit(
    store: &Store<AnyStorage>,
    client: &str,
    read: HighScore,
    score: i64,
    checked: bool,
) -> versioned::Result<()> {
    let mut hs = read;
    if score <= hs.highscore {
        println!("  {client}: {score} does not beat {}; nothing to write", hs.highscore);
        return Ok(());
    }
    hs.highscore = score;
    if checked {
        hs.put(store).await?
    } else {
        hs.put_unchecked(store).await?
    }
    println!("  {client}: wrote highscore = {score} (version {})", hs.version);
    Ok(())
}

async fn race(store: &Store<AnyStorage>, checked: bool) -> Result<i64, common::Failure> {
    let key = BOARD.to_string();
    store.delete_unchecked::<HighScore>(&key).await?;
    store.insert(&mut HighScore { board: key.clone(), highscore: 60, version: 0 }).await?;

    let a = store.get::<HighScore>(&key).await?.ok_or("no high score")?;
    println!("  1. A gets highscore = {} (version {})", a.highscore, a.version);
    let b = store.get::<HighScore>(&key).await?.ok_or("no high score")?;
    println!("  2. B gets highscore = {} (version {})", b.highscore, b.version);
    println!("  3-4. A sets 87, B sets 76 locally");
    submit(store, "5. A", a, 87, checked).await?;
    match submit(store, "6. B", b, 76, checked).await {
        Ok(()) => {}
        Err(err) if err.is_conflict() => {
            println!("  6. B is refused: {err}");
            let fresh = store.get::<HighScore>(&key).await?.ok_or("no high score")?;
            println!("  B repeats from step 2: highscore = {} (version {})", fresh.highscore, fresh.version);
            submit(store, "B", fresh, 76, checked).await?;
        }
        Err(err) => return Err(err.into()),
    }
    Ok(store.get::<HighScore>(&key).await?.ok_or("no high score")?.highscore)
}

#[tokio::main]
async fn main() -> Result<(), common::Failure> {
    let store = common::open("high_score").await?;
    store.create_table::<HighScore>().await?;

    println!("With the overwrite check (put):");
    let checked = race(&store, true).await?;
    println!("  final highscore = {checked}");
    common::expect(checked == 87, "with the check, the high score is 87")?;

    println!("\nWithout the overwrite check (put_unchecked):");
    let unchecked = race(&store, false).await?;
    println!("  final highscore = {unchecked}");
    common::expect(unchecked == 76, "without the check, B's 76 overwrote A's 87: A's update is lost")?;
    Ok(())
}
