//! Rebuild when a migration file is added or changed: the migrations are embedded at compile
//! time, and cargo does not watch a folder read by a macro on its own.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
