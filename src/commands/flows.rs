//! `causeway flows`.

use std::path::Path;

/// Arguments of `causeway flows`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

/// Runs `causeway flows`.
pub async fn run(_args: Args, _db: &Path) -> anyhow::Result<()> {
    anyhow::bail!("causeway flows is not built yet")
}
