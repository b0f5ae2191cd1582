//! `causeway lag`.

use std::path::Path;

/// Arguments of `causeway lag`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

/// Runs `causeway lag`.
pub async fn run(_args: Args, _db: &Path) -> anyhow::Result<()> {
    anyhow::bail!("causeway lag is not built yet")
}
