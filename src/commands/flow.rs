//! `causeway flow`.

use std::path::Path;

/// Arguments of `causeway flow`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

/// Runs `causeway flow`.
pub async fn run(_args: Args, _db: &Path) -> anyhow::Result<()> {
    anyhow::bail!("causeway flow is not built yet")
}
