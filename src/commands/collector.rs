//! `causeway collector`.

use std::path::Path;

/// Arguments of `causeway collector`.
#[derive(Debug, Default, clap::Args)]
pub struct Args {}

/// Runs `causeway collector`.
pub async fn run(_args: Args, _db: &Path) -> anyhow::Result<()> {
    anyhow::bail!("causeway collector is not built yet")
}
