//! `causeway demo`.

use std::path::Path;

/// Arguments of `causeway demo`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

/// Runs `causeway demo`.
pub async fn run(_args: Args, _db: &Path) -> anyhow::Result<()> {
    anyhow::bail!("causeway demo is not built yet")
}
