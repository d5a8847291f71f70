//! Embeds the library's fixtures (`../tests/fixtures`) in the binary: `fixtures.rs` in OUT_DIR
//! lists each file with `include_str!`, so `fixtures list|show` and `send` need no files at run
//! time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("../tests/fixtures");
    let mut out = String::new();
    for (kind, dir) in [("EVENT_FIXTURES", "events"), ("RECORD_FIXTURES", "records")] {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let files = json_files(&dir);
        let _ = writeln!(out, "pub(crate) static {kind}: &[(&str, &str)] = &[");
        for path in files {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    ({stem:?}, include_str!({:?})),",
                path.display().to_string()
            );
        }
        out.push_str("];\n");
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    if let Err(error) = std::fs::write(out_dir.join("fixtures.rs"), out) {
        println!("cargo:warning=cannot write fixtures.rs: {error}");
        std::process::exit(1);
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        println!(
            "cargo:warning={} is missing: build from a checkout of propexo-webhooks",
            dir.display()
        );
        std::process::exit(1);
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}
