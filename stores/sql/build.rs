//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds them when it compiles.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
