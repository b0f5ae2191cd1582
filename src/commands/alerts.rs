//! `causeway alerts`.

use std::path::Path;

/// Arguments of `causeway alerts`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

/// Runs `causeway alerts`.
pub async fn run(_args: Args, _db: &Path) -> anyhow::Result<()> {
    anyhow::bail!("causeway alerts is not built yet")
}
