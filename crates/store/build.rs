//! `sqlx::migrate!` embeds the files of `migrations/postgres/` when the
//! crate compiles, but the compiler only watches files it has already
//! seen: rebuild when a migration is added to the folder too.

fn main() {
    println!("cargo:rerun-if-changed=migrations/postgres");
}
