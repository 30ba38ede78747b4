//! The `nodes` table, one file per reader.
//!
//! - [`advisor`]: what broker-registry's advisor reads of each node.

mod advisor;

pub use advisor::{NodeFigures, advisor_figures};
