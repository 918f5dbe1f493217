//! Upstream's `moq-relay` binary, unchanged: moq-relay 0.17.10's `src/main.rs` (MIT OR
//! Apache-2.0), built here so the tests' relay shares this workspace's lock file and compiled
//! dependencies with the embedded server. Same flags, same config file, same `--version`
//! (clap reads the moq-relay library's version). See docs/deploying.md.

use moq_relay::{Config, Relay};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    moq_tokio::crypto::install_default().expect("failed to install default crypto provider");
    Relay::load(Config::load()?).await?.run().await
}
