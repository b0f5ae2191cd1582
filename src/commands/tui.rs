//! `causeway tui`.

use std::path::Path;

/// Arguments of `causeway tui`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

/// Runs `causeway tui`.
pub async fn run(_args: Args, _db: &Path) -> anyhow::Result<()> {
    anyhow::bail!("causeway tui is not built yet")
}
