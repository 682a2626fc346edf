//! Links the test kernels with kiln-bare's linker script for the target architecture.
use std::path::PathBuf;

fn main() {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap();
    if os != "none" {
        return; // a hosted build (e.g. `cargo check` without --target) links nothing special
    }
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let script = dir.join("../platform/bare/link").join(format!("{arch}.ld"));
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg-tests=-T{}", script.display());
    println!("cargo:rustc-link-arg-tests=-zmax-page-size=4096");
}
