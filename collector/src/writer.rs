//! The span writer: one task that owns every span write, gathers submissions into large
//! transactions and acknowledges each only after its commit.

pub mod batch_writer;
